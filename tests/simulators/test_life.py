"""Component lives: Weibull spread, the P-F curve, load, sudden failures, cross-effects."""

from __future__ import annotations

import itertools
import math
import random
import statistics
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from simulators import (
    DEFAULT_LIVES,
    MOULDS,
    Component,
    ComponentFailed,
    ComponentLife,
    MachineModel,
    MachineSpec,
    ShiftCalendar,
)
from simulators.life import COMPONENTS, SUDDEN, THRESHOLD, WEAR, Wear
from simulators.operators import Skill
from simulators.scenario import load_scenario

ABSENT = Skill("absent", 1e9, 1e9, tweak_share=0.0, watches_scrap=False)

START = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)
ONE = [1.0] * len(COMPONENTS)
RING = COMPONENTS.index(Component.CHECK_RING)


def _lives(component: Component, n: int, **own: float) -> list[tuple[float, str]]:
    """`n` lives of `component` run to their end at reference load: (hours, mode) each."""
    wear = Wear(random.Random(5), (ComponentLife(component, initial_age_h=0.0, **own),))
    out = []
    for _ in range(n):
        hours = 0.0
        while True:
            failures = wear.age(5.0, ONE)
            hours += 5.0
            if any(f.component is component for f in failures):
                out.append((hours, wear.mode(component)))
                wear.restore([component])
                break
    return out


def test_lifetimes_are_weibull_with_the_components_scale_and_shape() -> None:
    spec = DEFAULT_LIVES[Component.CHECK_RING]
    hours = [h for h, mode in _lives(Component.CHECK_RING, 400, sudden_share=0.0)]
    assert {mode for _, mode in _lives(Component.CHECK_RING, 20, sudden_share=0.0)} == {WEAR}
    mean = spec.scale_h * math.gamma(1 + 1 / spec.shape)
    sd = spec.scale_h * math.sqrt(
        math.gamma(1 + 2 / spec.shape) - math.gamma(1 + 1 / spec.shape) ** 2
    )
    assert statistics.mean(hours) == pytest.approx(mean, rel=0.06)
    assert statistics.stdev(hours) == pytest.approx(sd, rel=0.15)
    assert min(hours) < 0.5 * spec.scale_h < 1.5 * spec.scale_h < max(hours)  # a real spread
    # Realistic scales: weeks to months of running.
    assert 1000 <= spec.scale_h <= 2000
    assert DEFAULT_LIVES[Component.SCREW_BARREL].scale_h >= 5000
    assert DEFAULT_LIVES[Component.HEATER_ZONE3].scale_h >= 2500


def test_wear_shows_late_and_accelerates_over_the_last_part_of_a_life() -> None:
    for seed in range(30):
        own = ComponentLife(Component.CHECK_RING, sudden_share=0, initial_age_h=0)
        wear = Wear(random.Random(seed), (own,))
        end = wear.life_h(Component.CHECK_RING)
        curve = []
        hours = 0.0
        while Component.CHECK_RING not in {f.component for f in wear.age(1.0, ONE)}:
            hours += 1.0
            curve.append((hours / end, wear.value[Component.CHECK_RING]))
        assert wear.value[Component.CHECK_RING] == THRESHOLD
        # Little visible change for most of the life (the P-F interval is 10-20 % of it) ...
        assert all(h > 0.97 for x, h in curve if x < 0.8)
        # ... then accelerating: the last tenth of the life loses most of the health.
        h90 = min(h for x, h in curve if x <= 0.9)
        assert 1.0 - h90 < h90 - THRESHOLD


def test_a_share_of_lives_ends_suddenly_without_warning() -> None:
    lives = _lives(Component.EJECTOR, 300, sudden_share=0.15)
    share = sum(mode == SUDDEN for _, mode in lives) / len(lives)
    assert 0.10 <= share <= 0.21
    # A sudden failure comes out of a healthy-looking component.
    wear = Wear(
        random.Random(9), (ComponentLife(Component.EJECTOR, sudden_share=1.0, initial_age_h=0),)
    )
    before = 1.0
    while not wear.age(1.0, ONE):
        before = wear.value[Component.EJECTOR]
    assert before > 0.97
    assert wear.mode(Component.EJECTOR) == SUDDEN


