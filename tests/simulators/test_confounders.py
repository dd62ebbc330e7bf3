"""What a model must see through: the hall's day and season, lots, setters and sensors."""

from __future__ import annotations

import itertools
import math
import random
import statistics
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from contracts.registers import RegisterMap
from simulators import (
    Component,
    ComponentLife,
    CycleDone,
    MachineModel,
    MachineSpec,
    ShiftCalendar,
)
from simulators.environment import Climate
from simulators.floor import ModbusFloor
from simulators.modbus import load_register_map
from simulators.mqtt import SimulatedMachine
from simulators.operators import SKILLS, Skill
from simulators.scenario import load_scenario
from simulators.sensors import TEMPS

WINTER = datetime(2026, 1, 12, 0, 0, tzinfo=UTC)  # a Monday
SUMMER = datetime(2026, 7, 13, 0, 0, tzinfo=UTC)
AROUND = ShiftCalendar(shifts=())
EVERLASTING = tuple(
    ComponentLife(c, scale_h=1e6, sudden_share=0.0, initial_age_h=0.0) for c in Component
)
STEADY = MachineSpec(  # producing without stops, wear or mould changes
    "imm-01",
    calendar=AROUND,
    stops=(),
    micro_stops_per_h=0.0,
    job_parts=(10**9, 10**9),
    lives=EVERLASTING,
)
ABSENT = Skill("absent", 1e9, 1e9, tweak_share=0.0, watches_scrap=False)


def _samples(
    spec: MachineSpec, start: datetime, hours: float, every_s: float = 60.0, seed: int = 1
) -> tuple[MachineModel, list[tuple[float, dict[str, float]]]]:
    model = MachineModel(spec, random.Random(seed), start)
    model.crews.skills = (ABSENT,) * 3
    out = []
    t = start
    while t < start + timedelta(hours=hours):
        t += timedelta(seconds=every_s)
        model.advance(t)
        out.append((t.timestamp(), {**model.sample(), "air": model.air_c, "true_oil": model.oil_c}))
    return model, out


def _corr(xs: list[float], ys: list[float]) -> float:
    return statistics.correlation(xs, ys)


def test_the_hall_follows_the_day_and_the_season_in_local_time() -> None:
    climate = Climate("demo", "Europe/Rome")
    day = [climate.air_c((WINTER + timedelta(hours=h)).timestamp()) for h in range(24 * 7)]
    by_hour = [statistics.mean(day[h::24]) for h in range(24)]
    # Rome is UTC+1 in winter: warmest mid-afternoon local (~14 UTC), coolest before dawn.
    assert 12 <= max(range(24), key=lambda h: by_hour[h]) <= 16
    assert max(by_hour) - min(by_hour) > 3.5
    winter = statistics.mean(day)
    summer = statistics.mean(
        climate.air_c((SUMMER + timedelta(hours=h)).timestamp()) for h in range(24 * 7)
    )
    assert summer - winter > 6
    assert climate.water_c(30.0) > climate.water_c(15.0) + 5


def test_mould_and_oil_temperatures_follow_the_hall() -> None:
    spec = replace(STEADY, ideal_sensors=True)
    _, winter = _samples(spec, WINTER, 72)
    _, summer = _samples(spec, SUMMER, 72)
    settled = winter[120:]
    air = [s["air"] for _, s in settled]
    assert _corr(air, [s["TempOil"] for _, s in settled]) > 0.6
    assert _corr(air, [s["TempMould"] for _, s in settled]) > 0.6
    for name in ("TempOil", "TempMould"):
        assert (
            statistics.mean(s[name] for _, s in summer[120:])
            > statistics.mean(s[name] for _, s in settled) + 1.5
        )


def test_material_lots_and_regrind_move_the_injection_pressure() -> None:
    spec = replace(STEADY, lot_mean_h=3.0, ideal_sensors=True, baseline_scrap=(0.0, 0.0))
    model = MachineModel(spec, random.Random(2), WINTER)
    by_lot: dict[int, list[float]] = {}
    t = WINTER
    while t < WINTER + timedelta(hours=48):
        t += timedelta(seconds=30)
        for e in model.advance(t):
            if isinstance(e, CycleDone):
                by_lot.setdefault(model.lot.number, []).append(
                    e.parameters["SpecificPressureMaximum"]
                )
    lots = [v for v in by_lot.values() if len(v) > 200]
    assert len(lots) >= 8  # a new lot every few hours
    means = [statistics.mean(v[50:]) for v in lots]
    within = statistics.mean(statistics.pstdev(v[50:]) for v in lots)
    assert statistics.pstdev(means) > within  # lots differ more than shots within a lot
    # Regrind flows more easily: less pressure for the same part.
    model.regrind = 0.0
    virgin = _pressures(model)
    model.regrind = 0.3
    assert statistics.mean(_pressures(model)) < 0.95 * statistics.mean(virgin)


def _pressures(model: MachineModel) -> list[float]:
    t = model.now
    events = model.advance(t + timedelta(minutes=30))
    return [e.parameters["SpecificPressureMaximum"] for e in events if isinstance(e, CycleDone)]


