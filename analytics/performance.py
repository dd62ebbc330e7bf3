"""OEE figures per machine and slice, read from the rollup where it is current, else from raw rows.

Both paths compute with the same pure functions (analytics.oee) from the same inputs, read
per machine from the raw tables:

- episodes from `machine_state` (a state holds until the machine's next row), cut where
  the machine's own source or its gateway was dead: from its last data before or during
  the outage until the publisher's next birth, time is unknown;
- parts from `cycle`, counted in the database per segment (a stretch of a planned window
  with one job and one version of its mould) with the ideal cycle time of that version
  (`plant_mould`) / the job's active cavities (`machine_job`);
- planned windows from the site's calendar in force (`plant_site`), in its time zone.

`performance_slice` holds whole past slices (analytics.rollup writes them); a slice that a
write marked stale (`performance_dirty`), that is still running, that the asked range cuts,
or that was computed with another micro-stop threshold is computed from the raw rows. The
answer is the same either way; only its cost differs.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from psycopg import AsyncConnection
from psycopg.types.json import set_json_loads

from analytics.errors import NotFound
from analytics.oee import Episode, Figures, Parts, slice_figures
from analytics.slices import CalendarVersion, Slice, slices
from contracts import MachineState, PartQuality
from plant import Mould
from store.plant import mould_versions_of, site_versions

# What a range may cover: after any data (the wire's timestamps start in 1970), and clear of
# the limits of Python's datetime (a stop's look-back before year 1 overflowed).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
# A stop older than this when a range begins is counted as begun at the range's start.
STOP_LOOKBACK = timedelta(days=31)


@dataclass(frozen=True, slots=True)
class MachineRef:
    id: int
    place: str


@dataclass(slots=True)
class MachineSlice:
    """The figures of one machine over one slice."""

    place: str
    slice: Slice
    figures: Figures
    from_rollup: bool = False


@dataclass(slots=True)
class _Job:
    time: float
    job_name: str
    mould: str
    cavities: int


@dataclass(slots=True)
class _Raw:
    """A machine's raw inputs over [lo, hi)."""

    episodes: list[Episode] = field(default_factory=list)
    # segment number -> Parts made in it, and the segments' edges (epoch s)
    parts: dict[int, list[Parts]] = field(default_factory=dict)
    edges: list[float] = field(default_factory=list)


async def site_machines(
    conn: AsyncConnection[Any], site: str, place_prefix: str | None = None
) -> list[MachineRef]:
    """The machines of `site` (optionally under "site/area[/line[/machine]]"), by place."""
    prefix = place_prefix or site
    cur = await conn.execute(
        "SELECT id, place FROM machine WHERE site = %s"
        " AND (place = %s OR place LIKE %s ESCAPE '\\') ORDER BY place",
        (site, prefix, _like_prefix(prefix)),
    )
    return [MachineRef(i, p) for i, p in await cur.fetchall()]


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}/%"


async def calendar_versions(
    conn: AsyncConnection[Any], site: str, start: datetime, end: datetime
) -> list[CalendarVersion]:
    return [
        CalendarVersion(
            v.valid_from.timestamp(),
            v.valid_to.timestamp() if v.valid_to else None,
            v.item.shift_calendar(),
        )
        for v in await site_versions(conn, site, start, end)
    ]


async def machine_slices(
    conn: AsyncConnection[Any],
    site: str,
    start: datetime,
    end: datetime,
    *,
    micro_stop_s: float,
    place_prefix: str | None = None,
    now: datetime | None = None,
    rollup: bool = True,
) -> list[MachineSlice]:
    """The figures of each machine of `site` over each slice of [start, end).

    Time after `now` is not counted (a slice still running ends there for now). With
    `rollup` False every slice is computed from the raw rows (the benchmark's baseline).
    """
    if end <= start:
        raise ValueError("the range is empty: `to` must be after `from`")
    if start < EARLIEST or end > LATEST:
        raise ValueError(
            f"the range must lie between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d} (UTC)"
        )
    now = now or datetime.now(UTC)
    if start >= now:
        return []  # no time of the range has passed yet
    machines = await site_machines(conn, site, place_prefix)
    if not machines:
        raise NotFound(f"no machine under {place_prefix or site!r} has sent data")
    versions = await calendar_versions(conn, site, start - STOP_LOOKBACK, end)
    # Cut at now: a slice still running is not whole, and is read from the raw rows.
    cut = slices(versions, start, min(end, now))
    stored: dict[tuple[int, int], Figures] = {}
    if rollup:
        stored = await _stored(conn, [m.id for m in machines], start, end, micro_stop_s)
    out: list[MachineSlice] = []
    for m in machines:
        missing = [s for s in cut if not (s.whole and (m.id, _us(s.start)) in stored)]
        computed: dict[float, Figures] = {}
        for run in _runs(missing):  # each stretch of adjoining slices read at once
            lo, hi = run[0].start, run[-1].end
            raw = await read_raw(conn, m, run, lo, hi, now.timestamp())
            for s, f in compute(raw, versions, run, lo, micro_stop_s):
                computed[s.start] = f
        for s in cut:
            if s.start in computed:
                out.append(MachineSlice(m.place, s, computed[s.start]))
            else:
                figures = stored[(m.id, _us(s.start))]
                out.append(MachineSlice(m.place, s, figures, from_rollup=True))
    return out


