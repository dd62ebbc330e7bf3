"""Simulated injection-moulding machines standing in for the factory in tests and demos."""

from simulators.model import MachineModel, MachineSpec
from simulators.mqtt import SimulatedMachine, demo_floor, run_simulation

__all__ = ["MachineModel", "MachineSpec", "SimulatedMachine", "demo_floor", "run_simulation"]
