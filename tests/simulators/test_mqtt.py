"""MQTT-native simulated machines against a real broker: real time, sped up and backfilling."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import aiomqtt
import pytest

from contracts import (
    DEFECT_CAUSES,
    BrokerUrl,
    CycleRecord,
    MachineState,
    PartQuality,
    StateChange,
    TelemetryBatch,
    decode,
)
from simulators import (
    CycleDone,
    MachineModel,
    MachineSpec,
    ShiftCalendar,
    demo_floor,
    run_simulation,
)
from simulators.clock import SimClock, parse_start
from simulators.specs import StopCause

pytestmark = pytest.mark.infra


async def _collect(
    url: str, site: str, seconds: float, floor: list[MachineSpec] | None = None, **sim: object
) -> list[object]:
    broker = BrokerUrl.parse(url)
    got: list[object] = []
    stop = asyncio.Event()
    async with aiomqtt.Client(**broker.client_options(), identifier=f"t-{uuid.uuid4()}") as sub:
        await sub.subscribe(f"moldlab/v1/{site}/#", qos=1)

        async def _read() -> None:
            async for message in sub.messages:
                got.append(decode(message.payload))  # type: ignore[arg-type]  # bytes payloads

        reader = asyncio.create_task(_read())
        runner = asyncio.create_task(
            run_simulation(floor or demo_floor(2, site=site), broker, stop, **sim)  # type: ignore[arg-type]
        )
        await asyncio.sleep(seconds)
        stop.set()
        await runner
        await asyncio.sleep(0.3)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    return got


def _mid_morning_shift() -> datetime:
    """The latest 08:00 in Rome an hour ago or more: inside the demo floor's morning shift,
    two hours from its break (a run from now at 18:27 fell into the 18:00-18:30 break and made
    no cycle), and far enough back for the sped-up run (one at 08:00:28 Rome started at now,
    and the simulator publishes nothing ahead of the wall clock)."""
    rome = ZoneInfo("Europe/Rome")
    local = datetime.now(rome)
    at = local.replace(hour=8, minute=0, second=0, microsecond=0)
    return (at if at <= local - timedelta(hours=1) else at - timedelta(days=1)).astimezone(UTC)


async def test_sped_up_machines_sample_once_per_simulated_interval(mqtt_url: str) -> None:
    site = f"speed-{uuid.uuid4().hex[:6]}"
    got = await _collect(mqtt_url, site, 2.0, speed=120.0, start=_mid_morning_shift())
    batches = [m for m in got if isinstance(m, TelemetryBatch) and m.machine_id == "imm-01"]
    instants = sorted(
        {b.ts + timedelta(milliseconds=r.offset_ms) for b in batches for r in b.readings}
    )
    # 2 s at 120x is ~240 simulated seconds: ~240 samples, 1 s apart in simulated time, in
    # batches of the samples of one tick (20 a second), not one message per sample
    assert 180 <= len(instants) <= 260
    assert {(b - a).total_seconds() for a, b in itertools.pairwise(instants)} == {1.0}
    assert len(batches) < len(instants) / 3
    assert all(len(b.readings) % 19 == 0 for b in batches)  # whole samples of 19 signals
    # Data arrives in sequence order (birth and will take numbers of their own, out of order).
    data = (TelemetryBatch, CycleRecord, StateChange)
    seqs = [m.seq for m in got if isinstance(m, data) and m.machine_id == "imm-01"]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)
    assert any(isinstance(m, CycleRecord) for m in got)  # ~15 s cycles: a dozen of them
    assert any(isinstance(m, StateChange) for m in got)


async def test_a_backfill_catches_up_with_the_wall_clock_and_never_runs_ahead(
    mqtt_url: str,
) -> None:
    site = f"backfill-{uuid.uuid4().hex[:6]}"
    began = datetime.now(UTC)
    got = await _collect(mqtt_url, site, 5.0, speed=600.0, start=began - timedelta(minutes=30))
    batches = [m for m in got if isinstance(m, TelemetryBatch) and m.machine_id == "imm-01"]
    assert batches[0].ts < began - timedelta(minutes=29)  # it began in the past
    assert max(b.ts for b in batches) <= datetime.now(UTC)  # and never ran ahead
    assert batches[-1].ts > began - timedelta(seconds=10)  # 30 min at 600x: caught up in 3 s


async def test_bad_cycles_carry_their_defect_cause_as_the_model_drew_it(mqtt_url: str) -> None:
    site = f"defects-{uuid.uuid4().hex[:6]}"
    # Unbroken shifts (nothing depends on the wall clock) and a quarter-hour stop every few
    # running minutes: each long enough to spoil the melt, so start-up scrap follows.
    spec = MachineSpec(
        "imm-01", site=site, calendar=ShiftCalendar(),
        stops=(StopCause(MachineState.UNPLANNED_STOP, "material_shortage", 0.1, 15.0, 0.0),),
    )  # fmt: skip
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=70)
    got = await _collect(mqtt_url, site, 4.0, floor=[spec], speed=1800.0, start=start, seed=3)
    cycles = [m for m in got if isinstance(m, CycleRecord)]
    # The machine's own run with the simulator's seed: its ground truth, cycle by cycle.
    model = MachineModel(spec, random.Random(3 * 1000), start)
    events = model.advance(start + timedelta(minutes=70))
    truth = {e.shot: e for e in events if isinstance(e, CycleDone)}
    bad = [c for c in cycles if c.quality is PartQuality.BAD]
    assert len(bad) >= 2
    for cycle in cycles:
        assert (cycle.quality, cycle.defect) == (
            truth[cycle.shot].quality,
            truth[cycle.shot].defect,
        )
        assert cycle.schema_version == 3
    # Start-up scrap after each stop, and now and then a cause a healthy process still has.
    assert "startup_scrap" in {c.defect for c in bad}
    assert {c.defect for c in bad} <= set(DEFECT_CAUSES)
    assert all(c.defect is None for c in cycles if c.quality is not PartQuality.BAD)


def test_the_clock_runs_sped_up_and_catches_up() -> None:
    real = [0.0]
    wall = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    start = wall - timedelta(hours=1)
    clock = SimClock(start, 60.0, catch_up=True, wall=lambda: wall, monotonic=lambda: real[0])
    real[0] = 30.0
    assert clock.now() == start + timedelta(minutes=30)
    real[0] = 120.0
    assert clock.now() == wall  # caught up: never ahead of the wall clock
    ahead = SimClock(wall, 60.0, wall=lambda: wall, monotonic=lambda: real[0])
    real[0] += 1.0
    assert ahead.now() == wall + timedelta(minutes=1)
    with pytest.raises(ValueError, match="speed must be positive"):
        SimClock(wall, 0.0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-7d", datetime(2026, 11, 14, 12, 0, tzinfo=UTC)),
        ("-90m", datetime(2026, 11, 21, 10, 30, tzinfo=UTC)),
        ("2026-11-02T06:00+01:00", datetime(2026, 11, 2, 5, 0, tzinfo=UTC)),
    ],
)
def test_start_accepts_iso_times_and_times_before_now(text: str, expected: datetime) -> None:
    assert parse_start(text, datetime(2026, 11, 21, 12, 0, tzinfo=UTC)) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [("yesterday", "neither an ISO 8601 time"), ("2026-11-02T06:00", "no time zone"),
     ("-xd", "expected e.g. -7d")],
)  # fmt: skip
def test_a_bad_start_is_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_start(text, datetime(2026, 11, 21, 12, 0, tzinfo=UTC))
