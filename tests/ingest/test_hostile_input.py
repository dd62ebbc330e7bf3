"""Hostile and broken publishers against ingest: each finding of the review, as a regression.

1. a timestamp whose conversion to UTC overflowed stopped ingest at every restart;
2. readings of 1e308 overflowed avg() and broke history for every machine;
3. readings up to an hour ahead (through offset_ms) were accepted;
4. refused payloads were stored whole, never pruned, and logged in lines of any length;
5. there was no limit on new machines and signals.
"""

from __future__ import annotations

import logging
import math
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
import orjson
import psycopg
import pytest
from ingest_child import IngestChild, wait_until

from contracts import BrokerUrl, MessageKind, Reading, TelemetryBatch, Topic, encode
from ingest import Inbound, Limits, Writer
from ingest.latest import _CATCH_UP, CATCH_UP_WINDOW
from ingest.rejects import EXCERPT_BYTES, LOG_PER_MINUTE, RejectLog
from ingest.retention import prune_rejected

pytestmark = pytest.mark.infra


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _topic(machine: str, kind: MessageKind = MessageKind.TELEMETRY, site: str = "test") -> str:
    return str(Topic(site, "hall", "line-1", machine, kind))


def _telemetry(
    machine: str,
    seq: int,
    readings: list[tuple[str, int, float]],
    *,
    ts: datetime | None = None,
    site: str = "test",
) -> Inbound:
    now = _now()
    msg = TelemetryBatch(
        machine_id=machine, ts=ts or now, source=f"src-{machine}", seq=seq,
        readings=[Reading(signal=s, offset_ms=o, value=v) for s, o, v in readings],
    )  # fmt: skip
    return Inbound(_topic(machine, site=site), encode(msg), now)


def _raw(machine: str, seq: int, ts: str, value: str = "200.0", offset_ms: int = 0) -> bytes:
    return (
        b'{"schema_version": 1, "kind": "telemetry", "machine_id": "%s", "ts": "%s",'
        b' "source": "src-%s", "seq": %d, "readings": [{"signal": "TempZone2",'
        b' "offset_ms": %d, "value": %s}]}'
    ) % (machine.encode(), ts.encode(), machine.encode(), seq, offset_ms, value.encode())


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[psycopg.AsyncConnection]:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as c:
        yield c


async def _scalar(conn: psycopg.AsyncConnection, sql: str, *args: object) -> object:
    cur = await conn.execute(sql, args)
    row = await cur.fetchone()
    assert row is not None
    return row[0]


async def _reasons(conn: psycopg.AsyncConnection, machine: str) -> list[str]:
    cur = await conn.execute(
        "SELECT reason FROM rejected_message WHERE topic LIKE %s ORDER BY id", (f"%/{machine}/%",)
    )
    return [str(r) for (r,) in await cur.fetchall()]


def _machine() -> str:
    return f"imm-{uuid.uuid4().hex[:8]}"


# 1 -------------------------------------------------------------------------------------------


async def test_a_timestamp_that_overflowed_utc_is_refused_and_ingest_runs_on(
    database_url: str, mqtt_url: str, tmp_path: Path
) -> None:
    site = f"ovf-{uuid.uuid4().hex[:6]}"
    machine = _machine()
    env = {
        **os.environ,
        "MOLDLAB_DATABASE_URL": database_url,
        "MOLDLAB_MQTT_URL": mqtt_url,
        "MOLDLAB_INGEST_SITE": site,
        "MOLDLAB_INGEST_CLIENT_ID": f"ingest-{site}",
        "MOLDLAB_INGEST_METRICS_PORT": "0",
    }
    child = IngestChild(env, tmp_path / "ingest.log")
    await child.start()
    try:
        topic = _topic(machine, site=site)
        async with aiomqtt.Client(**BrokerUrl.parse(mqtt_url).client_options()) as publisher:
            await publisher.publish(topic, _raw(machine, 1, "0001-01-01T00:00:00+01:00"), qos=1)
            await publisher.publish(topic, _raw(machine, 2, "9999-12-31T23:59:59-01:00"), qos=1)
            ts = _now().isoformat()
            for seq in range(3, 13):
                await publisher.publish(topic, _raw(machine, seq, ts, value=f"{seq}.5"), qos=1)

        async with await psycopg.AsyncConnection.connect(database_url) as conn:

            async def written() -> bool:
                count = await _scalar(
                    conn, "SELECT count(*) FROM message_log WHERE source = %s", f"src-{machine}"
                )
                return count == 10

            await wait_until(written, 20, "the 10 valid messages written")
            reasons = await _reasons(conn, machine)
        assert len(reasons) == 2
        assert all("must lie between 1970-01-01 and 2100-01-01" in r for r in reasons)
        assert child.alive, child.tail()
    finally:
        await child.stop()
    # Restarted, it has nothing left to choke on: the refusals were acknowledged.
    await child.start()
    await child.stop()
    assert "Traceback" not in child.tail(200)


