"""The machine model against the signal table of DESIGN.md and the physics of moulding."""

from __future__ import annotations

import itertools
import random
import statistics
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from contracts import STANDSTILL_REASONS, JobStatus, MachineState, PartQuality
from simulators import (
    MOULDS,
    Component,
    ComponentFailed,
    ComponentLife,
    ComponentRestored,
    CycleDone,
    Event,
    JobChanged,
    MachineModel,
    MachineSpec,
    Maintenance,
    ShiftCalendar,
    StateEntered,
)
from simulators.faults import HEATERS
from simulators.operators import Skill

# No crew at the press: nobody corrects the shot, tweaks setpoints or stops for scrap.
ABSENT = Skill("absent", 1e9, 1e9, tweak_share=0.0, watches_scrap=False)

START = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)  # a Monday, 06:00 in Rome
NO_SHIFTS = ShiftCalendar(shifts=())  # producing around the clock, no breaks


def ageless(*own: ComponentLife) -> tuple[ComponentLife, ...]:
    """Lives for every component: as good as everlasting and new, but those in `own`."""
    given = {life.component for life in own}
    forever = tuple(
        ComponentLife(c, scale_h=1e6, shape=50.0, sudden_share=0.0, initial_age_h=0.0)
        for c in Component
        if c not in given
    )
    return (*own, *forever)


QUIET = MachineSpec(  # no stops, breaks, mould changes, wear or sensor faults: the process
    "imm-01",
    calendar=NO_SHIFTS,
    stops=(),
    micro_stops_per_h=0.0,
    job_parts=(10**9, 10**9),
    lives=ageless(),
    ideal_sensors=True,
    baseline_scrap=(0.0, 0.0),
    lot_mean_h=10**6,
)


def _run(
    spec: MachineSpec,
    hours: float,
    *,
    seed: int = 1,
    sample_every_s: float = 60.0,
    crews: Skill = ABSENT,
) -> tuple[list[Event], list[dict[str, float]]]:
    model = MachineModel(spec, random.Random(seed), START)
    # The wear tests look at the physics: by default no crew corrects anything.
    model.crews.skills = (crews,) * 3
    events: list[Event] = list(model.start())
    samples: list[dict[str, float]] = []
    t = START
    while t < START + timedelta(hours=hours):
        t += timedelta(seconds=sample_every_s)
        events += model.advance(t)
        samples.append(
            {
                **model.sample(),
                "state": float(list(MachineState).index(model.state)),
                **{f"health:{c.value}": h for c, h in model.truth().items()},
            }
        )
    return events, samples


RUNNING = float(list(MachineState).index(MachineState.RUNNING))


