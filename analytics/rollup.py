"""Keeps `performance_slice` current: recomputes stale slices and rolls up the ones just ended.

One pass, per machine: from the earliest stale mark (`performance_dirty`, written by
triggers with the rows that made it stale) or from the end of the last slice rolled up,
whichever is earlier, to now, every whole slice that has ended is computed from the raw rows
and replaced. A pass runs in one REPEATABLE READ transaction, so that the marks it removes
are exactly the ones whose rows it read: a late row committed meanwhile leaves its mark for
the next pass. One pass at a time across processes (an advisory lock); the others skip.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection, IsolationLevel
from psycopg.types.json import Jsonb

from analytics.oee import MICRO_STOP_STATES, Episode
from analytics.performance import (
    MachineRef,
    calendar_versions,
    compute,
    read_raw,
)
from analytics.slices import slices

log = logging.getLogger(__name__)

_LOCK = 0x6D6F6C64_6F656501  # "moldoee" + 1: pg advisory lock key of the rollup pass
CHUNK = timedelta(days=7)  # raw rows are read this much at a time
_MARGIN = timedelta(days=2)  # longer than any slice: the slice holding a time starts within it

Progress = Callable[[int, int], None]  # (machines done, machines in all)


@dataclass(frozen=True, slots=True)
class RefreshResult:
    ran: bool  # False: another pass held the lock
    machines: int = 0
    slices: int = 0
    marks: int = 0
    seconds: float = 0.0


_MACHINES = """
SELECT m.id, m.place, m.site,
       (SELECT min(d.start_at) FROM performance_dirty d
        WHERE d.id = ANY(%(marks)s) AND (d.machine_id = m.id OR d.machine_id IS NULL)),
       (SELECT max(end_at) FROM performance_slice WHERE machine_id = m.id),
       (SELECT min(time) FROM machine_state WHERE machine_id = m.id)
FROM machine m ORDER BY m.place
"""


async def refresh(
    conn: AsyncConnection[Any],
    *,
    micro_stop_s: float,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> RefreshResult:
    """One pass over every machine (see the module); `conn` must be in autocommit mode."""
    started = time.monotonic()
    now = now or datetime.now(UTC)
    conn_level = conn.isolation_level
    await conn.set_isolation_level(IsolationLevel.REPEATABLE_READ)
    try:
        async with conn.transaction():
            cur = await conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (_LOCK,))
            row = await cur.fetchone()
            if not row or not row[0]:
                return RefreshResult(ran=False)
            cur = await conn.execute("SELECT id FROM performance_dirty")
            marks = [r[0] for r in await cur.fetchall()]
            cur = await conn.execute(_MACHINES, {"marks": marks})
            machines = await cur.fetchall()
            written = 0
            for done, (mid, place, site, marked, rolled, first) in enumerate(machines):
                since = min((t for t in (marked, rolled) if t is not None), default=None)
                if since is None and first is not None:
                    since = first  # never rolled up, never marked: from its first state
                if since is not None and since < now:
                    written += await _machine(
                        conn, MachineRef(mid, place), site, since, now, micro_stop_s
                    )
                if progress:
                    progress(done + 1, len(machines))
            await conn.execute("DELETE FROM performance_dirty WHERE id = ANY(%s)", (marks,))
    finally:
        await conn.set_isolation_level(conn_level)
    result = RefreshResult(True, len(machines), written, len(marks), time.monotonic() - started)
    if result.slices or result.marks:
        log.info(
            "performance rollup: %d slices of %d machines recomputed, %d stale marks cleared"
            " in %.1f s",
            result.slices, result.machines, result.marks, result.seconds,
        )  # fmt: skip
    return result


async def _machine(
    conn: AsyncConnection[Any],
    m: MachineRef,
    site: str,
    since: datetime,
    now: datetime,
    micro_stop_s: float,
) -> int:
    """Recompute the machine's whole, ended slices from the one holding `since` to `now`."""
    versions = await calendar_versions(conn, site, since - _MARGIN, now)
    wanted = [
        s
        for s in slices(versions, since - _MARGIN, now)
        if s.whole and s.end > since.timestamp() and s.end <= now.timestamp()
    ]
    if not wanted:
        return 0
    await conn.execute(
        "DELETE FROM performance_slice WHERE machine_id = %s AND end_at > %s",
        (m.id, datetime.fromtimestamp(wanted[0].start, UTC)),
    )
    written = 0
    chunk_s = CHUNK.total_seconds()
    i = 0
    while i < len(wanted):
        part = [s for s in wanted[i:] if s.start < wanted[i].start + chunk_s] or [wanted[i]]
        i += len(part)
        raw = await read_raw(conn, m, part, part[0].start, part[-1].end, now.timestamp())
        if (open_from := _open_short_stop(raw.episodes, now.timestamp(), micro_stop_s)) is not None:
            # A stop still running and shorter than the threshold may yet outgrow it: the
            # slices it touches are read from the raw rows until it does or it ends (its
            # end's state row marks them stale from the stop's start).
            kept = [s for s in part if s.end <= open_from]
            stop_here, part = len(kept) < len(part), kept
        else:
            stop_here = False
        if not part:
            break
        rows = [
            (
                m.id,
                datetime.fromtimestamp(s.start, UTC),
                datetime.fromtimestamp(s.end, UTC),
                s.day,
                s.shift,
                micro_stop_s,
                Jsonb(f.to_json()),
            )
            for s, f in compute(raw, versions, part, part[0].start, micro_stop_s)
        ]
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO performance_slice"
                " (machine_id, start_at, end_at, day, shift, micro_stop_s, figures)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                rows,
            )
        written += len(rows)
        if stop_here:
            break
    return written


def _open_short_stop(episodes: list[Episode], now: float, micro_stop_s: float) -> float | None:
    """The start of the machine's running stop, if it could still become a micro-stop's
    opposite (it is idle or unplanned, open at `now` and shorter than the threshold)."""
    if not episodes:
        return None
    last = episodes[-1]
    start, end = last.whole or (last.start, last.end)
    if last.state in MICRO_STOP_STATES and end >= now and end - start < micro_stop_s:
        return start
    return None
