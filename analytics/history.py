"""One signal of one machine in 1-minute buckets, read at the cost of the window, not the table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from psycopg import AsyncConnection
from pydantic import BaseModel, Field

from analytics.errors import NotFound
from contracts import Place
from store import Backend

BUCKET = timedelta(minutes=1)
# The newest this-long of any window is read from the raw rows on TimescaleDB too: exact at
# once, backlog from an edge gateway included (the aggregate shows rows written below its
# watermark only after its next refresh, within a minute), and cheap (an hour of a signal).
RAW_WINDOW = timedelta(hours=1)


class HistoryPoint(BaseModel):
    bucket: datetime = Field(description="start of the 1-minute bucket (UTC)")
    avg: float = Field(description="mean of the bucket's samples")
    min: float = Field(description="smallest sample in the bucket")
    max: float = Field(description="largest sample in the bucket")
    samples: int = Field(description="how many samples the bucket holds")


_IDS = "SELECT (SELECT id FROM machine WHERE place = %s), (SELECT id FROM signal WHERE name = %s)"

# Plain PostgreSQL, and short windows on TimescaleDB: the telemetry_1m view would aggregate
# every machine before filtering, so the raw rows are read here, through the
# (machine_id, signal_id, time DESC) index. The buckets are the view's (date_bin from
# 2000-01-01, which time_bucket's are too). Values past any unit's range (stored before
# ingest refused them) are left out: two of 1e308 overflow avg() and failed the request.
_PLAIN = """
SELECT date_bin(INTERVAL '1 minute', time, TIMESTAMPTZ '2000-01-01') AS bucket,
       avg(value), min(value), max(value), count(*)
FROM telemetry
WHERE machine_id = %(machine)s AND signal_id = %(signal)s AND time >= %(start)s
  AND value BETWEEN -1e16 AND 1e16
GROUP BY bucket
ORDER BY bucket
"""

# TimescaleDB, windows longer than RAW_WINDOW: the continuous aggregate up to the last
# RAW_WINDOW, and the raw rows from there on (as _PLAIN reads them). The aggregate shows rows
# written below its watermark only once refreshed, and its watermark can lie ahead of rows
# that are arriving now (a refresh ran over rows stamped minutes ahead, or an edge gateway's
# backlog lands in the past): the newest hour never depends on it. Older late rows show
# after the refresh policy's next run (every minute, over the last 7 days). With the ids
# and the start as values, the aggregate reads its materialized buckets and, past its
# watermark, the raw rows of this machine and signal only (it derives `time >= start` from
# `bucket >= start` and excludes the older chunks).
_TIMESCALE = """
SELECT bucket, avg, min, max, samples
FROM telemetry_1m
WHERE machine_id = %(machine)s AND signal_id = %(signal)s
  AND bucket >= %(start)s AND bucket < %(split)s
UNION ALL
SELECT date_bin(INTERVAL '1 minute', time, TIMESTAMPTZ '2000-01-01') AS bucket,
       avg(value), min(value), max(value), count(*)
FROM telemetry
WHERE machine_id = %(machine)s AND signal_id = %(signal)s AND time >= %(split)s
  AND value BETWEEN -1e16 AND 1e16
GROUP BY 1
ORDER BY bucket
"""


def first_bucket(since: datetime) -> datetime:
    """The start of the first whole minute at or after `since`: partial buckets are left out."""
    since = since.astimezone(UTC)
    floor = since.replace(second=0, microsecond=0)
    return floor if floor == since else floor + BUCKET


async def signal_history(
    conn: AsyncConnection,
    backend: Backend,
    machine: Place,
    signal: str,
    since: datetime,
    *,
    now: datetime | None = None,
) -> list[HistoryPoint]:
    """The whole 1-minute buckets of one signal of one machine from `since` on, oldest first.

    Raises NotFound when the machine or the signal does not exist.
    """
    now = now or datetime.now(UTC)
    cur = await conn.execute(_IDS, (str(machine), signal))
    row = await cur.fetchone()
    machine_id, signal_id = row if row else (None, None)
    if machine_id is None:
        raise NotFound(f"no machine {machine}")
    if signal_id is None:
        raise NotFound(f"no signal {signal}")
    start = first_bucket(since)
    split = first_bucket(now - RAW_WINDOW)
    aggregate = backend is Backend.TIMESCALEDB and start < split
    query = _TIMESCALE if aggregate else _PLAIN
    params = {"machine": machine_id, "signal": signal_id, "start": start, "split": split}
    # Never a prepared statement: in a generic plan TimescaleDB cannot derive `time >= start`
    # from `bucket >= start` and reads this machine's raw rows from the watermark on.
    cur = await conn.execute(query, params, prepare=False)
    return [
        HistoryPoint(bucket=b, avg=a, min=lo, max=hi, samples=n)
        for b, a, lo, hi, n in await cur.fetchall()
    ]
