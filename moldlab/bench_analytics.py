"""`moldlab bench analytics`: OEE per shift, the loss tree and the Pareto, from the rollup and raw.

The data (moldlab.bench_analytics_rows): `--machines` presses of the demo plant file's site
over `--days` days ending at `--end`, drawn by a seeded random source at the demo's rates and
bulk-loaded with binary COPY; no telemetry (no figure measured here reads it). `--end` is the
benchmark's "now": the analytics are asked as of that instant (as the API asks as of the wall
clock), so one seed gives the same rows and the same figures on every run.

The queries are the API's, through one pooled connection as the API takes one per request:
read the machine slices (analytics.report.read_slices), add them up, build the response (OEE
per shift for the site, the loss tree, the downtime Pareto) and encode it as JSON; each from
the rollup (`performance_slice`, built by analytics.rollup.refresh) and from raw rows,
alternately, after one warm-up each. Full garbage collections that run during a timed
request are counted: with Python's default thresholds they are what the slowest requests of
the rollup path spend their extra time on. The API freezes what it allocated at start-up
(gc.freeze), so that they skip it; so does the benchmark once the data is loaded, unless
--no-gc-freeze.
"""

from __future__ import annotations

import asyncio
import gc
import json
import math
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, TypeAdapter

from analytics.oee import MicroStops
from analytics.report import (
    Bucket,
    Level,
    OeeRow,
    ParetoRow,
    PerformanceSettings,
    group,
    loss_tree,
    oee_row,
    pareto_rows,
    read_slices,
    summed,
)
from analytics.rollup import refresh
from analytics.slices import CalendarVersion, slices
from moldlab.bench import BenchError, Machine, _met, announce, machine
from moldlab.bench_analytics_rows import DAY_S, PARAMETERS, demo_plant, load
from moldlab.progress import ProgressBar
from moldlab.servers import LocalPostgres, create_database, drop_database
from plant import ShiftCalendar
from store.backend import Backend, database_backend

TARGET_MS = 50.0  # p50 and p99 of each query from the rollup
DEFAULT_END = datetime.fromisoformat("2026-11-27T10:45:00+01:00")  # a Friday, mid-morning shift
TOLERANCE = 1e-9  # both paths must agree to this (relative to the figure, at least absolute)


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


@dataclass(frozen=True, slots=True)
class DataFigures:
    site: str
    timezone: str
    machines: int
    days: float
    start: str
    end: str  # the benchmark's "now"
    seed: int
    rows: dict[str, int]
    cycle_parameters: list[str]
    telemetry: str
    load_s: float
    rows_per_s: float
    machine_days_per_s: float
    vacuum_analyze_s: float
    parts: int
    scrap_pct: float
    test_parts: int
    stops: int
    faults: int
    setups: int
    planned_maintenance: int
    stops_across_shift_change: int


# --- the queries -------------------------------------------------------------------------------

Query = Callable[[AsyncConnection[Any], bool], Awaitable[tuple[bytes, Any]]]

_OEE_ROWS: TypeAdapter[list[OeeRow]] = TypeAdapter(list[OeeRow])
_PARETO_ROWS: TypeAdapter[list[ParetoRow]] = TypeAdapter(list[ParetoRow])


def queries(
    site: str, start: datetime, end: datetime, now: datetime, settings: PerformanceSettings
) -> dict[str, Query]:
    """The three requests, each as the API answers it: read, add up, build, encode."""
    convention = settings.convention

    async def oee_per_shift(conn: AsyncConnection[Any], rollup: bool) -> tuple[bytes, Any]:
        rows = await read_slices(conn, site, start, end, settings, now=now, rollup=rollup)
        out = [oee_row(g, convention) for g in group(rows, Bucket.SHIFT, Level.SITE)]
        return _OEE_ROWS.dump_json(out), out

    async def losses(conn: AsyncConnection[Any], rollup: bool) -> tuple[bytes, Any]:
        rows = await read_slices(conn, site, start, end, settings, now=now, rollup=rollup)
        tree = loss_tree(summed(rows), convention)
        return tree.model_dump_json().encode(), tree

    async def pareto(conn: AsyncConnection[Any], rollup: bool) -> tuple[bytes, Any]:
        rows = await read_slices(conn, site, start, end, settings, now=now, rollup=rollup)
        out = pareto_rows(summed(rows), convention)
        return _PARETO_ROWS.dump_json(out), out

    return {"oee_per_shift": oee_per_shift, "loss_tree": losses, "pareto": pareto}


