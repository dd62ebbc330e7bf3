"""A simulated week through ingest gives OEE per machine and day equal to the simulator's truth.

The demo floor runs for a week, its events become the wire messages the MQTT simulator
publishes and ingest's writer puts them in the database beside the plant file the floor ran
with; moldlab's figures per machine and local day are compared with an independent
computation from the events themselves (tests/support/ground_truth.py). The week holds the
night the clocks go back (a 25-hour day), mould changes with their setups, breakdowns,
micro-stops, scrap and test samples.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import psycopg
import pytest
import yaml
from databases import migrated_database
from ground_truth import Truth, per_day, planned_windows

from analytics.oee import MicroStops
from analytics.report import Bucket, Level, PerformanceSettings, group, oee_row, read_slices
from analytics.rollup import refresh
from contracts import MachineState, PartQuality, encode
from ingest import Inbound, Limits, Writer
from ingest.writer import prepare
from plant import load_plant
from simulators.model import CycleDone, Event, JobChanged, StateEntered
from simulators.mqtt import SimulatedMachine
from simulators.scenario import load_scenario
from store.plant import write_plant

pytestmark = [pytest.mark.infra, pytest.mark.slow]

ROME = ZoneInfo("Europe/Rome")
SEED = 7
# Sunday evening to the Monday after next: the state at the week's start comes from before it.
SIM_START = datetime(2026, 10, 18, 18, 0, tzinfo=ROME)
FROM = datetime(2026, 10, 19, 6, 0, tzinfo=ROME)  # Monday's morning shift
TO = datetime(2026, 10, 26, 6, 0, tzinfo=ROME)  # the end of Sunday's night shift
SIM_END = datetime(2026, 10, 26, 7, 0, tzinfo=ROME)
DAYS = [date(2026, 10, 19 + i) for i in range(7)]
MICRO_STOP_S = 300.0
BATCH = 2000  # messages per write, as ingest batches them
KPIS = ("availability", "effectiveness", "quality", "oee")


@dataclass(frozen=True, slots=True)
class Week:
    database_url: str
    places: dict[str, str]  # machine id -> place
    events: dict[str, list[Event]]  # machine id -> its events, in order
    truth: dict[str, dict[date, Truth]]  # machine id -> local day -> ground truth


@pytest.fixture(scope="module")
def database_url(database_server_url: str) -> Iterator[str]:
    """A database of this module's own: loading the demo plant file retires the moulds and
    sites it does not name, which in the suite's shared database are other tests'."""
    with migrated_database(database_server_url, "moldlab_oee_truth") as url:
        yield url


def _run(machine: SimulatedMachine) -> list[Event]:
    """The machine's events from SIM_START to SIM_END, as fast as the CPU allows."""
    return [*machine.model.start(), *machine.model.advance(SIM_END)]


def _inbound(machine: SimulatedMachine, events: list[Event]) -> list[Inbound]:
    """What the MQTT simulator publishes for `events` (its birth first), as ingest gets it."""
    messages = [machine.status(True, SIM_START), *machine.messages(events)]
    return [Inbound(machine.topic(m.kind), encode(m), m.ts) for m in messages]


@pytest.fixture(scope="module")
async def week(database_url: str) -> Week:
    scenario = load_scenario("demo")
    assert scenario.plant_path is not None
    plant_text = scenario.plant_path.read_text()
    machines = [
        SimulatedMachine(spec, random.Random(SEED * 1000 + i), SIM_START)
        for i, spec in enumerate(scenario.machines)
    ]
    events = {m.spec.machine_id: _run(m) for m in machines}
    inbound = sorted(
        (i for m in machines for i in _inbound(m, events[m.spec.machine_id])),
        key=lambda i: i.received_at,
    )
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await write_plant(conn, load_plant(scenario.plant_path), datetime(2026, 10, 1, tzinfo=UTC))
        writer = Writer(conn)
        limits = Limits()
        for k in range(0, len(inbound), BATCH):
            result = await writer.write(prepare(inbound[k : k + BATCH], limits, writer.dimensions))
            assert (result.rejected, result.duplicates) == (0, 0)
    # The truth reads the plant file itself: its calendar and each mould's ideal cycle.
    plant_file = yaml.safe_load(plant_text)
    (site,) = [s for s in plant_file["sites"] if s["id"] == "demo"]
    windows = planned_windows(site, FROM, TO)
    ideal = {m["id"]: float(m["ideal_cycle_s"]) for m in plant_file["moulds"]}
    truth = {
        mid: per_day(evs, SIM_END, windows, ideal, MICRO_STOP_S) for mid, evs in events.items()
    }
    places = {
        m.spec.machine_id: f"{m.spec.site}/{m.spec.area}/{m.spec.line}/{m.spec.machine_id}"
        for m in machines
    }
    return Week(database_url, places, events, truth)


