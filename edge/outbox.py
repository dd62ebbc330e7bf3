"""The durable outbox: every message is on disk before it is sent, and leaves once committed.

One SQLite file in WAL mode holds the messages the database has not committed yet, in the
order they were made, and each source's next sequence number. A message leaves when ingest
confirms that the database has it (contracts.commits), not when the broker acknowledges it:
a broker may lose what it acknowledged (a restart without shared subscriptions, a lost
disk). The time of its last acknowledgement is kept with it, so that what stays
unconfirmed is sent again. With `keep_until="acknowledged"` (a consumer that is not
moldlab's ingest), the broker's acknowledgement is enough. A message made in this event
loop turn is committed with the others of the turn (one fsync for all), so a SIGKILL or a
power cut loses at most what had not reached the disk, and never leaves a gap in a sequence:
a number is stored only together with its message.

A job message is sent retained, so that the broker holds each machine's current job; only
the newest of its topic is (its id is kept with the counters), so that an older one sent
after it from a backlog never displaces it.

When the file holds more than `max_bytes` of messages, the oldest are dropped, counted and
logged once per episode. A file that SQLite cannot read (an SD card's parting gift) is moved
aside and a new one started, so the gateway never stops over it.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal, NamedTuple

from contracts import CycleRecord, MessageKind, encode
from contracts.codec import AnyMessage

_log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS message (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- the order made; never reused
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    made REAL NOT NULL,                    -- unix time it was queued
    source TEXT,                           -- the message's (source, seq): how ingest confirms it
    seq INTEGER,
    acked REAL                             -- unix time the broker last acknowledged it
);
CREATE TABLE IF NOT EXISTS source (name TEXT PRIMARY KEY, next_seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
# Files made before confirmations get the columns, filled from the payloads.
_UPGRADE = """
ALTER TABLE message ADD COLUMN source TEXT;
ALTER TABLE message ADD COLUMN seq INTEGER;
ALTER TABLE message ADD COLUMN acked REAL;
UPDATE message SET source = json_extract(CAST(payload AS TEXT), '$.source'),
                   seq = json_extract(CAST(payload AS TEXT), '$.seq');