def plain(value: Any) -> Any:
    """Response models as plain data to compare, without what says which path made them."""
    if isinstance(value, BaseModel):
        return plain(value.model_dump(mode="python", exclude={"from_rollup"}))
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if k != "from_rollup"}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def difference(a: Any, b: Any) -> float:
    """The largest relative difference between two figures' plain data (inf: not alike)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return math.inf
        return max((difference(a[k], b[k]) for k in a), default=0.0)
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return math.inf
        return max((difference(x, y) for x, y in zip(a, b, strict=True)), default=0.0)
    if isinstance(a, float | int) and isinstance(b, float | int) and not isinstance(a, bool):
        return abs(a - b) / max(1.0, abs(a), abs(b))
    return 0.0 if a == b else math.inf


@dataclass(frozen=True, slots=True)
class PathFigures:
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    runs: int
    full_gcs: int  # full garbage collections that ran during the timed runs
    full_gc_ms: float  # their time in all
    p99_without_full_gc_ms: float | None  # over the runs no full collection ran in


@dataclass(frozen=True, slots=True)
class QueryFigures:
    name: str
    window: str
    start: str
    end: str
    rollup: PathFigures
    raw: PathFigures | None
    speedup_p50: float | None
    machine_slices: int
    from_rollup: int  # of them, read from the rollup (the rest computed from raw rows)
    response_bytes: int
    same_figures: bool
    max_difference: float
    target_met: bool


def _quantile(ordered: Sequence[float], q: float) -> float:
    """The q-quantile of sorted values (nearest rank)."""
    rank = math.ceil(q * len(ordered) - 1e-9)  # 0.99 * 100 is 99.00000000000001
    return ordered[min(len(ordered), max(1, rank)) - 1]


class _FullCollections:
    """Counts full (generation 2) garbage collections and their time, while `timing`."""

    def __init__(self) -> None:
        self.timing = False
        self.count = 0
        self.ms = 0.0
        self._began = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._began = time.perf_counter()
        elif self.timing:
            self.count += 1
            self.ms += (time.perf_counter() - self._began) * 1000

    def __enter__(self) -> _FullCollections:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        gc.callbacks.remove(self)


@dataclass(slots=True)
class _Run:
    seconds: float
    full_gcs: int
    full_gc_ms: float


def _path(runs: list[_Run]) -> PathFigures:
    ordered = sorted(r.seconds * 1000 for r in runs)
    clean = sorted(r.seconds * 1000 for r in runs if not r.full_gcs)
    return PathFigures(
        p50_ms=round(_quantile(ordered, 0.5), 2),
        p99_ms=round(_quantile(ordered, 0.99), 2),
        mean_ms=round(statistics.fmean(ordered), 2),
        max_ms=round(ordered[-1], 2),
        runs=len(ordered),
        full_gcs=sum(r.full_gcs for r in runs),
        full_gc_ms=round(sum(r.full_gc_ms for r in runs), 1),
        p99_without_full_gc_ms=round(_quantile(clean, 0.99), 2) if clean else None,
    )


async def measure(
    pool: AsyncConnectionPool[AsyncConnection[Any]],
    name: str,
    window: str,
    query: Query,
    start: datetime,
    end: datetime,
    repeat: int,
    raw_repeat: int,
    counted: Callable[[AsyncConnection[Any]], Awaitable[tuple[int, int]]],
    tick: Callable[[], None],
) -> QueryFigures:
    """Time `query` from the rollup `repeat` times and from raw rows `raw_repeat` times,
    alternately, after one warm-up each; check that both give the same figures."""
    with _FullCollections() as collections:

        async def once(rollup: bool) -> tuple[_Run, bytes, Any]:
            count, ms = collections.count, collections.ms
            collections.timing = True
            began = time.perf_counter()
            async with pool.connection() as conn:
                encoded, result = await query(conn, rollup)
            seconds = time.perf_counter() - began
            collections.timing = False
            run = _Run(seconds, collections.count - count, collections.ms - ms)
            return run, encoded, result

        _, encoded, from_rollup = await once(True)
        _, _, from_raw = await once(False)
        diff = difference(plain(from_rollup), plain(from_raw))
        timed: dict[bool, list[_Run]] = {True: [], False: []}
        for i in range(max(repeat, raw_repeat)):
            for rollup, n in ((True, repeat), (False, raw_repeat)):
                if i < n:
                    timed[rollup].append((await once(rollup))[0])
                    tick()
    async with pool.connection() as conn:
        slices_n, stored_n = await counted(conn)
    rollup_figs = _path(timed[True])
    raw_figs = _path(timed[False]) if timed[False] else None
    return QueryFigures(
        name=name,
        window=window,
        start=start.isoformat(),
        end=end.isoformat(),
        rollup=rollup_figs,
        raw=raw_figs,
        speedup_p50=round(raw_figs.p50_ms / rollup_figs.p50_ms, 1) if raw_figs else None,
        machine_slices=slices_n,
        from_rollup=stored_n,
        response_bytes=len(encoded),
        same_figures=diff <= TOLERANCE,
        max_difference=diff,
        target_met=rollup_figs.p50_ms < TARGET_MS and rollup_figs.p99_ms < TARGET_MS,
    )


# --- the command -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RollupFigures:
    machines: int
    slices: int
    seconds: float
    slices_per_s: float


@dataclass(frozen=True, slots=True)
class Server:
    label: str
    backend: str
    version: str


@contextmanager
def _database(database_url: str | None, tmp: Path) -> Iterator[tuple[str, str]]:
    """A fresh, migrated database (on a local PostgreSQL unless a server URL is given)."""
    from store import upgrade

    with ExitStack() as stack:
        if database_url is None:
            pg = stack.enter_context(LocalPostgres(tmp / "postgres"))
            server_url, where = pg.url, "local"
        else:
            server_url, where = database_url, "external"
        name = f"moldlab_bench_{uuid.uuid4().hex[:10]}"
        url = create_database(server_url, name)
        stack.callback(drop_database, server_url, name)
        upgrade(url)
        yield url, where


@contextmanager
def bench_database(
    database_url: str | None, command: str, host: Machine, *, quiet: bool
) -> Iterator[tuple[str, Server, Path]]:
    """A fresh, migrated database for a benchmark (on a local PostgreSQL unless a server URL
    is given), its server, and a scratch folder; unless `quiet`, the benchmark's first lines:
    its command, the machine and the database."""
    with tempfile.TemporaryDirectory(prefix="moldlab-bench-", dir="/tmp") as tmp:
        Path(tmp).chmod(0o755)  # PostgreSQL runs as `postgres` when we are root
        with _database(database_url, Path(tmp)) as (url, where):
            server = _server(url, where)
            if not quiet:
                announce(command, host)
                print(f"database: {server.label}", flush=True)
            yield url, server, Path(tmp)


def _server(url: str, where: str) -> Server:
    """What the database runs on, as its first migration recorded it and the server says."""
    backend = database_backend(url)
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT current_setting('server_version')").fetchone()
        version = str(row[0]) if row else "?"
        label = f"PostgreSQL {version.split()[0]}"
        if backend is Backend.TIMESCALEDB:
            row = conn.execute(
                "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
            ).fetchone()
            label = f"TimescaleDB {row[0] if row else '?'} on {label}"
        else:
            label = f"plain {label} (no timescaledb)"
    return Server(f"{where} {label}", backend.value, version)


def window_of(
    calendar: ShiftCalendar, start: float, now: datetime, days: int
) -> tuple[datetime, datetime]:
    """The last `days` whole production days before `now`'s: from the first slice of the site's
    day `days` before today to the first slice of today (shift starts, in the site's time)."""
    today = now.astimezone(calendar.zone).date()
    first = today - timedelta(days=days)
    cut = slices([CalendarVersion(start - DAY_S, None, calendar)],
                 datetime.combine(first - timedelta(days=1), datetime.min.time(), calendar.zone),
                 now)  # fmt: skip

    def day_start(day: date) -> datetime:
        return datetime.fromtimestamp(min(s.start for s in cut if s.day == day), calendar.zone)

    return day_start(first), day_start(today)


def parse_end(text: str) -> datetime:
    """`--end`: an ISO time with a zone, or "now" (to the second)."""
    if text == "now":
        return datetime.now(UTC).replace(microsecond=0)
    end = datetime.fromisoformat(text)
    if end.tzinfo is None:
        raise ValueError("--end needs a time zone, e.g. 2026-11-27T10:45:00+01:00")
    return end


@dataclass(frozen=True, slots=True)
class Options:
    machines: int
    days: float
    window_days: int
    end: datetime
    seed: int
    repeat: int
    raw_repeat: int
    micro_stop_s: float
    gc_freeze: bool
    as_json: bool


async def _load(conn: AsyncConnection[Any], o: Options) -> DataFigures:
    plant = demo_plant(o.machines)
    site = plant.sites[0]
    end_t = o.end.timestamp()
    start_t = end_t - o.days * DAY_S
    bar = ProgressBar("loading", "machine-days")
    began = time.perf_counter()
    rows, counts = await load(conn, plant, start_t, end_t, o.seed, bar)
    load_s = time.perf_counter() - began
    bar.finish()
    began = time.perf_counter()
    for table in ("cycle", "machine_state", "machine_job", "edge_status", "gateway_machine",
                  "plant_site", "plant_mould", "plant_machine", "machine"):  # fmt: skip
        await conn.execute(f"VACUUM (ANALYZE) {table}")  # as autovacuum would, in time
    return DataFigures(
        site=site.id,
        timezone=site.timezone,
        machines=o.machines,
        days=o.days,
        start=_dt(start_t).isoformat(),
        end=o.end.isoformat(),
        seed=o.seed,
        rows=rows,
        cycle_parameters=list(PARAMETERS),
        telemetry="not loaded: no figure measured here reads it",
        load_s=round(load_s, 1),
        rows_per_s=round(sum(rows.values()) / load_s),
        machine_days_per_s=round(o.machines * o.days / load_s, 2),
        vacuum_analyze_s=round(time.perf_counter() - began, 1),
        parts=counts.parts,
        scrap_pct=round(100.0 * counts.bad / max(1, counts.parts), 2),
        test_parts=counts.test,
        stops=counts.stops,
        faults=counts.faults,
        setups=counts.setups,
        planned_maintenance=counts.maintenance,
        stops_across_shift_change=counts.across_shift_change,
    )


async def _measure_all(url: str, o: Options) -> list[QueryFigures]:
    """Both windows, each query, both paths (see `measure`)."""
    site = demo_plant(o.machines).sites[0]
    calendar = site.shift_calendar()
    zone = calendar.zone
    start_t = o.end.timestamp() - o.days * DAY_S
    settings = PerformanceSettings(micro_stop_s=o.micro_stop_s, convention=MicroStops.ISO)
    w_start, w_end = window_of(calendar, start_t, o.end, o.window_days)
    if w_start.timestamp() < start_t:
        raise BenchError(f"--days {o.days:g} holds no {o.window_days} whole days before --end")
    windows = [
        (f"{o.window_days} whole days", w_start, w_end, o.raw_repeat),
        # The same days and today so far: today's running shift is computed from raw rows.
        (f"{o.window_days} whole days and today to now", w_start, o.end.astimezone(zone), 0),
    ]
    total = sum(3 * (o.repeat + raw_n) for *_, raw_n in windows)
    bar = ProgressBar("measuring", "requests")
    ticks = 0

    def tick() -> None:
        nonlocal ticks
        ticks += 1
        bar(ticks, total)

    figures: list[QueryFigures] = []
    pool: AsyncConnectionPool[AsyncConnection[Any]] = AsyncConnectionPool(
        url, min_size=1, max_size=1, open=False
    )
    await pool.open(wait=True)
    try:
        for label, lo, hi, raw_n in windows:

            async def counted(
                conn: AsyncConnection[Any], lo: datetime = lo, hi: datetime = hi
            ) -> tuple[int, int]:
                rows = await read_slices(conn, site.id, lo, hi, settings, now=o.end)
                return len(rows), sum(r.from_rollup for r in rows)

            for name, query in queries(site.id, lo, hi, o.end, settings).items():
                figures.append(
                    await measure(pool, name, label, query, lo, hi, o.repeat, raw_n, counted, tick)
                )
    finally:
        await pool.close()
    bar.finish()
    return figures


async def _run(url: str, o: Options) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with await AsyncConnection.connect(url, autocommit=True) as conn:
        data = await _load(conn, o)
        out["data"] = asdict(data)
        if not o.as_json:
            _print_data(data)
        bar = ProgressBar("rollup", "machines")
        began = time.perf_counter()
        result = await refresh(conn, micro_stop_s=o.micro_stop_s, now=o.end, progress=bar)
        seconds = time.perf_counter() - began
        bar.finish()
    if not result.ran:
        raise BenchError("the rollup did not run: another pass held its lock")
    rollup = RollupFigures(result.machines, result.slices, round(seconds, 1),
                           round(result.slices / seconds, 1))  # fmt: skip
    out["rollup"] = asdict(rollup)
    if not o.as_json:
        print(f"\nrollup: analytics.rollup.refresh wrote {rollup.slices:,} machine slices of "
              f"{rollup.machines} machines in {rollup.seconds:g} s "
              f"({rollup.slices_per_s:,.0f} slices/s)", flush=True)  # fmt: skip
    if o.gc_freeze:
        gc.freeze()  # as the API does once started (dashboard_api.app): see the docstring
    load_before = os.getloadavg()[0]
    out["queries"] = [asdict(f) for f in await _measure_all(url, o)]
    out["load_average_1min"] = {"before": load_before, "after": os.getloadavg()[0]}
    out["gc"] = "frozen after loading, as the API does" if o.gc_freeze else "as is (--no-gc-freeze)"
    return out


def run_analytics_bench(
    *,
    machines: int,
    days: float,
    window_days: int,
    end: str,
    seed: int,
    repeat: int,
    raw_repeat: int,
    micro_stop_s: float,
    gc_freeze: bool,
    database_url: str | None,
    as_json: bool,
) -> int:
    """`moldlab bench analytics`: print the figures (text or JSON); 2 for bad options."""
    command = (
        f"moldlab bench analytics --machines {machines} --days {days:g} --window-days "
        f"{window_days} --end {end} --seed {seed} --repeat {repeat} --raw-repeat {raw_repeat}"
        + (f" --micro-stop-s {micro_stop_s:g}" if micro_stop_s != 300.0 else "")
        + ("" if gc_freeze else " --no-gc-freeze")
        + (" --database-url ..." if database_url else "")
        + (" --json" if as_json else "")
    )
    try:
        end_at = parse_end(end)
    except ValueError as exc:
        print(f"moldlab bench analytics: {exc}", file=sys.stderr)
        return 2
    if min(machines, days, window_days, repeat, raw_repeat, micro_stop_s) <= 0:
        print("moldlab bench analytics: every number must be positive", file=sys.stderr)
        return 2
    if days < window_days + 1:
        print("moldlab bench analytics: --days must exceed --window-days by a day at least",
              file=sys.stderr)  # fmt: skip
        return 2
    if machines > 1000:
        print("moldlab bench analytics: at most 1000 machines", file=sys.stderr)
        return 2
    options = Options(machines, days, window_days, end_at, seed, repeat, raw_repeat,
                      micro_stop_s, gc_freeze, as_json)  # fmt: skip
    host = machine()
    try:
        with bench_database(database_url, command, host, quiet=as_json) as (url, server, _):
            figures = asyncio.run(_run(url, options))
    except BenchError as exc:
        print(f"moldlab bench analytics: {exc}", file=sys.stderr)
        return 1
    found = [_from_dict(q) for q in figures["queries"]]
    same = all(q.same_figures for q in found)
    judged = [q for q in found if q.window == found[0].window]
    targets = {
        "target_ms": TARGET_MS,
        "window": judged[0].window,
        "rollup_p50_p99_under_target": all(q.target_met for q in judged),
        "same_figures_both_paths": same,
    }
    if as_json:
        doc = {"command": command, "machine": asdict(host), "database": asdict(server),
               **figures, "targets": targets}  # fmt: skip
        print(json.dumps(doc, indent=2))
    else:
        _print_queries(found, figures)
        print("\ntargets:")
        met = _met(bool(targets["rollup_p50_p99_under_target"]))
        print(f"  p50 and p99 < {TARGET_MS:g} ms from the rollup, each query over "
              f"{judged[0].window}: {met}")  # fmt: skip
        print(f"  the same figures from the rollup and from raw rows (to {TOLERANCE:g}), every "
              f"query and window: {'yes' if same else 'NO'}")  # fmt: skip
    return 0 if same else 1


def _from_dict(d: dict[str, Any]) -> QueryFigures:
    raw = PathFigures(**d["raw"]) if d["raw"] else None
    return QueryFigures(**{**d, "rollup": PathFigures(**d["rollup"]), "raw": raw})


def _print_data(d: DataFigures) -> None:
    rows = ", ".join(f"{k} {v:,}" for k, v in d.rows.items())
    print(f"\ndata: {d.machines} machines x {d.days:g} days of site {d.site} ({d.timezone}; the "
          f"demo plant file's shifts, breaks and moulds), {d.start} to {d.end} (now), seed "
          f"{d.seed}")  # fmt: skip
    print(f"  rows      {rows}")
    print(f"  cycles    parameters {', '.join(d.cycle_parameters)}; {d.parts:,} parts, "
          f"{d.scrap_pct:g} % scrap, {d.test_parts:,} test parts")  # fmt: skip
    print(f"  states    {d.stops:,} stops ({d.faults:,} breakdowns), {d.setups:,} mould changes, "
          f"{d.planned_maintenance} planned maintenance; {d.stops_across_shift_change:,} stops "
          f"run over a shift change")  # fmt: skip
    print(f"  telemetry {d.telemetry}")
    print(f"  load      {d.load_s:g} s by binary COPY: {d.rows_per_s:,.0f} rows/s, "
          f"{d.machine_days_per_s:g} machine-days/s; then VACUUM ANALYZE {d.vacuum_analyze_s:g} s",
          flush=True)  # fmt: skip


def _print_path(label: str, p: PathFigures) -> None:
    gcs = f"{p.full_gcs} ({p.full_gc_ms:,.0f} ms)"
    clean = f"{p.p99_without_full_gc_ms:,.1f}" if p.p99_without_full_gc_ms is not None else "-"
    print(f"  {label:<24}{p.p50_ms:>9,.1f}{p.p99_ms:>9,.1f}{p.mean_ms:>9,.1f}{p.max_ms:>9,.1f}"
          f"{p.runs:>6}  {gcs:<14}{clean:>10}")  # fmt: skip


def _print_queries(found: list[QueryFigures], figures: dict[str, Any]) -> None:
    window = None
    for q in found:
        if q.window != window:
            window = q.window
            print(f"\n{q.window}: {q.start} to {q.end}; ms per request through one pooled "
                  "connection (read the slices, add up, build the response, encode "
                  "JSON):")  # fmt: skip
            print(f"  {'':<24}{'p50':>9}{'p99':>9}{'mean':>9}{'max':>9}{'runs':>6}  "
                  f"{'full GCs':<14}{'p99 w/o':>10}")  # fmt: skip
        _print_path(f"{q.name} rollup", q.rollup)
        if q.raw is not None:
            _print_path(f"{q.name} raw", q.raw)
            how = f"speed-up {q.speedup_p50:,.1f}x (p50)"
        else:
            how = "raw not timed: the raw rows of the whole days above and the running shift"
        same = "yes" if q.same_figures else f"NO (differ by {q.max_difference:.3g})"
        print(f"  {'':<24}{how}; {q.machine_slices:,} machine slices, {q.from_rollup:,} from "
              f"the rollup; same figures both ways: {same}")  # fmt: skip
    load = figures["load_average_1min"]
    print(f"\nmeasured with garbage collection {figures['gc']}; full GCs: full collections run "
          f"during the timed requests; p99 w/o: over the requests none ran in. This machine's "
          f"load average (1 min): {load['before']:.2f} before measuring, {load['after']:.2f} "
          "after")  # fmt: skip