def test_the_training_floor_changes_moulds_and_materials_often() -> None:
    scenario = load_scenario("pdm-train")
    start = scenario.start or WINTER
    changes = 0
    materials: set[str] = set()
    for i, spec in enumerate(scenario.machines[:3]):
        model = MachineModel(spec, random.Random(i), start)
        material = {m.name: m.material.name for m in spec.moulds}
        for e in model.advance(start + timedelta(days=7)):
            if isinstance(e, CycleDone):
                materials.add(material[e.mould])
            elif getattr(e, "reason", None) == "mould_change":
                changes += 1
    assert changes / 3 >= 2  # mould changes per press and week
    assert len(materials) >= 2


def test_a_good_setter_hides_a_wearing_check_ring_by_raising_the_shot() -> None:
    worn = ComponentLife(Component.CHECK_RING, scale_h=1e6, initial_health=0.67)
    others = tuple(lv for lv in EVERLASTING if lv.component is not Component.CHECK_RING)
    spec = replace(STEADY, lives=(worn, *others), ideal_sensors=True)
    results = {}
    for name, skill in (("absent", ABSENT), ("good", SKILLS["good"])):
        model = MachineModel(spec, random.Random(3), WINTER)
        model.crews.skills = (skill,) * 3
        events = model.advance(WINTER + timedelta(hours=8))
        cycles = [e for e in events if isinstance(e, CycleDone)][1000:]
        results[name] = (
            statistics.mean(c.parameters["CushionStroke"] for c in cycles),
            statistics.mean(c.parameters["PlastificationVolume"] for c in cycles),
            statistics.pstdev(c.parameters["CushionStroke"] for c in cycles),
        )
    (fell, volume, _spread), (kept, raised, hidden_spread) = results["absent"], results["good"]
    assert fell < 5.0 - 0.9  # nobody correcting: the cushion falls
    assert abs(kept - 5.0) < 0.6  # the good setter keeps it where it should be ...
    assert raised > volume + 1.0  # ... by dosing more (cm3)
    assert hidden_spread > 0.4  # but not the spread: that stays for a model to find


def _residuals(name: str, samples: list[tuple[float, dict[str, float]]], true: str) -> list[float]:
    return [s[name] - s[true] for _, s in samples if not math.isnan(s[name])]


def test_sensor_noise_is_coloured_with_offsets_between_machines_and_slow_drift() -> None:
    spec = replace(STEADY)
    one, a = _samples(spec, WINTER, 24, every_s=10.0, seed=1)
    two, b = _samples(spec, WINTER, 24, every_s=10.0, seed=2)
    ra, rb = _residuals("TempOil", a, "true_oil"), _residuals("TempOil", b, "true_oil")
    # AR(1) and slower: neighbouring readings' errors are strongly correlated (white: ~0).
    lag1 = statistics.correlation(ra[:-1], ra[1:])
    assert lag1 > 0.6
    # Each press its own fixed offsets.
    assert abs(statistics.mean(ra) - statistics.mean(rb)) > 0.05
    assert one.sensors.offset != two.sensors.offset
    # The readings carry each sensor's offset and drift: the residual's mean is that bias.
    mid = a[len(a) // 2][0]
    assert abs(statistics.mean(ra) - one.sensors.bias_c("TempOil", mid)) < 0.4
    # Drift: the bias grows by a fixed amount per day.
    name = "TempMould"
    t0 = WINTER.timestamp()
    drifts = [one.sensors.bias_c(name, t0 + d * 86_400) for d in range(0, 40, 10)]
    steps = [b - a for a, b in itertools.pairwise(drifts)]
    assert all(abs(s - steps[0]) < 1e-9 for s in steps)
    assert any(abs(one.sensors.drift_per_day[n]) > 0.01 for n in TEMPS)


def test_sensors_drop_out_as_nan_and_stick_for_hours() -> None:
    _, samples = _samples(STEADY, WINTER, 24 * 8, every_s=60.0, seed=4)
    dropped = sum(
        math.isnan(s["TempZone3"]) or math.isnan(s["PressureHydraulic"]) for _, s in samples
    )
    assert 0 < dropped < 0.02 * len(samples)
    # Stuck: a temperature reading repeating exactly for an hour or more (a live one moves).
    longest = 0
    for name in TEMPS:
        run = 1
        for (_, x), (_, y) in itertools.pairwise(samples):
            run = run + 1 if x[name] == y[name] else 1
            longest = max(longest, run)
    assert longest >= 60
    # Counters and alarms come from the controller: never dropped.
    assert not any(math.isnan(s["CounterShots"]) for _, s in samples)


def test_a_dropped_reading_is_not_sent_on_the_wire() -> None:
    machine = SimulatedMachine(STEADY, random.Random(1), WINTER)
    batch = machine.telemetry(
        [(WINTER, {"TempOil": 42.0, "TempMould": math.nan}), (WINTER, {"TempMould": 36.0})]
    )
    assert [(r.signal, r.value) for r in batch.readings] == [("TempOil", 42.0), ("TempMould", 36.0)]


def test_a_dropped_reading_leaves_the_modbus_register_as_it_was() -> None:
    register_map: RegisterMap = load_register_map()
    floor = ModbusFloor([STEADY], register_map, base_port=0, start=WINTER)
    model = floor._models[0]
    floor._update(WINTER + timedelta(seconds=30))
    before = dict(floor._readings[0])
    model.sensors._drop_until["TempOil"] = math.inf  # the oil sensor's wire breaks
    floor._update(WINTER + timedelta(seconds=60))
    assert floor._readings[0]["TempOil"] == before["TempOil"]
    assert all(not math.isnan(v) for v in floor._readings[0].values())
    assert floor._readings[0]["TempMould"] != before["TempMould"]  # the others do move
