"""`moldlab bench pdm`: the maintenance scorer keeping up with a floor in real time.

The data: `--machines` presses of the demo floor simulated for the model's lookback plus the
passes measured (simulators.export, signals every 60 s), loaded into a fresh database with
COPY as ingest would have written them (machines, cycles with their jobs, states,
telemetry). Then the scorer (analytics.pdm.scorer, with the model asked for) makes a first
pass at the end of the lookback (a cold start: it reads the whole lookback of every machine,
reported apart) and `--passes` passes `--interval-s` of data time apart, as the service does
in real time, each reading only the new rows. Reported: the scorer's CPU per pass (process
time: reading, features, prediction, writing) as a median and maximum, and the share of one
core it takes at that interval (target < 20 %), beside the wall time of a pass (which also
waits for the database).
"""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pyarrow.parquet as pq
from psycopg import AsyncConnection

from moldlab.bench import BenchError, _met, announce, machine
from moldlab.progress import ProgressBar
from moldlab.servers import LocalPostgres, create_database, drop_database

TARGET_PCT = 20.0
START = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)  # a Monday
SIGNAL_INTERVAL_S = 60.0


@dataclass(frozen=True, slots=True)
class PdmFigures:
    command: str
    model: str
    machines: int
    scored_per_pass_median: float  # machines with a recent cycle (the rest stand still)
    components: int
    lookback_h: float
    interval_s: float
    passes: int
    cold_pass_cpu_s: float
    cold_pass_wall_s: float
    cpu_per_pass_s_median: float
    cpu_per_pass_s_max: float
    wall_per_pass_s_median: float
    core_pct: float
    target_pct: float
    met: bool