Kpis = dict[tuple[str, date], dict[str, float | None]]  # (machine, day) -> KPI -> value


async def _moldlab(week: Week, convention: MicroStops, *, rollup: bool) -> tuple[Kpis, int]:
    """moldlab's KPIs per machine and local day, and how many slices came from the rollup."""
    settings = PerformanceSettings(micro_stop_s=MICRO_STOP_S, convention=convention)
    async with await psycopg.AsyncConnection.connect(week.database_url, autocommit=True) as conn:
        rows = await read_slices(conn, "demo", FROM, TO, settings, now=SIM_END, rollup=rollup)
    by_place = {place: mid for mid, place in week.places.items()}
    out: Kpis = {}
    for g in group(rows, Bucket.DAY, Level.MACHINE):
        kpis = oee_row(g, convention).kpis.model_dump()
        out[(by_place[g.place], date.fromisoformat(g.bucket))] = {k: kpis[k] for k in KPIS}
    return out, sum(r.from_rollup for r in rows)


def _truth(week: Week, convention: MicroStops) -> dict[tuple[str, date], dict[str, float]]:
    tpm = convention is MicroStops.TPM
    return {
        (mid, day): t.ratios(tpm) for mid, days in week.truth.items() for day, t in days.items()
    }


def _differences(got: Kpis, want: dict[tuple[str, date], dict[str, float]]) -> list[str]:
    assert sorted(got) == sorted(want)
    return [
        f"{mid} {day} {k}: moldlab {got[(mid, day)][k]!r}, truth {want[(mid, day)][k]!r}"
        for (mid, day) in sorted(want)
        for k in KPIS
        if got[(mid, day)][k] != pytest.approx(want[(mid, day)][k], abs=1e-9, rel=0)
    ]


def test_the_week_exercises_what_oee_must_get_right(week: Week) -> None:
    """Not a vacuous comparison: the week holds every kind of time and part OEE weighs."""
    assert sorted(week.truth) == ["imm-01", "imm-02", "imm-03"]
    in_week = [e for evs in week.events.values() for e in evs if FROM <= e.ts < TO]
    states = {e.state for e in in_week if isinstance(e, StateEntered)}
    assert states == set(MachineState) - {MachineState.OFFLINE}
    assert {e.quality for e in in_week if isinstance(e, CycleDone)} == set(PartQuality)
    for mid, evs in week.events.items():
        moulds = {e.mould for e in evs if isinstance(e, CycleDone) and FROM <= e.ts < TO}
        changes = [e for e in evs if isinstance(e, JobChanged) and FROM <= e.ts < TO]
        assert changes, f"{mid} changes no job"
        if mid != "imm-03":  # imm-03 has one mould
            assert len(moulds) == 2, f"{mid} rates its cycles with one mould only"
    for mid, days in week.truth.items():
        assert sorted(days) == DAYS
        assert sum(t.short_stop_us for t in days.values()) > 0, f"{mid}: no micro-stops"
        # Shifts less three 30-minute breaks; Saturday's night shift runs 9 hours, into the
        # Sunday the clocks go back (a 25-hour shift day).
        hours = {day: t.planned_us / 3_600e6 for day, t in days.items()}
        assert hours == {day: 23.5 if day == date(2026, 10, 24) else 22.5 for day in DAYS}


@pytest.mark.parametrize("convention", list(MicroStops))
async def test_oee_per_machine_and_day_equals_the_simulators_ground_truth(
    week: Week, convention: MicroStops
) -> None:
    got, _ = await _moldlab(week, convention, rollup=False)
    assert _differences(got, _truth(week, convention)) == []


async def test_the_rollup_gives_the_same_week(week: Week) -> None:
    """Rolled up into performance_slice and read back, the figures still equal the truth."""
    async with await psycopg.AsyncConnection.connect(week.database_url, autocommit=True) as conn:
        await refresh(conn, micro_stop_s=MICRO_STOP_S, now=SIM_END)
    got, from_rollup = await _moldlab(week, MicroStops.ISO, rollup=True)
    assert from_rollup == 3 * 7 * 3  # machines * days * shifts: every slice
    assert _differences(got, _truth(week, MicroStops.ISO)) == []
