"""Simulated injection-moulding machines standing in for the factory in tests and demos."""

from plant import ShiftCalendar
from simulators.faults import Component, Degradation, Maintenance
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
    "MATERIALS",
    "MOULDS",
    "Component",
    "ComponentFailed",
    "ComponentRestored",
    "CycleDone",
    "Degradation",
    "Event",
    "JobChanged",
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