def run_pdm_bench(
    *,
    machines: int,
    passes: int,
    interval_s: float,
    model: str | None,
    models_dir: Path | None,
    seed: int,
    database_url: str | None,
    as_json: bool,
) -> int:
    """`moldlab bench pdm`: print the figures (text or JSON); 2 for bad options or no model."""
    from moldlab.dbargs import UsageError
    from moldlab.pdm_score_cli import load
    from moldlab.pdm_score_cli import models_dir as default_dir

    command = (
        f"moldlab bench pdm --machines {machines} --passes {passes} --interval-s {interval_s:g}"
        f" --seed {seed}" + (f" --model {model}" if model else "")
        + (" --database-url ..." if database_url else "") + (" --json" if as_json else "")
    )  # fmt: skip
    if machines < 1 or machines > 500 or passes < 1 or not interval_s > 0:
        print("moldlab bench pdm: 1-500 machines, at least 1 pass, a positive interval",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        pdm_model = load(model, default_dir(models_dir))
    except UsageError as exc:
        print(f"moldlab bench pdm: {exc}", file=sys.stderr)
        return 2
    host = machine()
    try:
        with tempfile.TemporaryDirectory(prefix="moldlab-bench-", dir="/tmp") as tmp:
            Path(tmp).chmod(0o755)  # PostgreSQL runs as `postgres` when we are root
            if not as_json:
                announce(command, host)
            with _database(database_url, Path(tmp)) as url:
                figures = _measure(
                    url, Path(tmp), pdm_model, machines, passes, interval_s, seed, command,
                    quiet=as_json,
                )  # fmt: skip
    except (BenchError, psycopg.Error, OSError) as exc:
        print(f"moldlab bench pdm: {exc}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps({**asdict(figures), "host": asdict(host)}, indent=2))
        return 0
    f = figures
    print(
        f"\nscoring {f.machines} machines x {f.components} components with model {f.model} "
        f"(lookback {f.lookback_h:g} h), a pass every {f.interval_s:g} s of data:\n"
        f"  cold start (reads the whole lookback): {f.cold_pass_cpu_s:.2f} s CPU, "
        f"{f.cold_pass_wall_s:.2f} s wall\n"
        f"  {f.passes} passes, {f.scored_per_pass_median:g} machines scored a pass (median; the"
        " others stood still)\n"
        f"  CPU per pass median {f.cpu_per_pass_s_median * 1000:.0f} ms, max "
        f"{f.cpu_per_pass_s_max * 1000:.0f} ms; wall median {f.wall_per_pass_s_median * 1000:.0f}"
        f" ms\n"
        f"  share of one core at {f.interval_s:g} s: {f.core_pct:.2f} % "
        f"(target < {f.target_pct:g} %: {_met(f.met)})"
    )
    return 0


@contextmanager
def _database(database_url: str | None, tmp: Path) -> Iterator[str]:
    from store import upgrade

    with ExitStack() as stack:
        if database_url is None:
            server_url = stack.enter_context(LocalPostgres(tmp / "postgres")).url
        else:
            server_url = database_url
        name = f"moldlab_bench_{uuid.uuid4().hex[:10]}"
        url = create_database(server_url, name)
        stack.callback(drop_database, server_url, name)
        upgrade(url)
        yield url


def _measure(
    url: str, tmp: Path, model: Any, machines: int, passes: int, interval_s: float, seed: int,
    command: str, *, quiet: bool,
) -> PdmFigures:  # fmt: skip
    from analytics.pdm.scorer import Scorer, ScorerSettings
    from simulators.export import export_floor
    from simulators.specs import demo_floor

    settings = ScorerSettings(interval_s=interval_s)
    hours = settings.lookback_h + (passes + 1) * interval_s / 3600 + 0.1
    specs = demo_floor(machines, site="bench")
    export = tmp / "export"
    bar = ProgressBar("simulating", "machine-days") if not quiet else None
    export_floor(specs, export, days=hours / 24, start=START, seed=seed,
                 signal_interval_s=SIGNAL_INTERVAL_S, progress=bar)  # fmt: skip
    if bar is not None:
        bar.finish()
    asyncio.run(_load(url, export, specs, quiet))
    start_at = START + timedelta(hours=settings.lookback_h)

    async def score() -> tuple[Any, list[Any]]:
        scorer = Scorer(model, settings)
        async with await AsyncConnection.connect(url, autocommit=True) as conn:
            cold = await scorer.score(conn, start_at)
            if cold.machines == 0:
                raise BenchError("the cold pass scored no machine: no cycles in the data")
            steady = []
            for k in range(1, passes + 1):
                steady.append(
                    await scorer.score(conn, start_at + timedelta(seconds=k * interval_s))
                )
        return cold, steady

    if not quiet:
        print(f"scoring: a cold pass, then {passes} passes", file=sys.stderr, flush=True)
    cold, steady = asyncio.run(score())
    cpu = [r.cpu_s for r in steady]
    median_cpu = statistics.median(cpu)
    core_pct = 100 * median_cpu / interval_s
    return PdmFigures(
        command=command, model=model.name, machines=machines,
        scored_per_pass_median=statistics.median(r.machines for r in steady),
        components=len(model.components), lookback_h=settings.lookback_h,
        interval_s=interval_s, passes=passes, cold_pass_cpu_s=cold.cpu_s,
        cold_pass_wall_s=cold.wall_s, cpu_per_pass_s_median=median_cpu,
        cpu_per_pass_s_max=max(cpu),
        wall_per_pass_s_median=statistics.median(r.wall_s for r in steady),
        core_pct=core_pct,
        target_pct=TARGET_PCT, met=core_pct < TARGET_PCT,
    )  # fmt: skip


async def _load(url: str, export: Path, specs: list[Any], quiet: bool) -> None:
    """The export's rows into the database, as ingest would have written them."""
    from contracts import CYCLE_PARAMETERS

    cycles = pq.read_table(export / "cycles.parquet").to_pylist()
    states = pq.read_table(export / "states.parquet").to_pylist()
    signals = pq.read_table(export / "signals.parquet")
    names = [n for n in signals.column_names if n not in ("machine_id", "ts")]
    bar = ProgressBar("loading", "rows") if not quiet else None
    total = len(cycles) + len(states) + signals.num_rows * len(names)
    done = 0
    async with await AsyncConnection.connect(url, autocommit=True) as conn:
        ids: dict[str, int] = {}
        for spec in specs:
            cur = await conn.execute(
                "INSERT INTO machine (machine_key, site, area, line) VALUES (%s, %s, %s, %s)"
                " RETURNING id",
                (spec.machine_id, spec.site, spec.area, spec.line),
            )
            row = await cur.fetchone()
            assert row is not None
            ids[spec.machine_id] = int(row[0])
        signal_ids: dict[str, int] = {}
        for name in names:
            cur = await conn.execute("INSERT INTO signal (name) VALUES (%s) RETURNING id", (name,))
            row = await cur.fetchone()
            assert row is not None
            signal_ids[name] = int(row[0])
        jobs: list[tuple[Any, ...]] = []
        mould_of: dict[str, str] = {}
        async with conn.cursor() as cur:
            async with cur.copy(
                "COPY cycle (time, machine_id, shot, quality, parts, cycle_time_s, parameters,"
                " source, seq, job_name, defect) FROM STDIN"
            ) as copy:
                for seq, c in enumerate(cycles):
                    mid = c["machine_id"]
                    if mould_of.get(mid) != c["mould"]:
                        mould_of[mid] = c["mould"]
                        jobs.append((c["ts"], ids[mid], f"job-{c['mould']}", c["mould"], seq))
                    params = {p: c[p] for p in CYCLE_PARAMETERS if p != "CycleTime"}
                    await copy.write_row((
                        c["ts"], ids[mid], c["shot"], c["quality"], c["parts"], c["CycleTime"],
                        json.dumps(params), f"bench-{mid}", seq, f"job-{c['mould']}",
                        c["defect"],
                    ))  # fmt: skip
            done += len(cycles)
            async with cur.copy(
                "COPY machine_job (time, machine_id, job_name, mould_id, job_status,"
                " active_cavities, nominal_parts, source, seq) FROM STDIN"
            ) as copy:
                for t, mid, job, mould, seq in jobs:
                    await copy.write_row(
                        (t, mid, job, mould, "job_in_production", 1, 0, "bench", seq)
                    )
            async with cur.copy(
                "COPY machine_state (time, machine_id, state, reason, source, seq) FROM STDIN"
            ) as copy:
                for seq, s in enumerate(states):
                    await copy.write_row(
                        (s["ts"], ids[s["machine_id"]], s["state"], s["reason"], "bench", seq)
                    )
            done += len(states)
            if bar is not None:
                bar(done, total)
            async with cur.copy(
                "COPY telemetry (time, machine_id, signal_id, value) FROM STDIN"
            ) as copy:
                batch = 20_000
                for lo in range(0, signals.num_rows, batch):
                    part = signals.slice(lo, batch).to_pydict()
                    machine_ids = [ids[m] for m in part["machine_id"]]
                    for name in names:
                        sid = signal_ids[name]
                        for t, mid, v in zip(part["ts"], machine_ids, part[name], strict=True):
                            if v is not None and not math.isnan(v):
                                await copy.write_row((t, mid, sid, v))
                    done += len(machine_ids) * len(names)
                    if bar is not None:
                        bar(done, total)
        await conn.execute("ANALYZE")
    if bar is not None:
        bar.finish()
