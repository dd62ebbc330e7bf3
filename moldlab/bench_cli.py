"""`moldlab bench ...`: benchmarks printing their figures and the command that made them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> None:
    """Add `bench` and its benchmarks to the `moldlab` parser's subparsers."""
    bench = subparsers.add_parser(
        "bench",
        help="benchmarks that print figures (medians) with the command that made them",
        description="Measure moldlab against its speed targets on this machine and print the "
        "figures, the command and the machine (cores, CPU model). Figures are medians over "
        "several windows or runs, never the best one.",
    )
    bench_sub = bench.add_subparsers(dest="bench_command", required=True, metavar="BENCHMARK")
    bench_sim = bench_sub.add_parser(
        "sim",
        help="the simulator: CPU in real time and the speed of an export",
        description="(a) Start a local broker and run `moldlab sim --machines N` in real time "
        "as a child process; report the median CPU it uses (% of one core, target < 10 % "
        "for 20 machines) over several windows, and its peak RSS. (b) Export M machine-days "
        "of the `faults` scenario (6 machines, M/6 days each) --runs times; report the median "
        "time (target < 60 s for 30 machine-days) and whether the runs wrote identical files.",
    )
    bench_sim.add_argument("--json", action="store_true", help="print the figures as JSON")
    bench_sim.add_argument(
        "--seconds", type=float, default=60.0,
        help="real-time measurement window, after a warm-up (default 60 s)",
    )  # fmt: skip
    bench_sim.add_argument(
        "--machines", type=int, default=20, help="machines run in real time (default 20)"
    )
    bench_sim.add_argument(
        "--days", type=float, default=30.0, help="machine-days exported (default 30)"
    )
    bench_sim.add_argument(
        "--runs", type=int, default=3, help="export runs, the median reported (default 3)"
    )
    bench_ingest = bench_sub.add_parser(
        "ingest",
        help="ingest: committed readings/s, end-to-end latency, and the plain-COPY ceiling",
        description="Start PostgreSQL and mosquitto (max_inflight_messages 1000, as deployed) "
        "unless URLs are given, run `moldlab ingest` as a child process and publish telemetry "
        "batches to it from another (one per machine per interval, QoS 1). (1) Offer --rate "
        "readings/s and report the committed rate (target >= 100,000/s) and whether ingest "
        "keeps up; (2) offer --latency-rate and report latency from reading to commit (target "
        "p99 < 1 s at 50,000/s); (3) time one binary COPY of as many rows into the same table: "
        "the ceiling. Each phase: a warm-up, then a window of --seconds.",
    )
    bench_ingest.add_argument("--json", action="store_true", help="print the figures as JSON")
    bench_ingest.add_argument(
        "--seconds", type=float, default=30.0,
        help="measurement window per phase, after a warm-up (default 30, at least 30)",
    )  # fmt: skip
    bench_ingest.add_argument(
        "--rate", type=float, default=130_000.0,
        help="readings/s offered in the saturation phase (default 130000: more than the "
        "100,000/s target, so that what is committed is what ingest can do)",
    )  # fmt: skip
    bench_ingest.add_argument(
        "--latency-rate", type=float, default=50_000.0,
        help="readings/s offered while latency is measured (default 50000)",
    )  # fmt: skip
    bench_ingest.add_argument(
        "--machines", type=int, default=50, help="machines publishing (default 50)"
    )
    bench_ingest.add_argument(
        "--signals", type=int, default=200, help="readings per message (default 200)"
    )
    bench_ingest.add_argument(
        "--batch-max-messages", type=int, default=500,
        help="ingest's MOLDLAB_INGEST_BATCH_MAX_MESSAGES (default 500, as ingest's own default)",
    )  # fmt: skip
    bench_ingest.add_argument(
        "--write-connections", type=int, default=2,
        help="ingest's MOLDLAB_INGEST_WRITE_CONNECTIONS: batches written at once (default 2, "
        "as ingest's own default; 1 to compare)",
    )  # fmt: skip
    bench_ingest.add_argument(
        "--database-url", help="a PostgreSQL server to use (a database is created and dropped)"
    )
    bench_ingest.add_argument("--mqtt-url", help="a broker to use instead of a local mosquitto")
    bench_ingest.add_argument(
        "--quick", action="store_true", help="allow windows under 30 s (smoke tests)"
    )
    scaleout = bench_sub.add_parser(
        "scaleout",
        help="1, 2 and 4 ingest workers in one shared group: committed readings/s side by side",
        description="Start PostgreSQL and mosquitto (unless URLs are given) and, for each count "
        "of --workers, a fresh shared group of that many `moldlab ingest` processes under the "
        "same saturating load; after a warm-up, report committed readings/s over a window and "
        "the workers' CPU, side by side. Everything runs on this machine's cores.",
    )
    scaleout.add_argument(
        "--workers", default="1,2,4", help="worker counts, comma separated (default 1,2,4)"
    )
    scaleout.add_argument("--seconds", type=float, default=30.0, help="window (default 30)")
    scaleout.add_argument(
        "--rate", type=float, default=130_000.0, help="readings/s offered (default 130000)"
    )
    scaleout.add_argument("--machines", type=int, default=50, help="machines (default 50)")
    scaleout.add_argument("--signals", type=int, default=200, help="readings a message (200)")
    scaleout.add_argument("--database-url", help="a PostgreSQL server to use")
    scaleout.add_argument("--mqtt-url", help="a broker to use instead of a local mosquitto")
    bench_edge = bench_sub.add_parser(
        "edge",
        help="the edge agent: CPU and memory polling 10 machines at 1 Hz, against a bare poller",
        description="Start mosquitto and 10 simulated Modbus TCP machines (one child process), "
        "run `moldlab edge --config` polling them every second (every register of the packaged "
        "map, 68 per machine; telemetry every second; SQLite outbox and metrics endpoint "
        "configured as deployed) and report its median CPU (% of one core, target < 10 %), its "
        "peak RSS (target < 60 MB) and the messages/s the broker delivers; then the same "
        "figures for a bare pymodbus client making the same reads (no MQTT, no outbox).",
    )
    bench_edge.add_argument("--json", action="store_true", help="print the figures as JSON")
    bench_edge.add_argument(
        "--windows", type=int, default=6, help="measurement windows per process (default 6)"
    )
    bench_edge.add_argument(
        "--window-s", type=float, default=10.0, help="length of a window (default 10 s)"
    )
    _add_analytics(bench_sub)
    _add_pdm(bench_sub)
    _add_api(bench_sub)


