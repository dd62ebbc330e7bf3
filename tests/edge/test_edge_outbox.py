"""The durable outbox: what is put survives the process, in order, bounded, without gaps."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from contracts import (
    CycleRecord,
    JobRecord,
    JobStatus,
    MachineState,
    PartQuality,
    StateChange,
    decode,
)
from contracts.codec import AnyMessage
from edge.outbox import Outbox

SOURCE = "pi-1:imm-01"


def _topic(message: AnyMessage) -> str:
    return f"moldlab/v1/s/a/l/{message.machine_id}/{message.kind}"


def _state(outbox: Outbox, seq: int | None = None, source: str = SOURCE) -> StateChange:
    return StateChange(
        machine_id=source.split(":")[1],
        ts=datetime.now(UTC),
        source=source,
        seq=outbox.next_seq(source) if seq is None else seq,
        state=MachineState.RUNNING,
    )


def _seqs(outbox: Outbox) -> list[int]:
    return [decode(row.payload).seq for row in outbox.after(0, 1_000_000)]


def test_messages_survive_a_reopen_in_order_and_numbering_goes_on(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite", _topic)
    for _ in range(5):
        outbox.put(_state(outbox))
    outbox.flush()
    first = _seqs(outbox)
    outbox.close()

    again = Outbox(tmp_path / "outbox.sqlite", _topic)
    assert _seqs(again) == first == list(range(first[0], first[0] + 5))
    assert again.next_seq(SOURCE) == first[-1] + 1
    assert [row.topic for row in again.after(0, 10)] == ["moldlab/v1/s/a/l/imm-01/state"] * 5
    assert len(again) == 5
    assert again.size_bytes > 0


def test_a_new_source_starts_from_the_wall_clock(tmp_path: Path) -> None:
    # A gateway whose outbox file was lost must not reuse numbers the plant already has.
    outbox = Outbox(tmp_path / "outbox.sqlite", _topic)
    before_ms = time.time_ns() // 1_000_000
    assert before_ms <= outbox.next_seq("pi-1:imm-09") <= before_ms + 1000


async def test_acknowledged_messages_leave_and_do_not_come_back(tmp_path: Path) -> None:
    # keep_until="acknowledged": a broker that no ingest reads; its PUBACK is enough.
    outbox = Outbox(tmp_path / "outbox.sqlite", _topic, keep_until="acknowledged")
    for _ in range(4):
        outbox.put(_state(outbox))
    outbox.flush()
    rows = outbox.after(0, 10)
    for row in rows[:3]:
        outbox.ack(row)
    assert outbox.after(rows[1].id, 10) == rows[2:]
    outbox.close()  # commits the acknowledgements

    again = Outbox(tmp_path / "outbox.sqlite", _topic)
    assert again.after(0, 10) == rows[3:]
    assert len(again) == 1
    assert again.sent == 0


async def test_a_message_leaves_when_the_database_confirms_it_not_on_the_pubacks(
    tmp_path: Path,
) -> None:
    clock = [1000.0]
    outbox = Outbox(tmp_path / "outbox.sqlite", _topic, clock=lambda: clock[0])
    other = "pi-1:imm-02"
    for _ in range(5):
        outbox.put(_state(outbox))
    outbox.put(_state(outbox, source=other))
    outbox.flush()
    rows = outbox.after(0, 10)
    seqs = _seqs(outbox)
    for row in rows[:4]:
        outbox.ack(row)
    outbox.close()  # stores the acknowledgements' time

    again = Outbox(tmp_path / "outbox.sqlite", _topic, clock=lambda: clock[0])
    assert again.after(0, 10) == rows  # the broker's PUBACK lets nothing go
    # What the broker acknowledged by a time, and nothing else, is due to be sent again.
    assert again.due(0, again.last_id, 999.0, 10) == []
    assert again.due(0, again.last_id, 1000.0, 10) == rows[:4]
    assert again.due(rows[0].id, rows[2].id, 1000.0, 10) == rows[1:3]
    # Ingest confirms seqs 0-1 and 3 of the first source, and a seq of its that was never made.
    again.confirm({SOURCE: [(seqs[0], seqs[1]), (seqs[3], seqs[3]), (seqs[4] + 9, seqs[4] + 9)]})
    again.flush()
    assert again.after(0, 10) == [rows[2], rows[4], rows[5]]
    assert (len(again), again.confirmed) == (3, 3)
    assert again.size_bytes == sum(len(r.payload) for r in (rows[2], rows[4], rows[5]))
    # A confirmation of another source's seqs deletes nothing of this one's.
    again.confirm({other: [(seqs[2], seqs[2])]})
    again.flush()
    assert len(again) == 3
    again.confirm({SOURCE: [(0, 2**63 - 1)], other: [(0, 2**63 - 1)]})
    again.flush()
    assert (len(again), again.size_bytes, again.confirmed) == (0, 0, 6)


async def test_an_outbox_from_before_confirmations_gets_its_messages_numbers(
    tmp_path: Path,
) -> None:
    path = tmp_path / "outbox.sqlite"
    payload = (
        b'{"schema_version":3,"machine_id":"imm-01","ts":"2026-12-03T05:27:09Z",'
        b'"source":"pi-1:imm-01","seq":41,"kind":"state","state":"running","reason":null}'
    )
    with sqlite3.connect(path) as db:  # the schema of the last release
        db.executescript(
            "CREATE TABLE message (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL,"
            " payload BLOB NOT NULL, made REAL NOT NULL);"
            "CREATE TABLE source (name TEXT PRIMARY KEY, next_seq INTEGER NOT NULL);"
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
        )
        db.execute(
            "INSERT INTO message (topic, payload, made) VALUES (?, ?, 1.0)",
            ("moldlab/v1/s/a/l/imm-01/state", payload),
        )
    db.close()
    outbox = Outbox(path, _topic)
    assert len(outbox) == 1
    outbox.confirm({SOURCE: [(41, 41)]})
    outbox.flush()
    assert len(outbox) == 0


async def test_a_message_is_on_disk_at_the_end_of_the_loop_turn(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite", _topic)
    outbox.put(_state(outbox))
    outbox.put(_state(outbox))
    assert outbox.after(0, 10) == []  # not yet: one commit for the turn
    await outbox.wait_beyond(0)
    assert len(outbox.after(0, 10)) == 2
    other = Outbox(tmp_path / "outbox.sqlite", _topic)  # another reader sees them committed
    assert len(other.after(0, 10)) == 2


def test_a_full_outbox_drops_the_oldest_counts_them_and_says_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="edge.outbox")
    outbox = Outbox(tmp_path / "outbox.sqlite", _topic, max_bytes=20_000)
    for _ in range(400):
        outbox.put(_state(outbox))
        outbox.flush()
    seqs = _seqs(outbox)
    assert outbox.size_bytes <= 20_000
    assert outbox.dropped + len(seqs) == 400
    assert outbox.dropped > 200
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # the newest, in order
    assert len([r for r in caplog.records if "dropping the oldest" in r.getMessage()]) == 1
    outbox.close()
    assert Outbox(tmp_path / "outbox.sqlite", _topic).dropped == 400 - len(seqs)


def test_the_last_cycle_shot_is_remembered(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite", _topic)
    assert outbox.last_shot("imm-01") is None
    cycle = CycleRecord(
        machine_id="imm-01",
        ts=datetime.now(UTC),
        source=SOURCE,
        seq=outbox.next_seq(SOURCE),
        shot=1234,
        quality=PartQuality.GOOD,
        parameters={"CycleTime": 14.8},
    )
    outbox.put(cycle)
    outbox.close()
    assert Outbox(tmp_path / "outbox.sqlite", _topic).last_shot("imm-01") == 1234


def test_an_unreadable_file_is_moved_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "outbox.sqlite"
    path.write_bytes(b"this is not a database, an SD card ate it" * 100)
    outbox = Outbox(path, _topic)
    outbox.put(_state(outbox))
    outbox.flush()
    assert len(outbox) == 1
    assert [p.name.split(".corrupt-")[0] for p in tmp_path.glob("*.corrupt-*")] == [path.name]
    assert any("cannot be read" in r.getMessage() for r in caplog.records)


_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from datetime import UTC, datetime
    from contracts import MachineState, StateChange
    from edge.outbox import Outbox

    async def main():
        outbox = Outbox(sys.argv[1], lambda m: "t")
        print("ready", flush=True)
        while True:
            for source in ("pi-1:imm-01", "pi-1:imm-02"):
                outbox.put(StateChange(machine_id=source[-6:], ts=datetime.now(UTC),
                    source=source, seq=outbox.next_seq(source), state=MachineState.RUNNING))
            await asyncio.sleep(0)

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("synchronous", ["full", "normal"])
def test_sigkill_while_writing_loses_no_number_and_reuses_none(
    tmp_path: Path, synchronous: str
) -> None:
    path = tmp_path / "outbox.sqlite"
    Outbox(path, _topic, synchronous=synchronous).close()  # type: ignore[arg-type]
    for _ in range(3):  # killed three times, at arbitrary moments
        writer = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path)],
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
        )
        assert writer.stdout is not None
        assert writer.stdout.readline() == b"ready\n"
        time.sleep(0.3)
        writer.send_signal(signal.SIGKILL)
        writer.wait()

    outbox = Outbox(path, _topic)
    messages = [decode(row.payload) for row in outbox.after(0, 10_000_000)]
    assert len(messages) > 100
    for source in ("pi-1:imm-01", "pi-1:imm-02"):
        seqs = [m.seq for m in messages if m.source == source]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        assert outbox.next_seq(source) == seqs[-1] + 1


def _job(outbox: Outbox, machine: str, name: str) -> JobRecord:
    source = f"pi-1:{machine}"
    return JobRecord(
        machine_id=machine,
        ts=datetime.now(UTC),
        source=source,
        seq=outbox.next_seq(source),
        job_name=name,
        mould_id="bracket-pp-4#1",
        job_status=JobStatus.SET_UP_ACTIVE,
        active_cavities=4,
        nominal_parts=40_000,
    )


def _retained(outbox: Outbox) -> list[tuple[str, str, bool]]:
    return [
        (row.topic.rsplit("/", 2)[1], getattr(decode(row.payload), "job_name", "-"), row.retain)
        for row in outbox.after(0, 1000)
    ]


async def test_only_the_newest_job_of_a_machine_goes_retained_backlog_or_not(
    tmp_path: Path,
) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite", _topic, keep_until="acknowledged")
    outbox.put(_job(outbox, "imm-01", "PO-1"))
    outbox.put(_state(outbox))
    outbox.put(_job(outbox, "imm-02", "PO-7"))
    outbox.flush()
    outbox.put(_job(outbox, "imm-01", "PO-2"))
    outbox.flush()
    assert _retained(outbox) == [
        ("imm-01", "PO-1", False),  # PO-2 came after it: the broker must keep PO-2
        ("imm-01", "-", False),  # states are not retained by the edge
        ("imm-02", "PO-7", True),
        ("imm-01", "PO-2", True),
    ]
    # The newest goes first (the live lane) and is acknowledged; the older one, sent after
    # it from the backlog, even after a restart, still goes unretained.
    newest = outbox.after(3, 1)[0]
    outbox.ack(newest)
    outbox.close()
    again = Outbox(tmp_path / "outbox.sqlite", _topic, keep_until="acknowledged")
    assert _retained(again) == [
        ("imm-01", "PO-1", False),
        ("imm-01", "-", False),
        ("imm-02", "PO-7", True),
    ]
    again.close()