# 2 -------------------------------------------------------------------------------------------


async def test_readings_of_1e308_are_refused_and_history_of_every_machine_still_answers(
    conn: psycopg.AsyncConnection,
) -> None:
    writer = Writer(conn, Limits())
    broken, healthy = _machine(), _machine()
    now = _now()
    batch = [
        Inbound(_topic(broken), _raw(broken, 1, now.isoformat(), "1e308"), now),
        Inbound(_topic(broken), _raw(broken, 2, now.isoformat(), "1e308", offset_ms=10), now),
        Inbound(_topic(broken), _raw(broken, 3, now.isoformat(), str(2**64)), now),
        Inbound(_topic(broken), _raw(broken, 4, now.isoformat(), "1e30"), now),
        _telemetry(healthy, 1, [("TempZone2", 0, 201.5), ("TempZone2", 500, 202.5)]),
    ]
    result = await writer.write(batch)
    assert (result.messages, result.rejected) == (1, 4)
    reasons = await _reasons(conn, broken)
    assert len(reasons) == 4
    assert all("outside its physical range [-273.15, 1000]" in r for r in reasons)
    # The minute's rollup, over every machine, computes (it overflowed before).
    cur = await conn.execute(
        "SELECT avg(avg), max(max) FROM telemetry_1m WHERE bucket >= %s",
        (now - timedelta(minutes=2),),
    )
    row = await cur.fetchone()
    assert row is not None
    assert math.isfinite(row[0])
    assert row[1] <= 2.0**53  # the widest range there is: counters'


# 3 -------------------------------------------------------------------------------------------


async def test_a_reading_an_hour_ahead_through_its_offset_is_refused(
    conn: psycopg.AsyncConnection,
) -> None:
    writer = Writer(conn, Limits())
    machine = _machine()
    now = _now()
    ahead = _telemetry(machine, 1, [("TempZone2", 0, 200.0), ("TempZone2", 3_600_000, 999.0)])
    just = _telemetry(machine, 2, [("TempZone2", 240_000, 201.0)], ts=now)  # 4 min: allowed
    result = await writer.write([ahead, just])
    assert (result.messages, result.rejected) == (1, 1)
    [reason] = await _reasons(conn, machine)
    assert reason.startswith("timestamp ")
    assert reason.endswith("is in the future")
    real = _telemetry(machine, 3, [("TempZone2", 0, 203.0)], ts=now + timedelta(minutes=5))
    await writer.write([real])
    value = await _scalar(
        conn,
        "SELECT lv.value FROM latest_value lv JOIN machine m ON m.id = lv.machine_id"
        " WHERE m.machine_key = %s",
        machine,
    )
    assert value == 203.0  # not frozen on a value from the future


# 4 -------------------------------------------------------------------------------------------


async def test_a_large_refused_payload_is_stored_as_an_excerpt_once_and_pruned_later(
    conn: psycopg.AsyncConnection,
) -> None:
    writer = Writer(conn, Limits(max_payload_bytes=1_048_576))
    machine = _machine()
    payload = b'{"x": "' + b"A" * (8 * 1024 * 1024) + b'"}'
    inbound = Inbound(_topic(machine), payload, _now())
    await writer.write([inbound])
    await writer.write([inbound])  # redelivered: still one row
    cur = await conn.execute(
        "SELECT length(payload), payload_bytes, reason FROM rejected_message WHERE topic = %s",
        (inbound.topic,),
    )
    rows = await cur.fetchall()
    assert rows == [
        (EXCERPT_BYTES, len(payload), f"payload of {len(payload)} bytes exceeds 1048576")
    ]
    await conn.execute(
        "UPDATE rejected_message SET received_at = now() - interval '31 days' WHERE topic = %s",
        (inbound.topic,),
    )
    assert await prune_rejected(conn, timedelta(days=30)) >= 1
    assert await _reasons(conn, machine) == []


def test_rejections_are_logged_in_bounded_lines_at_most_20_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    log = RejectLog(clock=lambda: now[0])
    caplog.set_level(logging.WARNING, logger="ingest.writer")
    huge_topic = "moldlab/v1/" + "x" * 65_536
    for _ in range(1000):
        log.rejected(huge_topic, "topic 'moldlab/v1/xxx...' is not moldlab/v1/...")
    assert len(caplog.records) == LOG_PER_MINUTE
    now[0] = 61.0
    log.rejected("moldlab/v1/a/b/c/d/telemetry", "invalid JSON")
    assert "980 more rejected messages" in caplog.records[LOG_PER_MINUTE].getMessage()
    assert max(len(r.getMessage()) for r in caplog.records) < 400