def _us(t: float) -> int:
    # A slice's start as the database and the calendar both give it, to the microsecond.
    return round(t * 1_000_000)


def _runs(wanted: list[Slice]) -> list[list[Slice]]:
    runs: list[list[Slice]] = []
    for s in wanted:
        if runs and runs[-1][-1].end == s.start:
            runs[-1].append(s)
        else:
            runs.append([s])
    return runs


_STORED = """
SELECT p.machine_id, extract(epoch FROM p.start_at)::float8, p.figures
FROM performance_slice p
WHERE p.machine_id = ANY(%(ids)s) AND p.start_at >= %(start)s AND p.end_at <= %(end)s
  AND p.micro_stop_s = %(micro)s
  AND NOT EXISTS (
      SELECT FROM performance_dirty d
      WHERE (d.machine_id = p.machine_id OR d.machine_id IS NULL)
        AND d.start_at < p.end_at AND d.end_at >= p.start_at)
"""


async def _stored(
    conn: AsyncConnection[Any], ids: list[int], start: datetime, end: datetime, micro: float
) -> dict[tuple[int, int], Figures]:
    """Current rollup rows by (machine, start in whole microseconds)."""
    async with conn.cursor() as cur:
        # Decoding the figures is most of a read from the rollup; orjson takes a third of the
        # time json takes (moldlab bench analytics).
        set_json_loads(orjson.loads, cur)
        await cur.execute(_STORED, {"ids": ids, "start": start, "end": end, "micro": micro})
        rows = await cur.fetchall()
        return {(mid, _us(t)): Figures.from_json(data) for mid, t, data in rows}


_STATES = """
SELECT extract(epoch FROM time)::float8, state, reason FROM machine_state
WHERE machine_id = %(m)s AND time >= coalesce(
        (SELECT max(time) FROM machine_state WHERE machine_id = %(m)s AND time <= %(lo)s),
        %(lo)s)
  AND time <= coalesce(
        (SELECT min(time) FROM machine_state WHERE machine_id = %(m)s AND time > %(hi)s),
        %(hi)s)
ORDER BY time
"""

# Deaths and births of the machine's own source and of its gateway.
_PUBLISHERS = """
SELECT extract(epoch FROM received_at)::float8, online FROM edge_status
WHERE edge_key IN (%(place)s, (SELECT gateway FROM gateway_machine WHERE machine = %(place)s))
  AND received_at <= %(hi)s
  AND received_at >= coalesce(
        (SELECT max(received_at) FROM edge_status
         WHERE edge_key IN (%(place)s,
                            (SELECT gateway FROM gateway_machine WHERE machine = %(place)s))
           AND received_at <= %(lo)s), %(lo)s)
ORDER BY received_at
"""

_JOBS = """
SELECT extract(epoch FROM time)::float8, job_name, mould_id, active_cavities FROM machine_job
WHERE machine_id = %(m)s AND time < %(hi)s AND time >= coalesce(
        (SELECT max(time) FROM machine_job WHERE machine_id = %(m)s AND time <= %(lo)s), %(lo)s)
ORDER BY time, seq
"""

# Cycles counted per segment: width_bucket gives the number of edges at or before the time.
# Sums in numeric: a float sum depends on the order the rows come in, which is the plan's;
# and the groups in a fixed order, as the caller adds their floats up in the order they come.
_PARTS = """
SELECT width_bucket(extract(epoch FROM time)::float8, %(edges)s::float8[]) AS segment,
       job_name, quality, defect, count(*), sum(parts), sum(cycle_time_s::numeric)::float8,
       sum(coalesce((parameters->>'CycleEnergy')::numeric, 0))::float8
FROM cycle
WHERE machine_id = %(m)s AND time >= %(lo)s AND time < %(hi)s
GROUP BY 1, 2, 3, 4
ORDER BY 1, 2, 3, 4
"""

