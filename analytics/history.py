"""One signal of one machine in 1-minute buckets, read at the cost of the window, not the table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from psycopg import AsyncConnection
from pydantic import BaseModel, Field

from analytics.errors import NotFound
from store import Backend

BUCKET = timedelta(minutes=1)
# Windows up to this long are read from the raw rows on TimescaleDB too: exact at once,
# backlog from an edge gateway included (the aggregate shows rows written below its
# watermark only after its next refresh, within a minute), and cheap (an hour of a signal).
RAW_WINDOW = timedelta(hours=1)


class HistoryPoint(BaseModel):
    bucket: datetime = Field(description="start of the 1-minute bucket (UTC)")
    avg: float = Field(description="mean of the bucket's samples")
    min: float = Field(description="smallest sample in the bucket")
    max: float = Field(description="largest sample in the bucket")
    samples: int = Field(description="how many samples the bucket holds")


_IDS = (
    "SELECT (SELECT id FROM machine WHERE machine_key = %s),"
    " (SELECT id FROM signal WHERE name = %s)"
)

# Plain PostgreSQL, and short windows on TimescaleDB: the telemetry_1m view would aggregate
# every machine before filtering, so the raw rows are read here, through the
# (machine_id, signal_id, time DESC) index. The buckets are the view's (date_bin from
# 2000-01-01, which time_bucket's are too). Values past any unit's range (stored before
# ingest refused them) are left out: two of 1e308 overflow avg() and failed the request.
_PLAIN = """
SELECT date_bin(INTERVAL '1 minute', time, TIMESTAMPTZ '2000-01-01') AS bucket,
       avg(value), min(value), max(value), count(*)
FROM telemetry
WHERE machine_id = %s AND signal_id = %s AND time >= %s
  AND value BETWEEN -1e16 AND 1e16
GROUP BY bucket
ORDER BY bucket
"""

# TimescaleDB: the continuous aggregate. With the ids and the start as values, it reads its
# materialized buckets and, past its watermark, the raw rows of this machine and signal only
# (it derives `time >= start` from `bucket >= start` and excludes the older chunks).
_TIMESCALE = """
SELECT bucket, avg, min, max, samples
FROM telemetry_1m
WHERE machine_id = %s AND signal_id = %s AND bucket >= %s
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
    machine_key: str,
    signal: str,
    since: datetime,
    *,
    now: datetime | None = None,
) -> list[HistoryPoint]:
    """The whole 1-minute buckets of one signal of one machine from `since` on, oldest first.

    Raises NotFound when the machine or the signal does not exist.
    """
    now = now or datetime.now(UTC)
    cur = await conn.execute(_IDS, (machine_key, signal))
    row = await cur.fetchone()
    machine_id, signal_id = row if row else (None, None)
    if machine_id is None:
        raise NotFound(f"no machine {machine_key}")
    if signal_id is None:
        raise NotFound(f"no signal {signal}")
    aggregate = backend is Backend.TIMESCALEDB and now - since > RAW_WINDOW
    query = _TIMESCALE if aggregate else _PLAIN
    # Never a prepared statement: in a generic plan TimescaleDB cannot derive `time >= start`
    # from `bucket >= start` and reads this machine's raw rows from the watermark on.
    cur = await conn.execute(query, (machine_id, signal_id, first_bucket(since)), prepare=False)
    return [
        HistoryPoint(bucket=b, avg=a, min=lo, max=hi, samples=n)
        for b, a, lo, hi, n in await cur.fetchall()
    ]