def test_a_rejection_cannot_forge_or_reorder_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    # A line separator (U+2028) in a topic showed raw: a log viewer broke the line there,
    # and what followed read as a line of its own; a right-to-left override reorders text.
    caplog.set_level(logging.WARNING, logger="ingest.writer")
    RejectLog().rejected(
        "moldlab/v1/demo/hall/line-1/imm-02\u2028FORGED LINE/state",
        "bad \u202egnirts " + "y" * 5000,
    )
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.isprintable(), line
    assert "imm-02\\u2028FORGED LINE" in line
    assert "bad \\u202egnirts" in line
    assert len(line) < 600


# 5 -------------------------------------------------------------------------------------------


async def test_new_machines_past_the_site_limit_are_refused_and_logged_once(
    conn: psycopg.AsyncConnection, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ingest.dimensions")
    site = f"lim-{uuid.uuid4().hex[:6]}"
    writer = Writer(conn, Limits(max_machines_per_site=3))
    machines = [f"imm-{site[-6:]}-{i}" for i in range(6)]  # machine ids are plant-wide
    batch = [_telemetry(m, 1, [("TempZone2", 0, 200.0)], site=site) for m in machines]
    result = await writer.write(batch)
    assert (result.messages, result.rejected) == (3, 3)
    count = await _scalar(conn, "SELECT count(*) FROM machine WHERE site = %s", site)
    assert count == 3
    cur = await conn.execute(
        "SELECT reason FROM rejected_message WHERE topic LIKE %s", (f"moldlab/v1/{site}/%",)
    )
    reasons = [r for (r,) in await cur.fetchall()]
    assert len(reasons) == 3
    assert all(
        r.startswith(f"limit: site {site} has 3 machines (MOLDLAB_INGEST_MAX_MACHINES_PER_SITE)")
        for r in reasons
    )
    limit_lines = [r for r in caplog.records if "limit reached" in r.getMessage()]
    assert len(limit_lines) == 1
    # A machine already there goes on being written; a new one is still refused, unlogged.
    again = [_telemetry(m, 2, [("TempZone2", 0, 201.0)], site=site) for m in machines[:4]]
    result = await writer.write(again)
    assert (result.messages, result.rejected) == (3, 1)
    assert len([r for r in caplog.records if "limit reached" in r.getMessage()]) == 1


async def test_signals_past_the_machine_and_plant_limits_are_refused(
    conn: psycopg.AsyncConnection,
) -> None:
    machine = _machine()
    writer = Writer(conn, Limits(max_signals_per_machine=4))
    four = [(f"Sig{i}", 0, 1.0) for i in range(4)]
    assert (await writer.write([_telemetry(machine, 1, four)])).messages == 1
    fifth = _telemetry(machine, 2, [*four, ("Sig4", 0, 1.0)])
    result = await writer.write([fifth, _telemetry(machine, 3, four)])
    assert (result.messages, result.rejected) == (1, 1)
    [reason] = await _reasons(conn, machine)
    assert reason == (
        f"limit: machine test/hall/line-1/{machine} has 4 signals"
        " (MOLDLAB_INGEST_MAX_SIGNALS_PER_MACHINE);"
        " new signal Sig4 refused"
    )
    # Signal names in all: the plant's limit is what the table holds now, plus one.
    names = int(str(await _scalar(conn, "SELECT count(*) FROM signal")))
    other = _machine()
    plant = Writer(conn, Limits(max_signals=names + 1))
    unique = uuid.uuid4().hex[:8]
    result = await plant.write(
        [_telemetry(other, 1, [(f"a{unique}", 0, 1.0), (f"b{unique}", 0, 1.0)])]
    )
    assert result.rejected == 1
    [reason] = await _reasons(conn, other)
    assert f"(MOLDLAB_INGEST_MAX_SIGNALS); new signal b{unique} refused" in reason


async def test_catch_up_reads_the_signals_each_machine_has_not_every_name(
    conn: psycopg.AsyncConnection,
) -> None:
    # 20,000 signal names and 50,000 machines made the cross product of both; now the
    # catch-up reads machine_signal's pairs only.
    cur = await conn.execute("EXPLAIN (FORMAT JSON) " + _CATCH_UP, {"window": CATCH_UP_WINDOW})
    row = await cur.fetchone()
    assert row is not None
    plan = row[0] if isinstance(row[0], list) else orjson.loads(row[0])
    relations = set()
    stack = [plan[0]["Plan"]]
    while stack:
        node = stack.pop()
        if "Relation Name" in node:
            relations.add(node["Relation Name"])
        stack.extend(node.get("Plans", []))
    assert "machine_signal" in relations
    assert "signal" not in relations
