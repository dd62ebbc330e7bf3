"""One signal of one machine in 1-minute (or coarser) buckets, read at the cost of the window,
not the table.

Coarser buckets (5 min to a day) are for windows of weeks and months: on TimescaleDB they
are summed from the 1-minute continuous aggregate (each bucket's mean weighted by its
samples), never from the raw rows, except for the newest hour; on plain PostgreSQL they are
computed from the raw rows of the window, through the same index.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from psycopg import AsyncConnection
from pydantic import BaseModel, Field

from analytics.errors import NotFound
from contracts import Place
from store import Backend

BUCKET = timedelta(minutes=1)
_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)  # date_bin's and time_bucket's origin
# The newest this-long of any window is read from the raw rows on TimescaleDB too: exact at
# once, backlog from an edge gateway included (the aggregate shows rows written below its
# watermark only after its next refresh, within a minute), and cheap (an hour of a signal).
RAW_WINDOW = timedelta(hours=1)


class HistoryPoint(BaseModel):
    bucket: datetime = Field(description="start of the bucket (UTC)")
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


# Coarser buckets: the same shapes, over `width`. On TimescaleDB the aggregate's 1-minute
# buckets are summed into them (their means weighted by their samples).
_PLAIN_COARSE = _PLAIN.replace("INTERVAL '1 minute'", "%(width)s::interval")
_TIMESCALE_COARSE = """
SELECT date_bin(%(width)s::interval, bucket, TIMESTAMPTZ '2000-01-01') AS b,
       sum(avg * samples) / sum(samples), min(min), max(max), sum(samples)::bigint
FROM telemetry_1m
WHERE machine_id = %(machine)s AND signal_id = %(signal)s
  AND bucket >= %(start)s AND bucket < %(split)s
GROUP BY 1
UNION ALL
SELECT date_bin(%(width)s::interval, time, TIMESTAMPTZ '2000-01-01'),
       avg(value), min(value), max(value), count(*)
FROM telemetry
WHERE machine_id = %(machine)s AND signal_id = %(signal)s AND time >= %(split)s
  AND value BETWEEN -1e16 AND 1e16
GROUP BY 1
ORDER BY 1
"""


def first_bucket(since: datetime, width: timedelta = BUCKET) -> datetime:
    """The start of the first whole bucket of `width` at or after `since`: partial buckets
    are left out (buckets start at 2000-01-01 + a multiple of `width`)."""
    since = since.astimezone(UTC)
    past = (since - _ORIGIN) % width
    return since if not past else since - past + width


def _merged(rows: list[tuple[datetime, float, float, float, int]]) -> list[HistoryPoint]:
    """Points from rows ordered by bucket; a bucket found twice (its aggregated part and its
    raw newest part) becomes one, its mean weighted by samples."""
    points: list[HistoryPoint] = []
    for b, a, lo, hi, n in rows:
        last = points[-1] if points else None
        if last is not None and last.bucket == b:
            samples = last.samples + n
            last.avg = (last.avg * last.samples + a * n) / samples
            last.min, last.max, last.samples = min(last.min, lo), max(last.max, hi), samples
        else:
            points.append(HistoryPoint(bucket=b, avg=a, min=lo, max=hi, samples=n))
    return points


async def signal_history(
    conn: AsyncConnection,
    backend: Backend,
    machine: Place,
    signal: str,
    since: datetime,
    *,
    now: datetime | None = None,
    width: timedelta = BUCKET,
) -> list[HistoryPoint]:
    """The whole buckets of `width` (1 minute, or a whole number of minutes) of one signal of
    one machine from `since` on, oldest first.

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
    start = first_bucket(since, width)
    split = first_bucket(now - RAW_WINDOW)
    aggregate = backend is Backend.TIMESCALEDB and start < split
    if width == BUCKET:
        query = _TIMESCALE if aggregate else _PLAIN
    else:
        query = _TIMESCALE_COARSE if aggregate else _PLAIN_COARSE
    params = {"machine": machine_id, "signal": signal_id, "start": start, "split": split,
              "width": width}  # fmt: skip
    # Never a prepared statement: in a generic plan TimescaleDB cannot derive `time >= start`
    # from `bucket >= start` and reads this machine's raw rows from the watermark on.
    cur = await conn.execute(query, params, prepare=False)
    return _merged(await cur.fetchall())
