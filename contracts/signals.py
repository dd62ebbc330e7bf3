"""Signals, cycle parameters and machine states: frozen tables with EUROMAP 77 names."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class MachineState(StrEnum):
    """What an injection-moulding machine is doing; the basis of availability (ISO 22400)."""

    RUNNING = "running"
    IDLE = "idle"
    SETUP = "setup"  # mould change / changeover: counts against availability
    PLANNED_STOP = "planned_stop"  # breaks, no order: excluded from planned busy time
    UNPLANNED_STOP = "unplanned_stop"  # standstill with a reason code
    FAULT = "fault"
    OFFLINE = "offline"  # no data from the machine


@dataclass(frozen=True, slots=True)
class SignalSpec:
    """One continuous signal: its wire name, unit and what it means."""

    name: str
    unit: str
    description: str


SIGNALS: tuple[SignalSpec, ...] = (
    SignalSpec("TempZone1", "degC", "barrel zone 1 (feed) temperature"),
    SignalSpec("TempZone2", "degC", "barrel zone 2 temperature"),
    SignalSpec("TempZone3", "degC", "barrel zone 3 temperature"),
    SignalSpec("TempNozzle", "degC", "nozzle temperature"),
    SignalSpec("TempMould", "degC", "mould temperature"),
    SignalSpec("TempOil", "degC", "hydraulic oil temperature"),
    SignalSpec("PressureHydraulic", "bar", "hydraulic system pressure"),
    SignalSpec("MotorPower", "kW", "main drive power"),
    SignalSpec("CounterShots", "1", "total shot counter"),
    SignalSpec("CounterGood", "1", "good part counter"),
    SignalSpec("CounterBad", "1", "bad part counter"),
)

# Per-cycle parameters (EUROMAP 77 names) and their units.
CYCLE_PARAMETERS: dict[str, str] = {
    "CycleTime": "s",
    "InjectionTime": "s",
    "DosingTime": "s",
    "CushionVolume": "mm",
    "SpecificPressureMaximum": "bar",
    "HoldPressure": "bar",
    "PartWeight": "g",
}

_BY_NAME = {s.name: s for s in SIGNALS}


def signal_spec(name: str) -> SignalSpec | None:
    """The spec of a known signal, or None for a signal the contract does not name."""
    return _BY_NAME.get(name)