# The last data from a machine in a stretch: the end of what a dead publisher's backlog tells.
_LAST_DATA = """
SELECT greatest(
    (SELECT max(time) FROM cycle WHERE machine_id = %(m)s AND time >= %(lo)s AND time < %(hi)s),
    (SELECT max(time) FROM machine_state
     WHERE machine_id = %(m)s AND time >= %(lo)s AND time < %(hi)s))
"""


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


async def read_raw(
    conn: AsyncConnection[Any],
    m: MachineRef,
    wanted: Sequence[Slice],
    lo: float,
    hi: float,
    now: float,
) -> _Raw:
    lookback = lo - STOP_LOOKBACK.total_seconds()
    args = {"m": m.id, "lo": _dt(lo), "hi": _dt(hi), "place": m.place}
    raw = _Raw()
    cur = await conn.execute(_STATES, args)
    rows = await cur.fetchall()
    episodes: list[Episode] = []
    for i, (t, state, reason) in enumerate(rows):
        t_end = rows[i + 1][0] if i + 1 < len(rows) else now
        t = max(t, lookback)
        if t_end <= t:
            continue
        st = MachineState(state)
        if episodes and episodes[-1].state is st and episodes[-1].reason == reason:
            episodes[-1] = Episode(episodes[-1].start, t_end, st, reason)
        else:
            episodes.append(Episode(t, t_end, st, reason))
    raw.episodes = await _cut_outages(conn, m, episodes, args, now)
    cur = await conn.execute(_JOBS, args)
    jobs = [_Job(t, name, mould, cav) for t, name, mould, cav in await cur.fetchall()]
    moulds = await _moulds(conn, {j.mould for j in jobs}, lo, hi)
    raw.edges, meta = _segments(jobs, moulds, wanted, lo, hi)
    cur = await conn.execute(_PARTS, {**args, "edges": raw.edges})
    for seg, job_name, quality, defect, cycles, parts, cycle_s, kwh in await cur.fetchall():
        job, mould = _rate(meta[seg], job_name, jobs, moulds)
        if mould is None or job is None:
            ideal, unrated = float(cycle_s), int(cycles)
        else:
            ideal, unrated = mould.ideal_cycle_s * int(parts) / job.cavities, 0
        if not meta[seg].planned:
            continue  # made outside planned busy time (a break, no shift): not in OEE
        raw.parts.setdefault(seg, []).append(
            Parts(PartQuality(quality), int(cycles), int(parts), ideal, float(kwh), defect, unrated)
        )
    return raw


async def _cut_outages(
    conn: AsyncConnection[Any],
    m: MachineRef,
    episodes: list[Episode],
    args: dict[str, Any],
    now: float,
) -> list[Episode]:
    """`episodes` with the time a dead publisher did not account for made unknown."""
    cur = await conn.execute(_PUBLISHERS, args)
    outages: list[tuple[float, float]] = []
    dead_since: float | None = None
    for t, online in await cur.fetchall():
        if not online and dead_since is None:
            dead_since = t
        elif online and dead_since is not None:
            outages.append((dead_since, t))
            dead_since = None
    if dead_since is not None:
        outages.append((dead_since, now))
    if not outages:
        return episodes
    unknown: list[tuple[float, float]] = []
    for died, back in outages:
        cur = await conn.execute(_LAST_DATA, {"m": m.id, "lo": _dt(died), "hi": _dt(back)})
        row = await cur.fetchone()
        last = row[0].timestamp() if row and row[0] is not None else died
        if back > last:
            unknown.append((last, back))
    out: list[Episode] = []
    for ep in episodes:
        pieces = [(ep.start, ep.end)]
        for u0, u1 in unknown:
            pieces = [
                p for a, b in pieces for p in ((a, min(b, u0)), (max(a, u1), b)) if p[1] > p[0]
            ]
        # Pieces keep the episode's whole extent for micro-stop length and counting.
        whole = None if pieces == [(ep.start, ep.end)] else (ep.start, ep.end)
        out += [Episode(a, b, ep.state, ep.reason, whole) for a, b in pieces]
    return out


async def _moulds(
    conn: AsyncConnection[Any], names: set[str], lo: float, hi: float
) -> dict[str, list[tuple[float, float, Mould]]]:
    found = await mould_versions_of(conn, sorted(names), _dt(lo), _dt(hi))
    return {
        name: [
            (
                v.valid_from.timestamp(),
                v.valid_to.timestamp() if v.valid_to else float("inf"),
                v.item,
            )
            for v in vs
        ]
        for name, vs in found.items()
    }


