"""Simulated injection-moulding machines standing in for the factory in tests and demos."""

from plant import ShiftCalendar
from simulators.faults import Component, Maintenance
from simulators.life import DEFAULT_LIVES, ComponentLife, LifeSpec
from simulators.model import (
    ComponentFailed,
    ComponentRestored,
    CycleDone,
    Event,
    JobChanged,
    MachineModel,
    StateEntered,
)
from simulators.mqtt import SimulatedMachine, run_simulation
from simulators.specs import MATERIALS, MOULDS, MachineSpec, Material, Mould, demo_floor

__all__ = [
    "DEFAULT_LIVES",
    "MATERIALS",
    "MOULDS",
    "Component",
    "ComponentFailed",
    "ComponentLife",
    "ComponentRestored",
    "CycleDone",
    "Event",
    "JobChanged",
    "LifeSpec",
    "MachineModel",
    "MachineSpec",
    "Maintenance",
    "Material",
    "Mould",
    "ShiftCalendar",
    "SimulatedMachine",
    "StateEntered",
    "demo_floor",
    "run_simulation",
]