def _health(samples: list[dict[str, float]], component: Component, ts: datetime) -> float:
    """The true health of `component` at the sample just before `ts` (samples each minute)."""
    k = int((ts - START).total_seconds() // 60) - 1
    return samples[max(0, k)][f"health:{component.value}"]


def _by_health(
    events: list[Event],
    samples: list[dict[str, float]],
    component: Component,
    failure: ComponentFailed,
    worn_below: float = 0.6,
) -> tuple[list[CycleDone], list[CycleDone]]:
    """Cycles before `failure` with the component like new (health >= 0.95) and worn."""
    cycles = _before(events, failure)
    new = [c for c in cycles if _health(samples, component, c.ts) >= 0.95]
    worn = [c for c in cycles if _health(samples, component, c.ts) <= worn_below]
    assert len(new) > 500
    assert len(worn) > 50
    return new, worn


def _running(
    samples: list[dict[str, float]], component: Component, lo: float, hi: float
) -> list[dict[str, float]]:
    """Samples while running with the component's health in [lo, hi]."""
    key = f"health:{component.value}"
    return [s for s in samples if s["state"] == RUNNING and lo <= s[key] <= hi]


def _cycles(events: list[Event]) -> list[CycleDone]:
    return [e for e in events if isinstance(e, CycleDone)]


def _param(cycles: list[CycleDone], name: str) -> list[float]:
    return [c.parameters[name] for c in cycles]


def test_a_healthy_machine_runs_inside_the_design_tables_bands() -> None:
    events, samples = _run(QUIET, 6)
    cycles = _cycles(events)
    assert len(cycles) > 1300  # 6 h of ~14.8 s cycles
    med = {name: statistics.median(_param(cycles, name)) for name in cycles[0].parameters}
    # close 1.2 + inject 0.6 + hold 3.0 + cool 8 + open 1.2 + eject 0.8; dosing 3.5 within cooling
    assert med["CycleTime"] == pytest.approx(14.8, abs=0.2)
    assert med["InjectionTime"] == pytest.approx(0.6, abs=0.03)
    assert med["DosingTime"] == pytest.approx(3.5, abs=0.1)
    assert med["CoolingTime"] == pytest.approx(8.0, abs=0.1)
    assert med["CushionStroke"] == pytest.approx(5.0, abs=0.2)
    assert all(3.8 < c < 6.2 for c in _param(cycles, "CushionStroke"))  # ~5 mm, within 1 mm
    assert all(400 < p < 1300 for p in _param(cycles, "SpecificPressureMaximum"))
    for c in cycles:
        hold_share = c.parameters["HoldPressure"] / c.parameters["SpecificPressureMaximum"]
        assert 0.3 <= hold_share <= 0.8
    weights = _param(cycles, "PartWeight")
    assert 0.001 < statistics.pstdev(weights) / statistics.mean(weights) < 0.0025  # sigma ~0.15 %
    assert 20 <= med["MouldTemperature"] <= 50  # PP
    assert 0.03 < med["CycleEnergy"] < 0.2  # kWh per shot of a 48 g shot on a hydraulic machine
    settled = samples[60:]  # after the first hour
    for name, setpoint in (
        ("TempZone1", 45),
        ("TempZone2", 200),
        ("TempZone3", 215),
        ("TempZone4", 225),
        ("TempNozzle", 230),
    ):
        values = [s[name] for s in settled]
        assert abs(statistics.mean(values) - setpoint) < 3.5, name
    for name in ("HeaterOutputZone2", "HeaterOutputZone3", "HeaterOutputZone4"):
        assert all(30 < s[name] < 60 for s in settled)  # the controllers hold with headroom
    assert all(30 <= s["TempOil"] <= 50 for s in settled)


def test_an_abs_mould_runs_a_hotter_barrel_and_mould() -> None:
    spec = replace(QUIET, moulds=(MOULDS["housing-abs-2"],))
    events, samples = _run(spec, 2)
    cycles = _cycles(events)
    assert 40 <= statistics.median(_param(cycles, "MouldTemperature")) <= 80
    assert 235 < statistics.mean(s["TempZone4"] for s in samples[30:]) < 245
    assert statistics.median(_param(cycles, "CycleTime")) == pytest.approx(
        MOULDS["housing-abs-2"].ideal_cycle_s, rel=0.02
    )


def test_dosing_lengthens_the_cycle_only_when_it_outlasts_cooling() -> None:
    base = MOULDS["bracket-pp-4"]
    short = replace(QUIET, moulds=(replace(base, dose_s=6.0),))
    long = replace(QUIET, moulds=(replace(base, dose_s=10.0),))
    base_cycle = statistics.median(_param(_cycles(_run(QUIET, 1)[0]), "CycleTime"))
    short_cycle = statistics.median(_param(_cycles(_run(short, 1)[0]), "CycleTime"))
    long_cycle = statistics.median(_param(_cycles(_run(long, 1)[0]), "CycleTime"))
    assert short_cycle == pytest.approx(base_cycle, abs=0.1)  # 6 s of dosing hides in 8 s cooling
    assert long_cycle == pytest.approx(base_cycle + 2.0, abs=0.25)  # 10 s: 2 s longer


def test_pressure_and_screw_follow_the_cycle_phases() -> None:
    model = MachineModel(QUIET, random.Random(3), START)
    model.advance(START + timedelta(minutes=10))
    trace: list[tuple[float, float]] = []
    t = START + timedelta(minutes=10)
    for _ in range(int(15 / 0.05)):
        t += timedelta(seconds=0.05)
        model.advance(t)
        s = model.sample()
        trace.append((s["PressureHydraulic"], s["ScrewPosition"]))
    pressures = [p for p, _ in trace]
    positions = [x for _, x in trace]
    stroke = max(positions)
    assert max(pressures) > 70  # injection: ~90 bar hydraulic for 900 bar specific
    assert min(positions) == pytest.approx(5.0, abs=0.5)  # the cushion, at hold
    assert 50 < stroke < 70  # 48 g of PP in a 40 mm screw, plus cushion and decompression
    assert any(3.4 <= p <= 5.2 for p in pressures)  # back pressure while dosing (34-52 bar)


def test_the_same_seed_gives_the_same_run_however_it_is_advanced() -> None:
    spec = replace(
        MachineSpec("imm-01"),
        lives=(ComponentLife(Component.CHECK_RING, scale_h=20.0, initial_health=0.9),),
    )
    one = MachineModel(spec, random.Random(42), START)
    two = MachineModel(spec, random.Random(42), START)
    end = START + timedelta(hours=30)
    in_one_go = one.advance(end)
    in_steps: list[Event] = []
    t = START
    while t < end:
        t += timedelta(seconds=7.3)
        in_steps += two.advance(min(t, end))
    assert in_one_go == in_steps
    assert len(_cycles(in_one_go)) > 2500
    again = MachineModel(spec, random.Random(42), START)
    assert again.advance(end) == in_one_go
    assert again.sample() == one.sample()
    other = MachineModel(spec, random.Random(43), START).advance(end)
    assert other != in_one_go


# --- faults --------------------------------------------------------------------------------


def _degrading(component: Component, scale_h: float = 20.0) -> MachineSpec:
    """QUIET, but `component` wears out in about `scale_h` running hours (at reference load)."""
    life = ComponentLife(component, scale_h, shape=30.0, sudden_share=0.0, initial_age_h=0.0)
    return replace(QUIET, lives=ageless(life))


def _until_failure(
    component: Component, hours: float = 40, scale_h: float = 20.0
) -> tuple[list[Event], list[dict[str, float]], ComponentFailed]:
    events, samples = _run(_degrading(component, scale_h), hours)
    failures = [e for e in events if isinstance(e, ComponentFailed)]
    assert failures, f"{component} never broke down"
    return events, samples, failures[0]


def _before(events: list[Event], failure: ComponentFailed) -> list[CycleDone]:
    return [c for c in _cycles(events) if c.ts <= failure.ts]


@pytest.mark.parametrize("component", list(Component))
def test_every_degradation_ends_in_its_breakdown_and_repair_restores_it(
    component: Component,
) -> None:
    events, _, failure = _until_failure(component, hours=40)
    assert failure.component is component
    assert failure.mode == "wear"
    after = events[events.index(failure) :]
    fault = next(e for e in after if isinstance(e, StateEntered))
    assert fault.state is MachineState.FAULT
    assert fault.reason == failure.reason
    assert fault.reason in STANDSTILL_REASONS[MachineState.FAULT]
    restored = next(e for e in after if isinstance(e, ComponentRestored))
    assert restored.components == (component,)
    assert restored.why == "repair"
    running = next(e for e in events[events.index(restored) :] if isinstance(e, StateEntered))
    assert running.state is MachineState.RUNNING


@pytest.mark.parametrize("component", HEATERS)
def test_a_failing_heater_band_runs_at_full_output_and_its_zone_sags(
    component: Component,
) -> None:
    _events, samples, _failure = _until_failure(component)
    zone = {"heater_nozzle": "Nozzle"}.get(component.value, "Zone" + component.value[-1])
    new = _running(samples, component, 0.95, 1.0)[60:]
    weak = _running(samples, component, 0.0, 0.2)
    setpoint = statistics.mean(s[f"Temp{zone}"] for s in new)
    assert statistics.mean(s[f"HeaterOutput{zone}"] for s in new) < 55
    assert weak, "never ran on a band this weak"
    if component is Component.HEATER_ZONE2:  # the rear zone has power to spare
        assert statistics.mean(s[f"HeaterOutput{zone}"] for s in weak) > 85
        return
    assert all(s[f"HeaterOutput{zone}"] >= 95.0 for s in weak)
    assert statistics.mean(s[f"Temp{zone}"] for s in weak[-5:]) < setpoint - 1.5
    assert any(int(s["AlarmWord"]) & 0b10 for s in weak)  # heater_fault alarm


def test_a_burnt_out_band_stops_the_machine_which_restarts_only_when_hot_again() -> None:
    events, samples, failure = _until_failure(Component.HEATER_ZONE4, hours=30)
    at = events.index(failure)
    fault = next(e for e in events[at:] if isinstance(e, StateEntered))
    restored = next(e for e in events[at:] if isinstance(e, ComponentRestored))
    running = next(
        e
        for e in events[events.index(restored) :]
        if isinstance(e, StateEntered) and e.state is MachineState.RUNNING
    )
    assert fault.state is MachineState.FAULT
    # no more than one cycle after the burn-out, and no cycle until the zone is hot again
    assert (fault.ts - failure.ts).total_seconds() < 20
    heat_up_s = (running.ts - restored.ts).total_seconds()
    assert 10 * 60 < heat_up_s < 45 * 60  # a barrel zone takes a quarter of an hour or more
    cold = [
        s
        for s, t in zip(samples, range(len(samples)), strict=True)
        if fault.ts <= START + timedelta(minutes=t + 1) < running.ts
    ]
    assert min(s["TempZone4"] for s in cold) < 120  # it cooled right down while burnt out
    first = next(e for e in events[events.index(running) :] if isinstance(e, CycleDone))
    assert first.parameters["MeltTemperature"] > 215


def test_a_worn_check_ring_makes_the_cushion_unstable_and_fall() -> None:
    component = Component.CHECK_RING
    events, samples, failure = _until_failure(component)
    new, worn = _by_health(events, samples, component, failure)
    early, late = _param(new, "CushionStroke"), _param(worn, "CushionStroke")
    assert statistics.mean(late) < statistics.mean(early) - 1.2  # crews that let it fall
    assert statistics.pstdev(late) > 5 * statistics.pstdev(early)
    weights_late = _param(worn, "PartWeight")
    assert statistics.pstdev(weights_late) / statistics.mean(weights_late) > 0.01  # > 1 %


def test_screw_and_barrel_wear_make_dosing_longer() -> None:
    component = Component.SCREW_BARREL
    events, samples, failure = _until_failure(component)
    new, worn = _by_health(events, samples, component, failure)
    assert statistics.mean(_param(worn, "DosingTime")) > 1.5 * statistics.mean(
        _param(new, "DosingTime")
    )


def test_a_worn_pump_heats_the_oil_and_ripples_the_pressure() -> None:
    component = Component.HYDRAULIC_PUMP
    # A longer life: the oil (a slow temperature) follows the pump's last hours.
    events, samples, failure = _until_failure(component, hours=70, scale_h=50.0)
    early, late = _running(samples, component, 0.95, 1.0)[60:], _running(samples, component, 0, 0.5)
    assert (
        statistics.mean(s["TempOil"] for s in late)
        > statistics.mean(s["TempOil"] for s in early) + 6
    )
    new, worn = _by_health(events, samples, component, failure)
    assert statistics.mean(_param(worn, "HoldPressure")) < 0.88 * statistics.mean(
        _param(new, "HoldPressure")
    )
    # Ripple: the spread of the pressure while holding (hold is 3 s of every cycle).
    model = MachineModel(_degrading(component, 50.0), random.Random(1), START)
    model.crews.skills = (ABSENT,) * 3
    worn_at = next(c.ts for c in _cycles(events) if _health(samples, component, c.ts) <= 0.5)
    spreads = []
    for at in (START + timedelta(hours=2), worn_at):
        model.advance(at)
        holding = []
        t = at
        for _ in range(3000):
            t += timedelta(seconds=0.1)
            model.advance(t)
            if model._cycle and model._cycle.t_hold < t.timestamp() < model._cycle.t_cool:
                holding.append(model.sample()["PressureHydraulic"])
        spreads.append(statistics.pstdev(holding))
    assert spreads[1] > 4 * spreads[0]


def test_fouled_cooling_channels_heat_the_mould_and_lengthen_cooling() -> None:
    component = Component.COOLING_CHANNELS
    events, samples, failure = _until_failure(component)
    new, worn = _by_health(events, samples, component, failure)
    mould_rise = statistics.mean(_param(worn, "MouldTemperature")) - statistics.mean(
        _param(new, "MouldTemperature")
    )
    assert mould_rise > 6
    assert statistics.mean(_param(worn, "CoolingTime")) > 1.15 * statistics.mean(
        _param(new, "CoolingTime")
    )


def test_a_worn_ejector_needs_more_force() -> None:
    component = Component.EJECTOR
    events, samples, failure = _until_failure(component)
    new, worn = _by_health(events, samples, component, failure)
    assert statistics.mean(_param(worn, "EjectionForceMaximum")) > 1.4 * statistics.mean(
        _param(new, "EjectionForceMaximum")
    )


# --- scrap has process causes --------------------------------------------------------------


def _scrap(cycles: list[CycleDone]) -> tuple[float, Counter[str | None]]:
    bad = [c for c in cycles if c.quality is PartQuality.BAD]
    return len(bad) / len(cycles), Counter(c.defect for c in bad)


def test_a_stable_process_without_baseline_causes_makes_no_scrap() -> None:
    rate, _ = _scrap(_cycles(_run(QUIET, 8)[0]))
    assert rate == 0.0  # QUIET has no baseline scrap: the process itself is stable


@pytest.mark.parametrize(
    ("component", "defect", "worn_below"),
    [
        (Component.CHECK_RING, "weight_out_of_tolerance", 0.6),  # the cushion runs: weight too
        (Component.CHECK_RING, "sink_marks", 0.5),  # ... and, bottomed out, nothing holds
        (Component.HYDRAULIC_PUMP, "sink_marks", 0.5),  # too little hold pressure
        (Component.HYDRAULIC_PUMP, "short_shot", 0.4),  # too little injection pressure to fill
        (Component.COOLING_CHANNELS, "warpage", 0.3),  # a hot mould
    ],
)
def test_scrap_rises_with_its_process_cause(
    component: Component, defect: str, worn_below: float
) -> None:
    events, samples, failure = _until_failure(component)
    new, worn = _by_health(events, samples, component, failure, worn_below)
    early_rate, _ = _scrap(new)
    late_rate, causes = _scrap(worn)
    assert early_rate < 0.01
    assert late_rate > 0.1
    assert causes[defect] >= 10


def test_a_long_standstill_scraps_the_first_shots_after_it() -> None:
    spec = replace(MachineSpec("imm-01"), calendar=NO_SHIFTS, micro_stops_per_h=0.0)
    events, _ = _run(spec, 72)
    restarts = 0
    for i, event in enumerate(events):
        if not (isinstance(event, StateEntered) and event.state is MachineState.RUNNING):
            continue
        previous = next((e for e in reversed(events[:i]) if isinstance(e, StateEntered)), None)
        stopped_s = (event.ts - previous.ts).total_seconds() if previous else 0
        first = next(e for e in events[i:] if isinstance(e, CycleDone))
        if stopped_s >= 600:
            restarts += 1
            assert first.defect == "startup_scrap"
        elif stopped_s and stopped_s < 300:
            assert first.defect is None
    assert restarts >= 3


# --- production life -----------------------------------------------------------------------


def test_two_shifts_on_weekdays_stop_at_night_and_at_the_weekend_in_local_time() -> None:
    # Rome moves its clocks on 29 March 2026: shift times stay 06:00 and 22:00 local.
    spec = replace(QUIET, calendar=ShiftCalendar.two_shifts_weekdays("Europe/Rome"))
    start = datetime(2026, 3, 23, 0, 0, tzinfo=UTC)
    model = MachineModel(spec, random.Random(5), start)
    events = model.advance(start + timedelta(days=14))
    rome = ZoneInfo("Europe/Rome")
    cycles = _cycles(events)
    assert all(c.ts.astimezone(rome).weekday() < 5 for c in cycles)
    started = [c.ts - timedelta(seconds=c.parameters["CycleTime"] - 0.001) for c in cycles]
    assert all(6 <= t.astimezone(rome).hour < 22 for t in started)  # and finish the one begun
    stops = [
        e.ts.astimezone(rome)
        for e in events
        if isinstance(e, StateEntered) and e.reason == "no_shift"
    ]
    assert {(t.hour, t.minute) for t in stops} == {(22, 0)}
    starts = [
        e.ts.astimezone(rome)
        for e in events
        if isinstance(e, StateEntered) and e.state is MachineState.RUNNING
    ]
    # Ten weekdays; on the Monday after the weekend the mould warms up first (a setup).
    assert sum(1 for t in starts if (t.hour, t.minute) == (6, 0)) == 9
    breaks = [e for e in events if isinstance(e, StateEntered) and e.reason == "break"]
    assert len(breaks) == 20  # one per shift


def test_two_weeks_of_production_have_realistic_stops_setups_and_availability() -> None:
    spec = MachineSpec("imm-01", moulds=(MOULDS["bracket-pp-4"], MOULDS["cap-pp-8"]))
    model = MachineModel(spec, random.Random(11), START)
    events = model.start() + model.advance(START + timedelta(days=14))
    changes = [e for e in events if isinstance(e, StateEntered)]
    time_in: Counter[MachineState] = Counter()
    reasons: Counter[tuple[MachineState, str | None]] = Counter()
    for this, nxt in itertools.pairwise(changes):
        time_in[this.state] += (nxt.ts - this.ts).total_seconds()
        reasons[(this.state, this.reason)] += 1
    for state, reason in reasons:
        if state is not MachineState.RUNNING:
            assert reason in STANDSTILL_REASONS[state]
    planned_busy = sum(time_in.values()) - time_in[MachineState.PLANNED_STOP]
    availability = time_in[MachineState.RUNNING] / planned_busy
    assert 0.75 < availability < 0.97
    assert reasons[(MachineState.SETUP, "mould_change")] >= 2
    assert {c.mould for c in _cycles(events)} == {"bracket-pp-4", "cap-pp-8"}
    unplanned = {r for (s, r) in reasons if s is MachineState.UNPLANNED_STOP}
    assert len(unplanned) >= 4
    assert {r for (s, r) in reasons if s is MachineState.IDLE} == {"starved", "blocked"}
    # micro-stops: a few cycles a shift run long while the machine stays running
    cycle_times = _param(_cycles(events), "CycleTime")
    long = sum(1 for c in cycle_times if c > 25)
    assert 30 < long < 0.015 * len(cycle_times)


def test_a_mould_change_to_another_material_heats_the_barrel_during_the_setup() -> None:
    pp, abs_ = MOULDS["bracket-pp-4"], MOULDS["housing-abs-2"]
    spec = replace(QUIET, moulds=(pp, abs_), job_parts=(2000, 2000))
    events, _ = _run(spec, 12)
    setup = next(e for e in events if isinstance(e, StateEntered) and e.state is MachineState.SETUP)
    after = [c for c in _cycles(events) if c.ts > setup.ts]
    first_abs = next(c for c in after if c.mould == abs_.name)
    assert first_abs.parameters["MeltTemperature"] == pytest.approx(
        abs_.material.melt_nominal_c, abs=5
    )
    assert abs(first_abs.parameters["MouldTemperature"] - abs_.material.mould_setpoint_c) < 8
    abs_cycles = [c for c in after if c.mould == abs_.name][:200]
    assert _scrap(abs_cycles)[0] < 0.02  # the change itself makes no scrap but the start-up


def test_alarm_bits_follow_the_machines_condition() -> None:
    cases = {
        Component.HYDRAULIC_PUMP: (1 << 3, 50.0),  # oil above 60 degC near the end
        Component.COOLING_CHANNELS: (1 << 4, 20.0),  # mould 10 degC over its setpoint
        Component.CHECK_RING: (1 << 2, 20.0),  # cushion under 1 mm
        Component.EJECTOR: (1 << 5, 20.0),  # ejection force 30 % up
    }
    for component, (bit, scale_h) in cases.items():
        _events, samples, failure = _until_failure(component, hours=70, scale_h=scale_h)
        minutes = int((failure.ts - START).total_seconds() // 60)
        assert not any(int(s["AlarmWord"]) & bit for s in samples[:120]), component
        assert any(int(s["AlarmWord"]) & bit for s in samples[minutes - 120 : minutes]), component
        faulted = samples[minutes + 1]
        assert int(faulted["AlarmWord"]) & (1 << 6)  # machine_fault while in fault


def test_planned_maintenance_restores_a_worn_component() -> None:
    worn = ComponentLife(Component.CHECK_RING, scale_h=400.0, initial_health=0.8)
    spec = replace(
        QUIET,
        lives=ageless(worn),
        maintenance=(Maintenance(10.0, (Component.CHECK_RING,), 2.0),),
    )
    model = MachineModel(spec, random.Random(2), START)
    events = model.advance(START + timedelta(hours=11))
    stop = next(
        e for e in events if isinstance(e, StateEntered) and e.state.value == "planned_stop"
    )
    assert stop.reason == "planned_maintenance"
    assert stop.ts - START == pytest.approx(timedelta(hours=10), abs=timedelta(minutes=1))
    assert not [e for e in events if isinstance(e, ComponentFailed)]
    assert model.truth()[Component.CHECK_RING] < 0.8
    events = model.advance(START + timedelta(hours=13))
    restored = next(e for e in events if isinstance(e, ComponentRestored))
    assert restored.why == "maintenance"
    assert model.truth()[Component.CHECK_RING] > 0.999  # as new, and wearing again


def test_the_barrel_is_switched_off_for_the_weekend_and_hot_for_the_monday_shift() -> None:
    spec = replace(QUIET, calendar=ShiftCalendar.two_shifts_weekdays("Europe/Rome"))
    start = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # Friday
    model = MachineModel(spec, random.Random(4), start)
    model.advance(datetime(2026, 11, 22, 12, 0, tzinfo=UTC))  # Sunday noon
    sunday = model.sample()
    assert sunday["TempZone4"] < 60
    assert sunday["TempOil"] < 30
    assert sunday["HeaterOutputZone4"] == 0.0  # heating off: the controller outputs nothing
    events = model.advance(datetime(2026, 11, 23, 6, 0, tzinfo=UTC))  # Monday 07:00 in Rome
    # 06:00 local: the barrel is hot (the timer), the mould was left off for the weekend.
    shift_start = next(e for e in events if isinstance(e, StateEntered))
    assert shift_start.ts == datetime(2026, 11, 23, 5, 0, tzinfo=UTC)
    assert (shift_start.state, shift_start.reason) == (MachineState.SETUP, "warm_up")
    restart = next(e for e in events if isinstance(e, StateEntered) and e.state.value == "running")
    assert timedelta(minutes=3) < restart.ts - shift_start.ts < timedelta(minutes=40)
    first = next(e for e in events if isinstance(e, CycleDone))
    assert first.parameters["MeltTemperature"] > 220


# --- jobs ----------------------------------------------------------------------------------


def test_orders_go_through_euromap_77_job_statuses_and_each_cycle_names_its_order() -> None:
    pp4, pp8 = MOULDS["bracket-pp-4"], MOULDS["cap-pp-8"]
    spec = replace(QUIET, moulds=(pp4, pp8), job_parts=(400, 400), setup_median_min=10.0)
    model = MachineModel(spec, random.Random(5), START)
    events = model.start() + model.advance(START + timedelta(hours=4))
    jobs = [e for e in events if isinstance(e, JobChanged)]
    # Under way when the machine comes up, then order after order: set up, started up (the
    # first good parts end it), produced, finished when its good parts are made.
    assert jobs[0].ts == START
    assert jobs[0].job.job_status is JobStatus.JOB_IN_PRODUCTION
    cycle_of_each = [
        JobStatus.SET_UP_ACTIVE,
        JobStatus.START_UP_ACTIVE,
        JobStatus.JOB_IN_PRODUCTION,
        JobStatus.JOB_FINISHED,
    ]
    statuses = [j.job.job_status for j in jobs[1:]]
    assert statuses[: 3 * 4] == [JobStatus.JOB_FINISHED, *cycle_of_each * 3][: 3 * 4]
    names = list(dict.fromkeys(j.job.job_name for j in jobs))
    assert len(names) >= 4
    assert names[1] == f"imm-01-{jobs[2].ts:%y%m%d-%H%M}"  # the machine and the set-up's minute
    for job in (j.job for j in jobs):
        mould = pp4 if job.mould_id == pp4.name else pp8
        assert (job.active_cavities, job.nominal_parts, job.material) == (
            mould.cavities, 400, "PP",
        )  # fmt: skip
    # Each order's cycles name it, and the finished ones made their nominal good parts.
    cycles = _cycles(events)
    assert {c.job for c in cycles} == set(names[: len({c.job for c in cycles})])
    finished = {j.job.job_name for j in jobs if j.job.job_status is JobStatus.JOB_FINISHED}
    for name in finished - {names[0]}:  # the first was under way when the machine came up
        mine = [c for c in cycles if c.job == name]
        good_parts = sum(c.parts for c in mine if c.quality is PartQuality.GOOD)
        assert 400 <= good_parts < 400 + mine[0].parts
    assert model.job.job_name == names[-1]


# --- quality-control samples and orders that keep the machine waiting -----------------------


def test_a_quality_control_sample_every_2_running_hours_gives_test_parts() -> None:
    events, samples = _run(QUIET, 9)
    cycles = _cycles(events)
    tests = [k for k, c in enumerate(cycles) if c.quality is PartQuality.TEST]
    # QUIET runs unbroken: 9 h of running, a sample each 2 h of it, 4 in all.
    assert len(tests) == 4
    after = 0
    for k in tests:
        running_s = sum(c.parameters["CycleTime"] for c in cycles[after : k + 1])
        assert 7200 - 1 <= running_s < 7200 + 20  # the cycle in which 2 h are reached
        assert cycles[k].defect is None  # a sample is of fine parts: neither good nor bad
        assert cycles[k].parts == QUIET.moulds[0].cavities
        after = k + 1
    # The good counter does not count them; the shot counter does.
    good = sum(c.parts for c in cycles if c.quality is PartQuality.GOOD)
    bad = sum(c.parts for c in cycles if c.quality is PartQuality.BAD)
    assert (samples[-1]["CounterGood"], samples[-1]["CounterBad"]) == (good, bad)
    assert samples[-1]["CounterShots"] == len(cycles)
    assert good + bad + 4 * QUIET.moulds[0].cavities == sum(c.parts for c in cycles)


def test_no_samples_with_an_interval_of_0_and_otherwise_the_same_run() -> None:
    never = replace(QUIET, test_sample_interval_h=0.0)
    with_samples = _cycles(_run(QUIET, 5)[0])
    without = _cycles(_run(never, 5)[0])
    assert {c.quality for c in without} == {PartQuality.GOOD}
    # Taking samples draws nothing at random: the same cycles, only their quality differs.
    assert [(c.ts, c.parameters) for c in with_samples] == [(c.ts, c.parameters) for c in without]
    differ = [a for a, b in zip(with_samples, without, strict=True) if a.quality != b.quality]
    assert [c.quality for c in differ] == [PartQuality.TEST, PartQuality.TEST]


def test_an_order_that_is_not_there_yet_is_a_planned_stop_no_order() -> None:
    spec = replace(
        QUIET, job_parts=(400, 400), setup_median_min=10.0, order_gap_median_h=0.5,
        test_sample_interval_h=0.0,
    )  # fmt: skip
    model = MachineModel(spec, random.Random(5), START)
    events = model.start() + model.advance(START + timedelta(hours=6))
    finished = [
        e for e in events
        if isinstance(e, JobChanged) and e.job.job_status is JobStatus.JOB_FINISHED
    ]  # fmt: skip
    assert len(finished) >= 3
    for done in finished[:-1]:  # the last may still wait when the run ends
        # Finished, the machine waits for its next order, then sets up for it.
        after = [e for e in events if isinstance(e, StateEntered) and e.ts >= done.ts][:2]
        assert [(e.state, e.reason) for e in after] == [
            (MachineState.PLANNED_STOP, "no_order"),
            (MachineState.SETUP, "mould_change"),
        ]
        wait_h = (after[1].ts - after[0].ts).total_seconds() / 3600
        assert 0.05 < wait_h < 5.0  # log-normal about half an hour
    assert "no_order" in STANDSTILL_REASONS[MachineState.PLANNED_STOP]
    # By default the next order is always waiting: a mould change at once, no draw for it.
    plain = MachineModel(replace(spec, order_gap_median_h=0.0), random.Random(5), START)
    states = [e for e in plain.advance(START + timedelta(hours=6)) if isinstance(e, StateEntered)]
    assert all(e.reason != "no_order" for e in states)