def test_load_and_the_wear_time_factor_shorten_a_life() -> None:
    def hours_to_failure(load: float, factor: float) -> float:
        wear = Wear(
            random.Random(3),
            (ComponentLife(Component.CHECK_RING, sudden_share=0, initial_age_h=0),),
            factor,
        )
        loads = [load] * len(COMPONENTS)
        hours = 0.0
        while not any(f.component is Component.CHECK_RING for f in wear.age(0.5, loads)):
            hours += 0.5
        return hours

    base = hours_to_failure(1.0, 1.0)
    assert hours_to_failure(2.0, 1.0) == pytest.approx(base / 2, rel=0.01)
    assert hours_to_failure(1.0, 8.0) == pytest.approx(base / 8, rel=0.01)


def _damage_after(spec: MachineSpec, hours: float, **worn: float) -> MachineModel:
    """`spec` run for `hours`, with the named components starting at these healths."""
    given = {Component(name): health for name, health in worn.items()}
    lives = tuple(
        replace(life, initial_health=given[life.component], initial_age_h=None)
        if life.component in given
        else life
        for life in spec.lives
    )
    model = MachineModel(replace(spec, lives=lives), random.Random(1), START)
    model.crews.skills = (ABSENT,) * 3  # running on, whatever the scrap: wear per hour
    model.advance(START + timedelta(hours=hours))
    return model


QUIET = MachineSpec(
    "imm-01",
    calendar=ShiftCalendar(shifts=()),
    stops=(),
    micro_stops_per_h=0.0,
    job_parts=(10**9, 10**9),
    lives=tuple(
        ComponentLife(c, scale_h=1e6, sudden_share=0.0, initial_age_h=0.0) for c in Component
    ),
    ideal_sensors=True,
)


def test_abrasive_material_fast_cycles_and_heat_wear_faster() -> None:
    pp = _damage_after(QUIET, 6)
    abs_ = _damage_after(replace(QUIET, moulds=(MOULDS["housing-abs-2"],)), 6)
    fast = _damage_after(replace(QUIET, moulds=(MOULDS["cap-pp-8"],)), 6)  # 9 s cycles
    ring, screw = RING, COMPONENTS.index(Component.SCREW_BARREL)
    heater = COMPONENTS.index(Component.HEATER_ZONE4)
    # ABS (abrasive, hotter) against PP: check ring, screw and heater bands wear faster.
    assert abs_.health.damage[ring] > 1.4 * pp.health.damage[ring]
    assert abs_.health.damage[screw] > 1.3 * pp.health.damage[screw]
    assert abs_.health.damage[heater] > 1.3 * pp.health.damage[heater]
    # More shots per hour: more wear per running hour.
    assert fast.health.damage[ring] > 1.2 * pp.health.damage[ring]
    # Every component wears at once, none is spared.
    assert all(d > 0 for d in pp.health.damage)


def test_cross_effects_between_wearing_components() -> None:
    new = _damage_after(QUIET, 4)
    screw = COMPONENTS.index(Component.SCREW_BARREL)
    pump = COMPONENTS.index(Component.HYDRAULIC_PUMP)
    ejector = COMPONENTS.index(Component.EJECTOR)
    # A leaking check ring wears the screw faster.
    leaking = _damage_after(QUIET, 4, check_ring=0.4)
    assert leaking.health.damage[screw] > 1.8 * new.health.damage[screw]
    # A worn pump heats the oil, and hot oil wears the pump faster.
    hot = _damage_after(QUIET, 4, hydraulic_pump=0.5)
    assert hot.oil_c > new.oil_c + 8
    assert hot.health.damage[pump] > 1.5 * new.health.damage[pump]
    # Fouled channels: a hotter mould, longer cycles, parts that stick (the ejector pays).
    fouled = _damage_after(QUIET, 4, cooling_channels=0.4)
    assert fouled.mould_c > new.mould_c + 8
    assert fouled.shots < 0.9 * new.shots
    per_shot = [m.health.damage[ejector] / m.shots for m in (new, fouled)]
    assert per_shot[1] > 1.2 * per_shot[0]


def test_a_compressed_run_fails_every_component_with_spread_and_both_modes() -> None:
    scenario = load_scenario("pdm-train")
    spec = replace(scenario.machines[0], wear_time_factor=60.0)
    model = MachineModel(spec, random.Random(7), scenario.start or START)
    failures = [
        e for e in model.advance(model.now + timedelta(days=14)) if isinstance(e, ComponentFailed)
    ]
    assert len(failures) >= 20
    assert {f.mode for f in failures} == {WEAR, SUDDEN}
    by = {}
    for f in failures:
        by.setdefault(f.component, []).append(f.ts)
    assert len(by) >= 6  # many components fail, not one
    gaps = [(b - a).total_seconds() for ts in by.values() for a, b in itertools.pairwise(ts)]
    assert statistics.pstdev(gaps) > 0.2 * statistics.mean(gaps)  # no fixed life
