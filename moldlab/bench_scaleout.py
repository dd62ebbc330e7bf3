"""`moldlab bench scaleout`: 1, 2 and 4 ingest workers in one shared group, side by side.

One broker and one database, as `moldlab bench ingest` starts them; for each worker count a
fresh group of `moldlab ingest` processes (MQTT v5 shared subscription, each worker its own
session), the same saturating load, a warm-up, then a window: committed readings/s and the
workers' CPU. The database, the broker and the load generator run on the same cores.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg

from moldlab.bench import BenchError, _child_env, _stop, announce, cpu_seconds, machine
from moldlab.bench_ingest import _SITE, Load, _committed, _forget_session, _Generator, _servers
from moldlab.servers.process import log_tail

WARMUP_S = 5.0


@contextlib.contextmanager
def _group(database_url: str, mqtt_url: str, workers: int, tmp: Path) -> Iterator[list[int]]:
    """`workers` ingest processes in one new shared group, all subscribed; their pids."""
    group = f"bench{uuid.uuid4().hex[:6]}"
    env = {k: v for k, v in _child_env().items() if not k.startswith("MOLDLAB_")}
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []
    try:
        for n in range(1, workers + 1):
            log_path = tmp / f"{group}-{n}.log"
            settings = {
                "MOLDLAB_DATABASE_URL": database_url, "MOLDLAB_MQTT_URL": mqtt_url,
                "MOLDLAB_INGEST_CLIENT_ID": group, "MOLDLAB_INGEST_SITE": _SITE,
                "MOLDLAB_INGEST_SHARED_GROUP": group, "MOLDLAB_INGEST_WORKER": str(n),
                "MOLDLAB_INGEST_METRICS_PORT": "0",
            }  # fmt: skip
            with log_path.open("wb") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "moldlab", "ingest"], stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT, env=env | settings,
                    start_new_session=True,
                )  # fmt: skip
            procs.append((proc, log_path))
        deadline = time.monotonic() + 30.0
        for proc, log_path in procs:
            while b"subscribed to" not in log_path.read_bytes():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise BenchError(f"moldlab ingest did not subscribe:\n{log_tail(log_path)}")
                time.sleep(0.1)
        yield [proc.pid for proc, _ in procs]
    finally:
        for proc, _ in procs:
            _stop(proc)
        for n in range(1, len(procs) + 1):
            _forget_session(mqtt_url, f"{group}-{n}")


def run_scaleout_bench(
    *,
    workers: list[int],
    seconds: float,
    rate: float,
    machines: int,
    signals: int,
    database_url: str | None,
    mqtt_url: str | None,
) -> int:
    """Print committed readings/s per worker count, side by side; 2 for bad options."""
    command = "moldlab bench scaleout " + shlex.join(
        ["--workers", ",".join(map(str, workers)), "--seconds", f"{seconds:g}",
         "--rate", f"{rate:g}", "--machines", str(machines), "--signals", str(signals)]
    )  # fmt: skip
    if not workers or min(workers) < 1 or seconds < 5:
        print(f"{command}: --workers must be counts of 1 or more, --seconds at least 5",
              file=sys.stderr)  # fmt: skip
        return 2
    announce(command, machine())
    load = Load(machines, signals, rate)
    rows = []
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        os.chmod(tmp, 0o755)  # the postgres user enters it when started as root
        with _servers(database_url, mqtt_url, tmp) as (url, broker_url, servers, _):
            print(f"database: {servers.database}; broker: {servers.broker}", flush=True)
            print(
                f"offered: {rate:,.0f} readings/s ({machines} machines x {signals} readings "
                f"per message); window {seconds:g} s after {WARMUP_S:g} s",
                flush=True,
            )
            for count in workers:
                with _group(url, broker_url, count, tmp) as pids, _Generator(broker_url, load):
                    time.sleep(WARMUP_S)
                    with psycopg.connect(url, autocommit=True) as conn:
                        before, cpu_before = _committed(conn), sum(map(cpu_seconds, pids))
                        began = time.monotonic()
                        while (left := began + seconds - time.monotonic()) > 0:
                            time.sleep(min(5.0, left))
                            print(".", end="", flush=True)
                        after, cpu_after = _committed(conn), sum(map(cpu_seconds, pids))
                        took = time.monotonic() - began
                rows.append((count, (after - before) * signals / took,
                             100 * (cpu_after - cpu_before) / took))  # fmt: skip
                print(f" {count} workers: {rows[-1][1]:,.0f} readings/s", flush=True)
    base = rows[0][1]
    print("workers  committed readings/s  vs first  workers' CPU (% of one core, all)")
    for count, per_s, cpu in rows:
        print(f"{count:>7}  {per_s:>20,.0f}  {per_s / base:>7.2f}x  {cpu:>10.0f}")
    return 0
