"""Nights, weekends and repairs as a plant lives them; scrap and quality stops; same bytes."""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow.parquet as pq

from contracts import DEFECT_CAUSES, MachineState, PartQuality
from simulators import (
    Component,
    ComponentFailed,
    ComponentLife,
    ComponentRestored,
    CycleDone,
    Event,
    MachineModel,
    MachineSpec,
    ShiftCalendar,
    StateEntered,
)
from simulators.export import FILES, export_floor
from simulators.scenario import load_scenario

ROME = ZoneInfo("Europe/Rome")
TWO_SHIFTS = ShiftCalendar.two_shifts_weekdays("Europe/Rome")
EVERLASTING = tuple(
    ComponentLife(c, scale_h=1e6, sudden_share=0.0, initial_age_h=0.0) for c in Component
)
HEALTHY = MachineSpec("imm-01", calendar=TWO_SHIFTS, lives=EVERLASTING, ideal_sensors=True)


def _local(y: int, m: int, d: int, h: int, minute: int = 0) -> datetime:
    return datetime(y, m, d, h, minute, tzinfo=ROME)


def _trace(
    spec: MachineSpec, start: datetime, end: datetime, every_s: float = 60.0, seed: int = 4
) -> tuple[list[Event], list[tuple[datetime, dict[str, float]]]]:
    model = MachineModel(spec, random.Random(seed), start)
    events: list[Event] = list(model.start())
    samples = []
    t = start
    while t < end:
        t += timedelta(seconds=every_s)
        events += model.advance(t)
        samples.append((t, model.sample()))
    return events, samples


def _at(samples: list[tuple[datetime, dict[str, float]]], when: datetime) -> dict[str, float]:
    return next(s for t, s in samples if t >= when)


def test_the_barrel_stays_off_all_night_and_heats_only_before_the_shift() -> None:
    # Tuesday 20:00 to Wednesday 07:00: the night's no-shift stop crosses local midnight.
    events, samples = _trace(HEALTHY, _local(2026, 11, 24, 20), _local(2026, 11, 25, 7))
    evening = _at(samples, _local(2026, 11, 24, 23, 10))
    midnight = _at(samples, _local(2026, 11, 24, 23, 59))
    dawn = _at(samples, _local(2026, 11, 25, 5, 10))
    assert midnight["TempZone4"] < evening["TempZone4"]  # no pre-heating at 23:15
    assert dawn["TempZone4"] < midnight["TempZone4"]
    for name in ("HeaterOutputZone2", "HeaterOutputZone3", "HeaterOutputZone4"):
        assert midnight[name] == 0.0  # heating off reads 0 %, not 100 %
        assert dawn[name] == 0.0
    assert _at(samples, _local(2026, 11, 25, 5, 20))["HeaterOutputZone4"] > 50  # 05:15 on
    assert _at(samples, _local(2026, 11, 25, 6, 0))["TempZone4"] > 215  # hot at 06:00
    # One stop for the whole night, not one until midnight and another after it.
    nights = [e for e in events if isinstance(e, StateEntered) and e.reason == "no_shift"]
    assert len(nights) == 1
    running = next(
        e for e in events if isinstance(e, StateEntered) and e.ts > _local(2026, 11, 25, 5)
    )
    assert running.ts == _local(2026, 11, 25, 6)
    assert running.state is MachineState.RUNNING


def test_after_a_weekend_the_mould_warms_up_in_the_shift_with_start_up_scrap() -> None:
    events, samples = _trace(HEALTHY, _local(2026, 11, 20, 18), _local(2026, 11, 23, 9))
    monday = _local(2026, 11, 23, 6)
    mould_setpoint = HEALTHY.moulds[0].material.mould_setpoint_c
    assert _at(samples, monday)["TempMould"] < mould_setpoint - 8  # cold after the weekend
    after = [e for e in events if isinstance(e, StateEntered) and e.ts >= monday]
    # The shift has begun: waiting for the mould is a loss (setup), not a planned stop.
    assert (after[0].ts, after[0].state, after[0].reason) == (
        monday, MachineState.SETUP, "warm_up",
    )  # fmt: skip
    assert after[1].state is MachineState.RUNNING
    assert after[1].ts > monday + timedelta(minutes=3)
    first = [e for e in events if isinstance(e, CycleDone) and e.ts > after[1].ts][:60]
    causes = Counter(c.defect for c in first if c.quality is PartQuality.BAD)
    assert causes["startup_scrap"] >= 1
    assert causes["flow_lines"] >= 5  # parts from a mould still below its temperature
    later = [e for e in events if isinstance(e, CycleDone) and e.ts > monday + timedelta(hours=2)]
    assert sum(c.defect == "flow_lines" for c in later) == 0
    # Weekday mornings are pre-heated mould and all: running at 06:00.
    _, tuesday = _trace(HEALTHY, _local(2026, 11, 24, 20), _local(2026, 11, 25, 6, 5))
    assert _at(tuesday, _local(2026, 11, 25, 6))["TempMould"] > mould_setpoint - 3


