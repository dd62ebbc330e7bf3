"""A simple injection-moulding machine: cycles, stops and signals from a seeded random source.

Pure code: the caller passes the time in and gets events and samples out. The realistic
model (phases, heater control, degradation) replaces this one in a later issue.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from contracts import MachineState, PartQuality

# Standstill reasons (EUROMAP-style) and the mean repair time of each, in seconds.
_STOP_REASONS: tuple[tuple[str, float], ...] = (
    ("material_shortage", 90.0),
    ("mould_fault", 150.0),
    ("robot_fault", 60.0),
    ("quality_check", 45.0),
)

# Signal setpoints: name -> (value while running, noise sigma, value at standstill).
_SETPOINTS: dict[str, tuple[float, float, float]] = {
    "TempZone1": (45.0, 0.3, 45.0),
    "TempZone2": (200.0, 0.6, 200.0),
    "TempZone3": (215.0, 0.6, 215.0),
    "TempNozzle": (230.0, 0.8, 229.0),
    "TempMould": (45.0, 0.4, 38.0),
    "TempOil": (42.0, 0.2, 38.0),
    "PressureHydraulic": (140.0, 8.0, 5.0),
    "MotorPower": (18.0, 1.5, 2.5),
}


@dataclass(frozen=True, slots=True)
class MachineSpec:
    """One machine of the demo floor and the mould it runs."""

    machine_id: str
    site: str = "demo"
    area: str = "hall-a"
    line: str = "line-1"
    ideal_cycle_s: float = 15.0
    cavities: int = 1
    scrap_rate: float = 0.02
    mean_cycles_between_stops: float = 40.0


@dataclass(frozen=True, slots=True)
class CycleDone:
    ts: datetime
    shot: int
    quality: PartQuality
    parts: int
    parameters: dict[str, float]


@dataclass(frozen=True, slots=True)
class StateEntered:
    ts: datetime
    state: MachineState
    reason: str | None = None


Event = CycleDone | StateEntered


@dataclass
class MachineModel:
    """Advances one machine through running cycles and unplanned stops."""

    spec: MachineSpec
    rng: random.Random
    now: datetime
    state: MachineState = MachineState.RUNNING
    shots: int = 0
    good: int = 0
    bad: int = 0
    _next_event_at: datetime = field(init=False)
    _cycle_started_at: datetime = field(init=False)

    def __post_init__(self) -> None:
        self._schedule_cycle()

    def start(self) -> list[Event]:
        """The event that announces the machine's state when it comes up."""
        return [StateEntered(self.now, self.state)]

    def advance(self, to: datetime) -> list[Event]:
        """Run the machine until `to`, returning what happened on the way, in order."""
        events: list[Event] = []
        while self._next_event_at <= to:
            self.now = self._next_event_at
            if self.state is MachineState.RUNNING:
                events.append(self._finish_cycle())
                if self.rng.random() < 1.0 / self.spec.mean_cycles_between_stops:
                    reason, mean_repair_s = self.rng.choice(_STOP_REASONS)
                    self.state = MachineState.UNPLANNED_STOP
                    events.append(StateEntered(self.now, self.state, reason))
                    repair_s = self.rng.expovariate(1.0 / mean_repair_s)
                    self._next_event_at = self.now + timedelta(seconds=repair_s)
                    continue
            else:
                self.state = MachineState.RUNNING
                events.append(StateEntered(self.now, self.state))
            self._schedule_cycle()
        self.now = max(self.now, to)
        return events

    def sample(self) -> dict[str, float]:
        """The machine's continuous signals and counters right now."""
        running = self.state is MachineState.RUNNING
        values: dict[str, float] = {}
        for name, (run, sigma, stand) in _SETPOINTS.items():
            base = run if running else stand
            values[name] = round(base + self.rng.gauss(0.0, sigma), 2)
        values["CounterShots"] = float(self.shots)
        values["CounterGood"] = float(self.good)
        values["CounterBad"] = float(self.bad)
        return values

    def _schedule_cycle(self) -> None:
        ideal = self.spec.ideal_cycle_s
        cycle_s = max(ideal * 0.95, self.rng.gauss(ideal * 1.03, 0.3))
        self._cycle_started_at = self.now
        self._next_event_at = self.now + timedelta(seconds=cycle_s)

    def _finish_cycle(self) -> CycleDone:
        self.shots += 1
        cushion = self.rng.gauss(5.0, 0.15)
        peak = self.rng.gauss(900.0, 12.0)
        # Short shots come from a low peak pressure or a cushion run dry, not from a coin alone.
        bad = peak < 870.0 or cushion < 4.6 or self.rng.random() < self.spec.scrap_rate / 2
        quality = PartQuality.BAD if bad else PartQuality.GOOD
        if bad:
            self.bad += self.spec.cavities
        else:
            self.good += self.spec.cavities
        cycle_s = (self.now - self._cycle_started_at).total_seconds()
        return CycleDone(
            ts=self.now,
            shot=self.shots,
            quality=quality,
            parts=self.spec.cavities,
            parameters={
                "CycleTime": round(cycle_s, 3),
                "InjectionTime": round(self.rng.gauss(0.6, 0.01), 3),
                "DosingTime": round(self.rng.gauss(3.5, 0.05), 3),
                "CushionVolume": round(cushion, 3),
                "SpecificPressureMaximum": round(peak, 1),
                "HoldPressure": round(peak * 0.5, 1),
            },
        )
