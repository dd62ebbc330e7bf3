"""The store reader gives the history an export gives, for the same simulated machine written
through ingest's Writer: the same cycles (with their moulds) and states, signals as the
minute means of the export's samples, and the same feature values (analytics.pdm.features)."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pytest
from databases import migrated_database

from analytics.pdm.features import FEATURE_NAMES, FeatureCache
from analytics.pdm.history import MachineHistory, read_export
from analytics.pdm.store_reader import BREAKDOWN_REASONS, StoreReader
from contracts import encode
from ingest import Inbound, Limits, Writer
from ingest.writer import prepare
from simulators.export import export_floor
from simulators.faults import BREAKDOWN
from simulators.mqtt import SimulatedMachine
from simulators.scenario import load_scenario

pytestmark = pytest.mark.infra

START = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
DAYS = 1.5
SEED = 11
INTERVAL_US = 10_000_000
LOOKBACK_H = 24.0
AT = START + timedelta(days=DAYS)


@dataclass(frozen=True, slots=True)
class Both:
    export: MachineHistory
    store: MachineHistory
    reader: StoreReader
    database_url: str
    machine_id: int


def test_the_breakdown_reasons_are_the_simulators() -> None:
    assert {str(c): reason for c, (reason, _) in BREAKDOWN.items()} == BREAKDOWN_REASONS


@pytest.fixture(scope="module")
def database_url(database_server_url: str) -> Iterator[str]:
    with migrated_database(database_server_url, "moldlab_pdm_reader") as url:
        yield url


def _inbound(spec: object) -> list[Inbound]:
    """The machine's wire messages as the MQTT simulator would send them (telemetry every
    60 s of 10 s samples), driving the model exactly as the exporter drives it."""
    machine = SimulatedMachine(spec, random.Random(SEED * 1000), START)  # type: ignore[arg-type]
    model = machine.model
    start_us = round(START.timestamp() * 1e6)
    total_us = round(DAYS * 86_400e6)
    events = model.start()
    samples: list[tuple[datetime, dict[str, float]]] = []
    k = 0
    for day in range(math.ceil(total_us / 86_400e6)):
        day_end = min((day + 1) * 86_400_000_000, total_us)
        while (offset := k * INTERVAL_US) < day_end:
            t_us = start_us + offset
            events += model.advance_to(t_us / 1e6)
            values = {n: v for n, v in model.sample().items() if not math.isnan(v)}
            samples.append((datetime.fromtimestamp(t_us / 1e6, UTC), values))
            model.truth()
            k += 1
        events += model.advance_to((start_us + day_end) / 1e6)
    messages = [machine.status(True, START), *machine.messages(events)]
    messages += [machine.telemetry(samples[i : i + 6]) for i in range(0, len(samples), 6)]
    return sorted(
        (Inbound(machine.topic(m.kind), encode(m), m.ts) for m in messages),
        key=lambda i: i.received_at,
    )


@pytest.fixture(scope="module")
async def both(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Both:
    spec = load_scenario("demo").machines[0]
    out = tmp_path_factory.mktemp("export")
    export_floor([spec], out, days=DAYS, start=START, seed=SEED)
    (exported,) = read_export(Path(out))
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        writer = Writer(conn)
        inbound = _inbound(spec)
        for k in range(0, len(inbound), 2000):
            result = await writer.write(prepare(inbound[k : k + 2000], Limits(), writer.dimensions))
            assert (result.rejected, result.duplicates) == (0, 0)
        cur = await conn.execute("SELECT id, place FROM machine WHERE machine_key = %s",
                                 (spec.machine_id,))  # fmt: skip
        row = await cur.fetchone()
        assert row is not None
        reader = StoreReader(lookback_h=LOOKBACK_H)
        # Read as a scorer does: a pass every 20 minutes over the last hours, then at AT.
        at = AT - timedelta(hours=3)
        while at < AT:
            await reader.history(conn, row[0], spec.machine_id, at)
            at += timedelta(minutes=20)
        store = await reader.history(conn, row[0], spec.machine_id, AT)
    return Both(exported, store, reader, database_url, int(row[0]))


def _window(history: MachineHistory, at_us: int) -> dict[str, dict[str, np.ndarray]]:
    lo = at_us - round(LOOKBACK_H * 3600e6)
    out = {}
    for table in ("cycles", "signals"):
        cols = getattr(history, table)
        keep = (cols["ts"] >= lo) & (cols["ts"] <= at_us)
        out[table] = {k: v[keep] for k, v in cols.items()}
    return out


def test_cycles_and_moulds_are_the_exports(both: Both) -> None:
    at_us = round(AT.timestamp() * 1e6)
    want = _window(both.export, at_us)["cycles"]
    got = both.store.cycles
    assert len(got["ts"]) > 1000
    np.testing.assert_array_equal(got["ts"], want["ts"])
    for name in ("mould", "quality", "defect"):
        assert got[name].tolist() == want[name].tolist(), name
    for name in want:
        if name not in ("ts", "mould", "quality", "defect"):
            np.testing.assert_allclose(got[name], want[name], rtol=1e-12, equal_nan=True)


def test_states_start_with_the_one_in_force(both: Both) -> None:
    lo = round(AT.timestamp() * 1e6 - LOOKBACK_H * 3600e6)
    ts = both.export.states["ts"]
    first = int(np.searchsorted(ts, lo, side="right")) - 1
    want = {k: v[max(first, 0) :] for k, v in both.export.states.items()}
    assert both.store.states["ts"][0] <= lo
    np.testing.assert_array_equal(both.store.states["ts"], want["ts"])
    assert both.store.states["state"].tolist() == want["state"].tolist()
    assert both.store.states["reason"].tolist() == want["reason"].tolist()


def test_signals_are_minute_means_of_the_samples(both: Both) -> None:
    at_us = round(AT.timestamp() * 1e6)
    want = _window(both.export, at_us)["signals"]
    minute = want["ts"] // 60_000_000 * 60_000_000 + 30_000_000
    got = both.store.signals
    np.testing.assert_array_equal(got["ts"], np.unique(minute))
    for name in ("TempOil", "TempZone3", "PressureHydraulic"):
        for k in (0, len(got["ts"]) // 2, len(got["ts"]) - 2):
            values = want[name][minute == got["ts"][k]]
            values = values[~np.isnan(values)]
            expected = values.mean() if len(values) else np.nan
            np.testing.assert_allclose(got[name][k], expected, rtol=1e-9, equal_nan=True)


def test_features_from_the_store_are_the_exports(both: Both) -> None:
    at_us = round(AT.timestamp() * 1e6)
    lo = at_us - round(LOOKBACK_H * 3600e6)
    # The export's history cut to the same lookback, so both have seen the same span.
    cut = MachineHistory(
        both.export.machine_id,
        _window(both.export, at_us)["cycles"],
        _window(both.export, at_us)["signals"],
        both.store.states,
        both.store.last_service_us,
    )
    assert lo < at_us
    a = FeatureCache().features(cut, at_us)
    b = FeatureCache().features(both.store, at_us)
    finite = np.isfinite(a)
    assert finite.sum() > len(FEATURE_NAMES) // 2
    assert (np.isfinite(b) == finite).all()
    # Deviations are in units of the baseline's spread: minute means instead of 10 s samples
    # move a few of them (heater outputs, hydraulic pressure) by up to ~0.15 of a spread, as
    # the features' running and stuck-sensor filters see a minute rather than each sample.
    np.testing.assert_allclose(b[finite], a[finite], rtol=0.02, atol=0.25)
    # What the cycles and states give is the same to rounding.
    exact = np.array([not n.startswith("sig:") for n in FEATURE_NAMES]) & finite
    assert exact.sum() > 100
    np.testing.assert_allclose(b[exact], a[exact], rtol=1e-9, atol=1e-9)


async def test_a_late_row_within_the_overlap_is_read(both: Both) -> None:
    async with await psycopg.AsyncConnection.connect(both.database_url, autocommit=True) as conn:
        late = AT - timedelta(minutes=2)
        await conn.execute(
            "INSERT INTO machine_state (time, machine_id, state, reason, source, seq)"
            " VALUES (%s, %s, 'unplanned_stop', 'material_shortage', 'late', 1)",
            (late, both.machine_id),
        )
        history = await both.reader.history(conn, both.machine_id, "m", AT + timedelta(minutes=1))
    assert round(late.timestamp() * 1e6) in history.states["ts"].tolist()