def test_repairs_wait_for_the_fitters_shift() -> None:
    # A pump that breaks down on Friday evening, 21:30: repaired on Monday from 06:00.
    pump = ComponentLife(Component.HYDRAULIC_PUMP, scale_h=1e6, initial_health=0.99)
    spec = replace(HEALTHY, lives=(pump, *EVERLASTING[:6], *EVERLASTING[7:]))
    model = MachineModel(spec, random.Random(2), _local(2026, 11, 20, 21))
    model.advance(_local(2026, 11, 20, 21, 30))
    model.health.damage[6] = model.health._lives[6].fail_at  # it breaks down now
    events = model.advance(_local(2026, 11, 24, 12))
    failed = next(e for e in events if isinstance(e, ComponentFailed))
    restored = next(e for e in events if isinstance(e, ComponentRestored))
    states = [e for e in events if isinstance(e, StateEntered)]
    assert failed.component is Component.HYDRAULIC_PUMP
    assert states[0].state is MachineState.FAULT
    # In fault over the weekend (no planned stop while broken down), repaired in a shift.
    assert states[1].ts >= restored.ts
    local = restored.ts.astimezone(ROME)
    assert local.weekday() == 0
    assert 6 <= local.hour < 22
    worked_h = 0.5 + (restored.ts - _local(2026, 11, 23, 6)).total_seconds() / 3600
    assert 0.5 < worked_h < 5 * 3  # the repair's hours, counted in shifts only
    assert not [s for s in states if s.ts < restored.ts and s.state is not MachineState.FAULT]


def test_a_healthy_machine_scraps_half_a_percent_to_two() -> None:
    spec = MachineSpec("imm-01", calendar=TWO_SHIFTS, lives=EVERLASTING)
    model = MachineModel(spec, random.Random(8), datetime(2026, 3, 2, tzinfo=UTC))
    events = model.advance(datetime(2026, 3, 16, tzinfo=UTC))
    cycles = [e for e in events if isinstance(e, CycleDone)]
    bad = [c for c in cycles if c.quality is PartQuality.BAD]
    assert 0.005 <= len(bad) / len(cycles) <= 0.02
    causes = Counter(c.defect for c in bad)
    assert set(causes) <= set(DEFECT_CAUSES)
    assert len(causes) >= 5  # start-up scrap, contamination, splay, ...


def test_scrap_running_high_stops_the_machine_for_a_quality_check() -> None:
    worn = ComponentLife(Component.CHECK_RING, scale_h=1e6, initial_health=0.7)
    spec = replace(
        HEALTHY, calendar=ShiftCalendar(shifts=()), stops=(), lives=(*EVERLASTING[:4], worn,
        *EVERLASTING[5:]),
    )  # fmt: skip
    start = datetime(2026, 3, 2, tzinfo=UTC)
    model = MachineModel(spec, random.Random(1), start)
    events = model.advance(start + timedelta(hours=12))
    stops = [e for e in events if isinstance(e, StateEntered) and e.reason == "quality_check"]
    assert stops
    cycles = [e for e in events if isinstance(e, CycleDone)]
    for stop in stops:  # each after a run of scrap: 8 or more of the last 40 cycles
        last = [c for c in cycles if c.ts <= stop.ts][-40:]
        assert sum(c.quality is PartQuality.BAD for c in last) >= 8
    assert sum(c.quality is PartQuality.BAD for c in cycles) / len(cycles) < 0.3


def test_three_quality_stops_in_a_row_take_out_the_worn_part() -> None:
    worn = ComponentLife(Component.CHECK_RING, scale_h=1e6, initial_health=0.5)
    spec = replace(
        HEALTHY, calendar=ShiftCalendar(shifts=()), stops=(), lives=(*EVERLASTING[:4], worn,
        *EVERLASTING[5:]),
    )  # fmt: skip
    start = datetime(2026, 3, 2, tzinfo=UTC)
    model = MachineModel(spec, random.Random(1), start)
    events = model.advance(start + timedelta(hours=12))
    failed = next(e for e in events if isinstance(e, ComponentFailed))
    assert (failed.component, failed.mode) == (Component.CHECK_RING, "wear")
    before = [e for e in events if isinstance(e, StateEntered) and e.ts <= failed.ts]
    checks = [e.ts for e in before if e.reason == "quality_check"]
    assert len(checks) >= 2  # two quality checks; the third scrap run brings the fitters
    assert failed.ts - checks[-2] <= timedelta(hours=6)


def test_the_same_seed_gives_the_same_bytes_with_every_confounder(tmp_path: Path) -> None:
    scenario = load_scenario("pdm-train")
    specs = [replace(s, wear_time_factor=40.0) for s in scenario.machines[:2]]
    start = scenario.start or datetime(2026, 1, 5, tzinfo=UTC)
    for run in ("a", "b"):
        export_floor(specs, tmp_path / run, days=2.0, start=start, seed=5, signal_interval_s=10)
    for name in [*(f"{n}.parquet" for n in FILES), "manifest.json"]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    signals = pq.read_table(tmp_path / "a" / "signals.parquet").to_pylist()
    assert any(math.isnan(r["TempOil"]) or math.isnan(r["TempZone3"]) for r in signals)
    failures = pq.read_table(tmp_path / "a" / "failures.parquet").to_pylist()
    assert failures
    assert {r["mode"] for r in failures} <= {"wear", "sudden"}
