"""Signals, cycle parameters, machine states and standstill reasons: frozen tables.

Names follow EUROMAP 77 where it has one (the cycle parameters); the continuous signals are
what a moulding machine's controller shows on its process page.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class MachineState(StrEnum):
    """What an injection-moulding machine is doing; the basis of availability (ISO 22400)."""

    RUNNING = "running"
    IDLE = "idle"  # ready but not producing: starved of material or blocked downstream
    SETUP = "setup"  # mould change / changeover: counts against availability
    PLANNED_STOP = "planned_stop"  # breaks, no shift, planned maintenance: not planned busy time
    UNPLANNED_STOP = "unplanned_stop"  # standstill with a reason code
    FAULT = "fault"  # breakdown of a machine component, with the component's reason
    OFFLINE = "offline"  # no data from the machine


@dataclass(frozen=True, slots=True)
class SignalSpec:
    """One continuous signal: its wire name, unit and what it means."""

    name: str
    unit: str
    description: str


SIGNALS: tuple[SignalSpec, ...] = (
    SignalSpec("TempZone1", "degC", "barrel zone 1: the water-cooled feed throat"),
    SignalSpec("TempZone2", "degC", "barrel zone 2 temperature"),
    SignalSpec("TempZone3", "degC", "barrel zone 3 temperature"),
    SignalSpec("TempZone4", "degC", "barrel zone 4 (front) temperature"),
    SignalSpec("TempNozzle", "degC", "nozzle temperature"),
    SignalSpec("HeaterOutputZone2", "%", "zone 2 heater output of its temperature controller"),
    SignalSpec("HeaterOutputZone3", "%", "zone 3 heater output of its temperature controller"),
    SignalSpec("HeaterOutputZone4", "%", "zone 4 heater output of its temperature controller"),
    SignalSpec("HeaterOutputNozzle", "%", "nozzle heater output of its temperature controller"),
    SignalSpec("TempMould", "degC", "mould temperature (temperature control unit return)"),
    SignalSpec("TempOil", "degC", "hydraulic oil temperature"),
    SignalSpec("PressureHydraulic", "bar", "hydraulic system pressure, through the cycle"),
    SignalSpec("ScrewPosition", "mm", "screw position from the front, through the cycle"),
    SignalSpec("MotorPower", "kW", "main drive power"),
    SignalSpec("CounterShots", "1", "total shot counter"),
    SignalSpec("CounterGood", "1", "good part counter"),
    SignalSpec("CounterBad", "1", "bad part counter"),
    SignalSpec("CounterMould", "1", "shots of the mould now on the machine, over its lifetime"),
    SignalSpec("AlarmWord", "1", "active alarms, one bit each (contracts.ALARM_BITS)"),
)

# Per-cycle parameters and their units: EUROMAP 77 names first, then moldlab's own.
CYCLE_PARAMETERS: dict[str, str] = {
    "CycleTime": "s",
    "InjectionTime": "s",
    "DosingTime": "s",
    "CoolingTime": "s",
    "CushionVolume": "cm3",
    "CushionStroke": "mm",
    "PlastificationVolume": "cm3",
    "SpecificPressureMaximum": "bar",
    "HoldPressure": "bar",
    "MeltTemperature": "degC",
    "MouldTemperature": "degC",
    "EjectionForceMaximum": "kN",
    "CycleEnergy": "kWh",
    "PartWeight": "g",
}

# Why a machine stands still, by the state it stands still in. The register map gives each a
# code; the simulators draw them; analytics groups downtime by them.
STANDSTILL_REASONS: dict[MachineState, tuple[str, ...]] = {
    MachineState.IDLE: ("starved", "blocked"),
    # warm_up: the shift has begun and the press waits for barrel or mould to heat up (a
    # start-up loss, TPM), not a planned stop.
    MachineState.SETUP: ("mould_change", "warm_up"),
    # no_order: a shift, but no order planned for the machine (ISO 22400: not planned busy
    # time); a machine waiting for its next order while one is due is idle, "starved".
    MachineState.PLANNED_STOP: ("break", "no_shift", "planned_maintenance", "no_order"),
    MachineState.UNPLANNED_STOP: (
        "material_shortage",
        "mould_fault",
        "robot_fault",
        "quality_check",
        "operator_absent",
    ),
    MachineState.FAULT: (
        "heater_burnout",
        "check_ring_failure",
        "screw_barrel_wear",
        "hydraulic_pump_failure",
        "cooling_blocked",
        "ejector_failure",
    ),
}

# Why the parts of a bad cycle are bad (CycleRecord.defect): the causes the simulators draw,
# then what a quality-control station commonly reports. A cycle may name a cause not listed
# here (a plant's own); analytics groups the quality loss by whatever it is told.
DEFECT_CAUSES: dict[str, str] = {
    "startup_scrap": "the first shots after a long standstill: melt degraded in the barrel",
    "short_shot": "the cavity not filled: too little pressure for the melt",
    "cold_slug": "a frozen plug from the nozzle tip in the part",
    "sink_marks": "hollows where the hold pressure did not pack the part",
    "warpage": "the part distorts as it cools: a mould too hot or cooled unevenly",
    "flash": "melt escaped at the parting line: melt too hot or clamp too weak",
    "flow_lines": "visible flow fronts: a mould or melt too cold",
    "weight_out_of_tolerance": "part weight outside its tolerance",
    "contamination": "foreign material or black specks in the part",
    "burn_marks": "dark streaks of burnt melt: trapped air or overheating",
    "splay": "silver streaks of moisture: material not dried enough",
    "dimension_out_of_tolerance": "a measured dimension outside its tolerance",
}

# Bits of the AlarmWord signal and register (bit number: alarm).
ALARM_BITS: dict[int, str] = {
    0: "temperature_deviation",  # a barrel zone or the nozzle off its setpoint band
    1: "heater_fault",  # a heater at 100 % output and still below setpoint, or burnt out
    2: "cushion_low",  # cushion under 1 mm: the screw is bottoming out
    3: "oil_temperature_high",  # hydraulic oil above 60 degC
    4: "mould_temperature_high",  # mould more than 10 degC above its setpoint
    5: "ejection_force_high",
    6: "machine_fault",  # the machine is in fault
}

_BY_NAME = {s.name: s for s in SIGNALS}


def signal_spec(name: str) -> SignalSpec | None:
    """The spec of a known signal, or None for a signal the contract does not name."""
    return _BY_NAME.get(name)


# The physical range of a value in each unit: wider than any moulding machine reads, narrow
# enough that no sum or average of a year of readings overflows a double. A value outside
# it is a broken sensor or a broken publisher, never a measurement.
UNIT_RANGES: dict[str, tuple[float, float]] = {
    "degC": (-273.15, 1000.0),  # absolute zero; no polymer is processed near 1000 degC
    "%": (-100.0, 100.0),  # controller outputs (negative: cooling)
    "bar": (-1.0, 10_000.0),  # vacuum; injection pressures stay under 3,500 bar
    "mm": (-10_000.0, 10_000.0),
    "cm3": (0.0, 1_000_000.0),
    "kW": (-10_000.0, 10_000.0),  # regenerative drives feed power back
    "kN": (-100_000.0, 100_000.0),
    "kWh": (0.0, 1_000_000.0),
    "g": (0.0, 1_000_000.0),
    "s": (0.0, 86_400.0),  # a cycle or a phase of one: a day at most
    "1": (0.0, 2.0**53),  # counters and bit words: exact in a double
}
# A signal the contract does not name: any finite value this far from overflow.
ANY_RANGE: tuple[float, float] = (-1e12, 1e12)

_RANGE_BY_SIGNAL = {s.name: UNIT_RANGES[s.unit] for s in SIGNALS}
_RANGE_BY_PARAMETER = {name: UNIT_RANGES[unit] for name, unit in CYCLE_PARAMETERS.items()}


def signal_range(name: str) -> tuple[float, float]:
    """The (low, high) that a value of signal `name` must lie within, both included."""
    return _RANGE_BY_SIGNAL.get(name, ANY_RANGE)


def parameter_range(name: str) -> tuple[float, float]:
    """The (low, high) that cycle parameter `name` must lie within, both included."""
    return _RANGE_BY_PARAMETER.get(name, ANY_RANGE)