def _add_api(bench_sub: Any) -> None:
    bench = bench_sub.add_parser(
        "api",
        help="the API with 1,000 kiosks on the live socket and REST under load",
        description="Load --machines presses of the demo plant over the last --days days into "
        "a fresh database, start `moldlab api` as its own process (the kiosk's picture every "
        "second), then measure two windows side by side: REST clients at a steady --rest-rate "
        "only (baseline), and the same with --clients WebSocket clients on "
        "/api/v1/kiosk/live. Report REST p50/p99, "
        "the age of each picture when a client got it (p50/p99), the API's CPU and its memory "
        "per connection.",
    )
    bench.add_argument("--json", action="store_true", help="print the figures as JSON")
    bench.add_argument("--clients", type=int, default=1000, help="WebSocket clients (1000)")
    bench.add_argument(
        "--rest-clients", type=int, default=16, help="concurrent REST clients (default 16)"
    )
    bench.add_argument(
        "--rest-rate", type=float, default=200.0,
        help="REST requests a second, all clients together (default 200)",
    )  # fmt: skip
    bench.add_argument("--window-s", type=float, default=30.0, help="each window (default 30)")
    bench.add_argument("--machines", type=int, default=20, help="presses (default 20)")
    bench.add_argument("--days", type=float, default=2.0, help="days of data (default 2)")
    bench.add_argument("--seed", type=int, default=1, help="random seed of the data (default 1)")
    bench.add_argument(
        "--database-url", help="a PostgreSQL server to use (a database is created and dropped)"
    )


def _add_pdm(bench_sub: Any) -> None:
    bench = bench_sub.add_parser(
        "pdm",
        help="the maintenance scorer: CPU per pass for 50 machines, share of one core",
        description="Simulate --machines presses of the demo floor for the model's lookback "
        "plus the passes measured, load them into a fresh database (COPY), then run the scorer "
        "(moldlab pdm score's engine) with the model: a cold pass at the end of the lookback, "
        "then --passes passes --interval-s of data apart, each reading only the new rows. "
        "Report its CPU per pass and the share of one core at that interval (target < 20 %).",
    )
    bench.add_argument("--json", action="store_true", help="print the figures as JSON")
    bench.add_argument("--machines", type=int, default=50, help="presses scored (default 50)")
    bench.add_argument("--passes", type=int, default=20, help="passes timed (default 20)")
    bench.add_argument(
        "--interval-s", type=float, default=60.0, help="seconds between passes (default 60)"
    )
    bench.add_argument("--seed", type=int, default=1, help="the simulation's seed (default 1)")
    bench.add_argument(
        "--model", help="a model name or directory (default: the newest in the models directory)"
    )
    bench.add_argument(
        "--models-dir", type=Path,
        help="where models are (default $MOLDLAB_DATA_DIR/models, else ./.moldlab/models)",
    )  # fmt: skip
    bench.add_argument(
        "--database-url", help="a PostgreSQL server to use (a database is created and dropped)"
    )