"""
_INDEX = "CREATE INDEX IF NOT EXISTS message_source_seq ON message (source, seq)"
_ACK_DELAY_S = 0.5  # acknowledgements and confirmations are stored in one transaction per this
_RETAINED = frozenset({MessageKind.JOB})  # kinds the broker keeps the newest of, per topic
_NEWEST = "newest:"  # meta key prefix: the id of the newest retained message of a topic


class Queued(NamedTuple):
    id: int
    topic: str
    payload: bytes
    made: float
    retain: bool = False  # send retained: the newest message of a retained kind on its topic


KeepUntil = Literal["committed", "acknowledged"]


class Outbox:
    """Messages waiting for the database, on disk, oldest first; when full the oldest go."""

    def __init__(
        self,
        path: Path | str,
        topic_of: Callable[[AnyMessage], str],
        *,
        max_bytes: int = 1 << 30,
        synchronous: Literal["full", "normal"] = "full",
        keep_until: KeepUntil = "committed",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.keep_until = keep_until
        self._topic_of = topic_of
        self._clock = clock
        self._db = _open(self.path, synchronous)
        self._seqs: dict[str, int] = dict(self._db.execute("SELECT name, next_seq FROM source"))
        self._dirty_seqs: set[str] = set()
        self._made: list[tuple[str, bytes, float, str, int]] = []
        self._shots: dict[str, int] = {}
        self._retained_made: set[str] = set()  # topics of retained messages not yet flushed
        self._newest: dict[str, int] = {
            key.removeprefix(_NEWEST): value
            for key, value in self._db.execute(
                "SELECT key, value FROM meta WHERE key LIKE ?", (f"{_NEWEST}%",)
            )
        }
        self._acked: list[int] = []  # ids the broker acknowledged since the last flush
        self._acked_at: float = 0.0  # when the last of them was
        self._confirmed: list[tuple[str, int, int]] = []  # (source, first, last) to delete
        self._flush_scheduled = False
        self._ack_scheduled = False
        self._changed = asyncio.Event()
        self._dropping = False
        self._closed = False
        count, size = self._db.execute(
            "SELECT count(*), coalesce(sum(length(payload)), 0) FROM message"
        ).fetchone()
        self._count: int = count
        self._bytes: int = size
        self.last_id: int = self._db.execute("SELECT coalesce(max(id), 0) FROM message").fetchone()[
            0
        ]
        self.queued = 0  # put since start
        self.sent = 0  # acknowledged by the broker since start (a message sent again counts again)
        self.confirmed = 0  # deleted as committed since start
        if count:
            _log.info("outbox %s: %d messages from before wait for the broker", self.path, count)

    # --- making messages -------------------------------------------------------------------

    def next_seq(self, source: str) -> int:
        """The sequence number of `source`'s next message (stored with that message)."""
        if source not in self._seqs:
            # A new source (or a lost outbox) starts from the wall clock in ms: numbers the
            # plant may have seen before are never reused at < 1000 messages a second.
            self._seqs[source] = time.time_ns() // 1_000_000
        seq = self._seqs[source]
        self._seqs[source] = seq + 1
        self._dirty_seqs.add(source)
        return seq

    def reserve(self, source: str, count: int) -> list[int]:
        """`count` numbers of `source` for messages sent outside the outbox, stored at once."""
        seqs = [self.next_seq(source) for _ in range(count)]
        self.flush()
        return seqs

    def put(self, message: AnyMessage) -> None:
        """Queue `message`; it is on disk at the end of this event loop turn (or at flush())."""
        topic = self._topic_of(message)
        self._made.append((topic, encode(message), self._clock(), message.source, message.seq))
        if message.kind in _RETAINED:
            self._retained_made.add(topic)
        self.queued += 1
        if isinstance(message, CycleRecord):
            self._shots[message.machine_id] = message.shot
        self._schedule_flush()

    def last_shot(self, machine_id: str) -> int | None:
        """The shot of the last cycle record queued for `machine_id`, across restarts."""
        row = self._db.execute(
            "SELECT value FROM meta WHERE key = ?", (f"last_shot:{machine_id}",)
        ).fetchone()
        return self._shots.get(machine_id, row[0] if row else None)

    def flush(self) -> None:
        """Commit what was made and acknowledged so far."""
        self._flush_scheduled = False
        if not (self._made or self._acked or self._confirmed or self._dirty_seqs or self._shots):
            return
        made, self._made = self._made, []
        acked, self._acked = self._acked, []
        confirmed, self._confirmed = self._confirmed, []
        left = bool(confirmed or (acked and self.keep_until == "acknowledged"))
        with self._db:  # one transaction
            if acked:
                self._store_acks(acked)
            if confirmed:
                self._delete_confirmed(confirmed)
            if made:
                self._db.executemany(
                    "INSERT INTO message (topic, payload, made, source, seq)"
                    " VALUES (?, ?, ?, ?, ?)",
                    made,
                )
                self.last_id = self._db.execute("SELECT last_insert_rowid()").fetchone()[0]
                for topic in self._retained_made:
                    (self._newest[topic],) = self._db.execute(
                        "SELECT max(id) FROM message WHERE topic = ?", (topic,)
                    ).fetchone()
                self._set_meta({f"{_NEWEST}{t}": self._newest[t] for t in self._retained_made})
                self._retained_made.clear()
                self._count += len(made)
                self._bytes += sum(len(m[1]) for m in made)
            self._db.executemany(
                "INSERT INTO source (name, next_seq) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET next_seq = excluded.next_seq",
                [(name, self._seqs[name]) for name in self._dirty_seqs],
            )
            self._dirty_seqs.clear()
            self._set_meta({f"last_shot:{m}": shot for m, shot in self._shots.items()})
            self._shots.clear()
            if self._bytes > self.max_bytes:
                self._drop_oldest()
        if made:
            self._changed.set()
        if left and self._count == 0:
            self._db.execute("PRAGMA incremental_vacuum")  # give a drained backlog's space back

    # --- sending them ----------------------------------------------------------------------

    def __len__(self) -> int:
        return self._count

    @property
    def size_bytes(self) -> int:
        return self._bytes

    @property
    def dropped(self) -> int:
        """Messages dropped because the outbox was full, since the file was made."""
        return self._meta("dropped")

    def oldest_made(self) -> float | None:
        """When the oldest waiting message was made (unix time); None when empty."""
        row = self._db.execute("SELECT made FROM message ORDER BY id LIMIT 1").fetchone()
        return row[0] if row else None

    def after(
        self, last_id: int, limit: int, upto: int | None = None, *, acked_by: float | None = None
    ) -> list[Queued]:
        """Up to `limit` waiting messages made after message `last_id` (and up to `upto`); with
        `acked_by`, only those the broker acknowledged at that unix time or before."""
        if acked_by is not None:
            self.flush()  # the acknowledgements of the last half second
        rows = self._db.execute(
            "SELECT id, topic, payload, made FROM message WHERE id > ? AND id <= ?"
            " AND (? IS NULL OR acked <= ?) ORDER BY id LIMIT ?",
            (last_id, upto if upto is not None else 2**63 - 1, acked_by, acked_by, limit),
        )
        newest = self._newest
        return [
            Queued(row_id, topic, payload, made, newest.get(topic) == row_id)
            for row_id, topic, payload, made in rows
        ]

    async def wait_beyond(self, last_id: int) -> None:
        """Return once a message after `last_id` is on disk."""
        while self.last_id <= last_id:
            self._changed.clear()
            await self._changed.wait()

    def due(self, last_id: int, upto: int, acked_by: float, limit: int) -> list[Queued]:
        """What the broker acknowledged by `acked_by` and nobody confirmed: `after`'s rows."""
        return self.after(last_id, limit, upto, acked_by=acked_by)

    def ack(self, item: Queued) -> None:
        """The broker has `item`: with keep_until="acknowledged" it is deleted soon (sent
        again after a crash before that); else its time is kept, and it waits for ingest."""
        self._acked.append(item.id)
        self._acked_at = self._clock()
        self.sent += 1
        self._schedule_store()

    def confirm(self, committed: dict[str, list[tuple[int, int]]]) -> None:
        """The database has committed these (source, seq ranges): they are deleted soon."""
        self._confirmed += [
            (s, first, last) for s, spans in committed.items() for first, last in spans
        ]
        self._schedule_store()

    def close(self) -> None:
        """Commit what is pending and close the file."""
        if not self._closed:
            self.flush()
            self._db.close()
            self._closed = True

    # --- inside ----------------------------------------------------------------------------

    def _schedule_flush(self) -> None:
        if self._flush_scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._flush_scheduled = True
        loop.call_soon(self.flush)

    def _schedule_store(self) -> None:
        if not self._ack_scheduled:
            self._ack_scheduled = True
            asyncio.get_running_loop().call_later(_ACK_DELAY_S, self._flush_acks)

    def _flush_acks(self) -> None:
        self._ack_scheduled = False
        if not self._closed:  # else the acks are lost and those messages sent again
            self.flush()

    def _store_acks(self, ids: list[int]) -> None:
        if self.keep_until == "acknowledged":
            self._delete(ids)
            return
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            self._db.execute(
                f"UPDATE message SET acked = ? WHERE id IN ({marks})", [self._acked_at, *chunk]
            )

    def _delete_confirmed(self, spans: list[tuple[str, int, int]]) -> None:
        for source, first, last in spans:
            sizes = self._db.execute(
                "DELETE FROM message WHERE source = ? AND seq BETWEEN ? AND ?"
                " RETURNING length(payload)",
                (source, first, last),
            ).fetchall()
            self._count -= len(sizes)
            self._bytes -= sum(size for (size,) in sizes)
            self.confirmed += len(sizes)
        if self._count == 0:
            self._dropping = False

    def _delete(self, ids: list[int]) -> None:
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            count, size = self._db.execute(
                "SELECT count(*), coalesce(sum(length(payload)), 0) FROM message"
                f" WHERE id IN ({marks})",
                chunk,
            ).fetchone()
            self._db.execute(f"DELETE FROM message WHERE id IN ({marks})", chunk)
            self._count -= count
            self._bytes -= size
        if self._count == 0:
            self._dropping = False

    def _drop_oldest(self) -> None:
        # Down to 95 % of the bound, so that a full outbox drops in chunks, not per message.
        target = self._bytes - int(self.max_bytes * 0.95)
        freed, count, last = 0, 0, 0
        for row_id, size in self._db.execute("SELECT id, length(payload) FROM message ORDER BY id"):
            if freed >= target:
                break
            freed, count, last = freed + size, count + 1, row_id
        self._db.execute("DELETE FROM message WHERE id <= ?", (last,))
        self._count -= count
        self._bytes -= freed
        self._set_meta({"dropped": self._meta("dropped") + count})
        if not self._dropping:
            self._dropping = True
            _log.warning(
                "outbox %s is full (%d MB): dropping the oldest messages; %d dropped so far",
                self.path,
                self.max_bytes // 1_000_000,
                self._meta("dropped"),
            )

    def _meta(self, key: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def _set_meta(self, values: dict[str, int]) -> None:
        self._db.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            values.items(),
        )


def _chunks(ids: list[int]) -> list[list[int]]:
    return [ids[start : start + 500] for start in range(0, len(ids), 500)]  # SQLite's limit


def _open(path: Path, synchronous: str) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return _connect(path, synchronous)
    except sqlite3.DatabaseError as exc:
        aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
        _log.error("outbox %s cannot be read (%s): moved to %s, starting anew", path, exc, aside)
        for suffix in ("", "-wal", "-shm"):
            old = Path(f"{path}{suffix}")
            if old.exists():
                old.rename(f"{aside}{suffix}")
        return _connect(path, synchronous)


def _connect(path: Path, synchronous: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level="DEFERRED", check_same_thread=False)
    try:
        if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise sqlite3.DatabaseError("quick_check failed")
        db.execute("PRAGMA auto_vacuum = INCREMENTAL")  # takes effect on a new file only
        db.execute("PRAGMA journal_mode = WAL")
        db.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        db.executescript(_SCHEMA)
        columns = {row[1] for row in db.execute("PRAGMA table_info(message)")}
        if "acked" not in columns:
            db.executescript(f"BEGIN; {_UPGRADE} COMMIT;")
        db.execute(_INDEX)
    except sqlite3.DatabaseError:
        db.close()
        raise
    return db
