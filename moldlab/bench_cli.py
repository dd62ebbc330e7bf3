"""`moldlab bench sim|ingest|edge`: benchmarks that print figures and the command behind them."""

from __future__ import annotations

import argparse
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


def run(args: argparse.Namespace) -> int:
    if args.bench_command == "ingest":
        from moldlab.bench_ingest import run_ingest_bench

        return run_ingest_bench(
            seconds=args.seconds, rate=args.rate, latency_rate=args.latency_rate,
            machines=args.machines, signals=args.signals,
            batch_max_messages=args.batch_max_messages,
            write_connections=args.write_connections, database_url=args.database_url,
            mqtt_url=args.mqtt_url, quick=args.quick, as_json=args.json,
        )  # fmt: skip
    if args.bench_command == "edge":
        from moldlab.bench_edge import run_edge_bench

        return run_edge_bench(windows=args.windows, window_s=args.window_s, as_json=args.json)
    from moldlab.bench import run_sim_bench

    return run_sim_bench(
        seconds=args.seconds, machines=args.machines, machine_days=args.days,
        runs=args.runs, as_json=args.json,
    )  # fmt: skip