def _add_analytics(bench_sub: Any) -> None:
    bench = bench_sub.add_parser(
        "analytics",
        help="OEE per shift, loss tree and Pareto over 30 days: from the rollup and from raw rows",
        description="Bulk-load (binary COPY) --machines presses of the demo plant file's site "
        "(its time zone, shifts, breaks and moulds) over --days days ending at --end, drawn by a "
        "seeded random source at the demo's rates (cycles, stops and faults with reasons, mould "
        "changes with their jobs, planned maintenance, scrap and test samples; no telemetry: "
        "no figure here reads it), build the rollup (analytics.rollup.refresh), then time OEE "
        "per shift for the site, the loss tree and the downtime Pareto over the last "
        "--window-days whole days, each from the rollup and from raw rows through one pooled "
        "connection, and check both give the same figures (to 1e-9). Target: p50 and p99 "
        "< 50 ms from the rollup. Also times a window ending now, whose running shift is "
        "always computed from raw rows.",
    )
    bench.add_argument("--json", action="store_true", help="print the figures as JSON")
    bench.add_argument("--machines", type=int, default=10, help="presses (default 10)")
    bench.add_argument("--days", type=float, default=90.0, help="days of data (default 90)")
    bench.add_argument(
        "--window-days", type=int, default=30,
        help="whole production days the queries cover, ending with yesterday's (default 30)",
    )  # fmt: skip
    bench.add_argument(
        "--end", default="2026-11-27T10:45:00+01:00",
        help="where the data ends and the queries' now: an ISO time with a zone, or 'now' "
        "(default 2026-11-27T10:45:00+01:00, a fixed instant so that runs repeat)",
    )  # fmt: skip
    bench.add_argument("--seed", type=int, default=1, help="random seed of the data (default 1)")
    bench.add_argument(
        "--repeat", type=int, default=200,
        help="timed requests of each query from the rollup (default 200: a p99 of fewer than "
        "100 is their maximum)",
    )  # fmt: skip
    bench.add_argument(
        "--raw-repeat", type=int, default=30,
        help="timed requests of each query from raw rows (default 30: each takes seconds)",
    )  # fmt: skip
    bench.add_argument(
        "--gc-freeze", action=argparse.BooleanOptionalAction, default=True,
        help="call gc.freeze() before measuring, as the API does once started (default): "
        "full garbage collections then skip everything allocated before; --no-gc-freeze "
        "measures without",
    )  # fmt: skip
    bench.add_argument(
        "--micro-stop-s", type=float, default=300.0,
        help="stops shorter than this are micro-stops (default 300, the API's default)",
    )  # fmt: skip
    bench.add_argument(
        "--database-url", help="a PostgreSQL server to use (a database is created and dropped)"
    )


def run(args: argparse.Namespace) -> int:
    if args.bench_command == "scaleout":
        from moldlab.bench_scaleout import run_scaleout_bench

        try:
            counts = [int(n) for n in args.workers.split(",")]
        except ValueError:
            print(
                f"moldlab bench scaleout: --workers {args.workers!r} is not 1,2,4", file=sys.stderr
            )
            return 2
        return run_scaleout_bench(
            workers=counts, seconds=args.seconds, rate=args.rate, machines=args.machines,
            signals=args.signals, database_url=args.database_url, mqtt_url=args.mqtt_url,
        )  # fmt: skip
    if args.bench_command == "ingest":
        from moldlab.bench_ingest import run_ingest_bench

        return run_ingest_bench(
            seconds=args.seconds, rate=args.rate, latency_rate=args.latency_rate,
            machines=args.machines, signals=args.signals,
            batch_max_messages=args.batch_max_messages,
            write_connections=args.write_connections, database_url=args.database_url,
            mqtt_url=args.mqtt_url, quick=args.quick, as_json=args.json,
        )  # fmt: skip
    if args.bench_command == "analytics":
        from moldlab.bench_analytics import run_analytics_bench

        return run_analytics_bench(
            machines=args.machines, days=args.days, window_days=args.window_days,
            end=args.end, seed=args.seed, repeat=args.repeat, raw_repeat=args.raw_repeat,
            micro_stop_s=args.micro_stop_s, gc_freeze=args.gc_freeze,
            database_url=args.database_url, as_json=args.json,
        )  # fmt: skip
    if args.bench_command == "pdm":
        from moldlab.bench_pdm import run_pdm_bench

        return run_pdm_bench(
            machines=args.machines, passes=args.passes, interval_s=args.interval_s,
            model=args.model, models_dir=args.models_dir, seed=args.seed,
            database_url=args.database_url, as_json=args.json,
        )  # fmt: skip
    if args.bench_command == "api":
        from moldlab.bench_api import run_api_bench

        return run_api_bench(
            clients=args.clients, rest_clients=args.rest_clients, rest_rate=args.rest_rate,
            window_s=args.window_s,
            machines=args.machines, days=args.days, seed=args.seed,
            database_url=args.database_url, as_json=args.json,
        )  # fmt: skip
    if args.bench_command == "edge":
        from moldlab.bench_edge import run_edge_bench

        return run_edge_bench(windows=args.windows, window_s=args.window_s, as_json=args.json)
    from moldlab.bench import run_sim_bench

    return run_sim_bench(
        seconds=args.seconds, machines=args.machines, machine_days=args.days,
        runs=args.runs, as_json=args.json,
    )  # fmt: skip