@dataclass(frozen=True, slots=True)
class _Segment:
    """A stretch [start, ...) inside one slice, in or out of its planned windows, of one job."""

    start: float
    planned: bool
    job: _Job | None
    mould: Mould | None


def _segments(
    jobs: list[_Job],
    moulds: dict[str, list[tuple[float, float, Mould]]],
    wanted: Sequence[Slice],
    lo: float,
    hi: float,
) -> tuple[list[float], dict[int, _Segment]]:
    """Edges where a slice, a planned window, the job or its mould's version changes, and
    each segment's job and mould.

    width_bucket numbers a time by how many edges are at or before it, so segment i runs
    from edges[i-1]; segment 0 (before lo) never holds a cycle.
    """
    points = {lo}
    windows: list[tuple[float, float]] = []
    for s in wanted:
        points.update((s.start, s.end))
        for a, b in s.planned:
            points.update((a, b))
            windows.append((a, b))
    for j in jobs:
        points.add(j.time)
        for v0, v1, _ in moulds.get(j.mould, ()):
            points.update((v0, v1))
    edges = sorted(p for p in points if lo <= p < hi)
    windows.sort()
    starts = [w[0] for w in windows]
    times = [j.time for j in jobs]
    meta: dict[int, _Segment] = {}
    for i, at in enumerate(edges, start=1):
        k = bisect.bisect_right(starts, at) - 1
        planned = k >= 0 and windows[k][0] <= at < windows[k][1]
        k = bisect.bisect_right(times, at) - 1
        job = jobs[k] if k >= 0 else None
        mould = None
        if job is not None:
            mould = next((md for v0, v1, md in moulds.get(job.mould, ()) if v0 <= at < v1), None)
        meta[i] = _Segment(at, planned, job, mould)
    return edges, meta


def _rate(
    segment: _Segment,
    job_name: str | None,
    jobs: list[_Job],
    moulds: dict[str, list[tuple[float, float, Mould]]],
) -> tuple[_Job | None, Mould | None]:
    """The job and mould version a segment's cycles of job `job_name` were made with."""
    if job_name is None or segment.job is None or segment.job.job_name == job_name:
        return segment.job, segment.mould
    # The cycle names another job than the one in force (it arrived before its job message
    # or after the next, or ended at the instant of the change): that job's latest row at or
    # before the segment, if any, with its own mould's version there (segments break where
    # any version of a job's mould begins or ends).
    named = [j for j in jobs if j.job_name == job_name and j.time <= segment.start]
    if not named:
        return None, None
    at = segment.start
    versions = moulds.get(named[-1].mould, ())
    return named[-1], next((md for v0, v1, md in versions if v0 <= at < v1), None)


def compute(
    raw: _Raw,
    versions: Sequence[CalendarVersion],
    wanted: list[Slice],
    lo: float,
    micro_stop_s: float,
) -> list[tuple[Slice, Figures]]:
    """The figures of each slice in `wanted` from one machine's raw inputs."""
    first = min(raw.episodes[0].start if raw.episodes else lo, lo)
    hi = wanted[-1].end
    # Every planned window from the first episode on (rolled-up slices between the wanted
    # ones too), so that a stop running on from an earlier slice is counted once.
    planned_all = [w for s in slices(versions, _dt(first), _dt(hi)) for w in s.planned]
    out: list[tuple[Slice, Figures]] = []
    for s in wanted:
        episodes = [e for e in raw.episodes if e.end > s.start and e.start < s.end]
        parts = _parts_in(raw, s)
        # In whole microseconds, as slice_figures adds the rest: no rounding noise between
        # a shift's time and the unknown time that may make up all of it.
        shift_us = _us(s.end) - _us(s.start) if s.shift is not None else 0
        planned_us = sum(_us(b) - _us(a) for a, b in s.planned)
        before = [(a, min(b, s.start)) for a, b in planned_all if a < s.start]
        out.append(
            (
                s,
                slice_figures(
                    (s.start, s.end),
                    s.planned,
                    episodes,
                    parts,
                    shift_s=shift_us / 1e6,
                    break_s=(shift_us - planned_us) / 1e6,
                    micro_stop_s=micro_stop_s,
                    earlier_planned=before,
                ),
            )
        )
    return out


def _parts_in(raw: _Raw, s: Slice) -> list[Parts]:
    """The parts of the segments that start inside the slice (the slice's ends are edges)."""
    first = bisect.bisect_left(raw.edges, s.start) + 1
    last = bisect.bisect_left(raw.edges, s.end)  # the segment starting at s.end is not ours
    return [p for seg in range(first, last + 1) for p in raw.parts.get(seg, ())]
