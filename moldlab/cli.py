"""The `moldlab` command: one subcommand per deployable, plus `demo` and `db upgrade`."""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from moldlab import plant_cli
from moldlab.runner import run_until_signalled, setup_logging

if TYPE_CHECKING:
    from simulators.scenario import Scenario
    from simulators.specs import MachineSpec

# The default start of `sim --export` (simulators.export.DEFAULT_START; not imported here so
# that `moldlab --help` does not need pyarrow).
DEFAULT_EXPORT_START = datetime(2026, 1, 5, tzinfo=UTC)

_ENV_HELP = "Settings come from MOLDLAB_* environment variables; options given here win."


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="moldlab",
        description="moldlab: telemetry for a living-lab floor of injection-moulding machines.",
        epilog="Start with `moldlab demo`: everything on this machine, no configuration.",
    )
    parser.add_argument(
        "--log-level", default=os.environ.get("MOLDLAB_LOG_LEVEL", "INFO"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="default INFO",
    )  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="run the whole stack on this machine (PostgreSQL, broker, 3 machines, edge, "
        "ingest, API)",
        description="Start a PostgreSQL server (the system's, or one installed from PyPI), an "
        "MQTT broker (mosquitto when installed, otherwise an in-process Python broker), "
        "simulated machines, ingest and the API, and print the address to open. The machines "
        "of line-1 are retrofitted: Modbus TCP servers read by a `moldlab edge` gateway; the "
        "others publish over MQTT themselves. Ctrl-C or SIGTERM stops everything; data is "
        "kept in the data directory across restarts.",
    )
    demo.add_argument(
        "--data-dir", type=Path, default=Path(os.environ.get("MOLDLAB_DATA_DIR", ".moldlab")),
        help="where the database, the broker and the edge gateway's outbox keep their data "
        "(default ./.moldlab). As root, when the `postgres` user cannot enter it (a clone "
        "under /root), the database goes to /var/lib/moldlab/demo-ID instead, recorded in "
        "DATA_DIR/postgres.location so that every start finds it again",
    )  # fmt: skip
    demo.add_argument("--port", type=int, default=8000, help="API port (default 8000)")
    demo.add_argument(
        "--machines", type=int,
        help="simulated machines of the built-in floor (default: the 3 of the packaged demo "
        "scenario, one of them with a worn check ring)",
    )  # fmt: skip

    sim = sub.add_parser(
        "sim",
        help="simulated injection-moulding machines (MQTT-native or Modbus TCP servers)",
        description="Run N simulated MQTT-native machines, each its own MQTT client publishing "
        "telemetry batches, cycle records and state changes; or, with --modbus-port, serve "
        "them as Modbus TCP servers for the edge agent to poll; or, with --export DIR --days N, "
        "run them as fast as the CPU allows and write N days of cycles, signals, states and "
        "ground truth to Parquet files for training. " + _ENV_HELP,
    )
    sim.add_argument(
        "--machines", type=int, default=3,
        help="how many machines of the built-in demo floor (default 3; ignored with --scenario)",
    )  # fmt: skip
    sim.add_argument(
        "--scenario", metavar="FILE",
        help="a scenario YAML file (machines, moulds, shifts, faults), or the name of a "
        "packaged one: demo, faults (see simulators/scenarios/)",
    )  # fmt: skip
    sim.add_argument(
        "--line", action="append", metavar="LINE",
        help="run only the machines of this line (repeatable; default: all of them), e.g. "
        "one line over Modbus TCP for an edge gateway and the others over MQTT, in two "
        "processes; the chosen machines keep the order of the floor (with --modbus-port: "
        "BASE, BASE+1, ...)",
    )  # fmt: skip
    sim.add_argument("--mqtt-url", help="broker, e.g. mqtt://127.0.0.1:1883 (MOLDLAB_MQTT_URL)")
    sim.add_argument(
        "--site", default="demo",
        help="site segment of the topics (default demo; a scenario names its own)",
    )  # fmt: skip
    sim.add_argument("--seed", type=int, help="random seed (default: the scenario's seed, else 1)")
    sim.add_argument(
        "--speed", type=float, default=1.0, help="simulated seconds per real second (default 1)"
    )
    sim.add_argument(
        "--interval-s",
        type=float,
        default=1.0,
        help="telemetry sampling interval in simulated time (default 1 s; sped up, the "
        "samples of one tick travel in one batch)",
    )
    sim.add_argument(
        "--start", metavar="TIME",
        help="simulated start: ISO 8601 with its zone, e.g. 2026-01-05T00:00+01:00, or a time "
        "before now like --start=-7d. In real time (default: now) a start in the past is a "
        "backfill: it runs at --speed until it reaches the wall clock, then keeps pace. With "
        "--export the default is the scenario's start, else "
        f"{DEFAULT_EXPORT_START:%Y-%m-%dT%H:%M}Z, so that reruns repeat",
    )  # fmt: skip
    sim.add_argument(
        "--modbus-port", type=int, metavar="BASE",
        help="serve the machines over Modbus TCP on ports BASE, BASE+1, ... instead of "
        "publishing over MQTT (for the edge agent); register map: contracts/registers.yaml",
    )  # fmt: skip
    sim.add_argument(
        "--modbus-host", default="127.0.0.1", help="address the Modbus servers listen on"
    )
    export = sim.add_argument_group(
        "export to Parquet",
        "Writes cycles, signals, states, health (ground truth) and failures .parquet files "
        "and a manifest.json (written last) into DIR. The same options and seed give the same "
        "files, byte for byte.",
    )
    export.add_argument(
        "--export", type=Path, metavar="DIR",
        help="run as fast as the CPU allows and write the files into DIR (created if missing; "
        "refused if it is not empty, unless --force)",
    )  # fmt: skip
    export.add_argument(
        "--days", type=float, help="simulated days per machine (required with --export)"
    )
    export.add_argument(
        "--signal-interval-s", type=float, default=10.0,
        help="signal and ground-truth sampling interval (default 10 s)",
    )  # fmt: skip
    export.add_argument(
        "--force", action="store_true",
        help="write into a non-empty DIR, replacing the export files in it (others are kept)",
    )  # fmt: skip

    bench = sub.add_parser(
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

    edge = sub.add_parser(
        "edge",
        help="the edge agent: poll Modbus TCP machines and forward to the plant broker",
        description="Run the edge gateway agent described by a YAML file (site, machines with "
        "their Modbus TCP connection or MQTT-native source, the plant broker, the outbox, the "
        "metrics endpoint). Every message is stored in the outbox (SQLite) before it is sent "
        "and kept there until the broker has it. See deploy/edge/gateway.example.yaml.",
    )
    edge.add_argument("--config", type=Path, required=True, help="the gateway's YAML file")
    edge.add_argument(
        "--check",
        action="store_true",
        help="check the config (and the register maps and TLS files it names), then exit",
    )

    ingest = sub.add_parser(
        "ingest",
        help="subscribe to the broker and write to PostgreSQL/TimescaleDB",
        description="Consume every moldlab message with a persistent QoS 1 session and write "
        "it in batches; a message is acknowledged only after its rows are committed. " + _ENV_HELP,
        epilog="Scale-out: run several workers with the same --shared-group and a --worker name "
        "each (an MQTT v5 broker: mosquitto 2 or EMQX). Each has a persistent session; "
        "mosquitto deals a worker that is down its turn of the messages all the same and "
        "holds them until it restarts (run workers under systemd with Restart=always) while "
        "the others write theirs: nothing is lost or written twice. To remove a worker for "
        "good, stop it and run it once with --leave. Workers on one host need a "
        "--metrics-port each. Refused: a message that breaks contracts/schema.json, lies more "
        "than 5 minutes ahead or a year back, or would add a machine or signal past the "
        "plant's limits (MOLDLAB_INGEST_MAX_MACHINES 1000, ..._MAX_MACHINES_PER_SITE 500, "
        "..._MAX_SIGNALS 2000, ..._MAX_SIGNALS_PER_MACHINE 256); it is kept in "
        "rejected_message with its reason for MOLDLAB_INGEST_REJECTED_KEEP_DAYS (30) and the "
        "rest of its batch is written.",
    )
    ingest.add_argument("--database-url", help="postgresql://... (MOLDLAB_DATABASE_URL)")
    ingest.add_argument("--mqtt-url", help="mqtt://host:port (MOLDLAB_MQTT_URL)")
    ingest.add_argument(
        "--shared-group",
        help="share the load with the other workers of this group through an MQTT v5 shared "
        "subscription, $share/GROUP/moldlab/v1/SITE/+/+/+/+ (MOLDLAB_INGEST_SHARED_GROUP; "
        "default: none, one worker takes every message)",
    )
    ingest.add_argument(
        "--worker",
        help="this worker's name in its shared group: unique in the group and the same at "
        "every restart, for its session is MOLDLAB_INGEST_CLIENT_ID-WORKER "
        "(MOLDLAB_INGEST_WORKER; required with --shared-group)",
    )
    ingest.add_argument(
        "--metrics-port",
        type=int,
        help="serve Prometheus metrics at http://MOLDLAB_INGEST_METRICS_HOST:PORT/metrics "
        "(MOLDLAB_INGEST_METRICS_PORT, default 9109 on 127.0.0.1; 0: none)",
    )
    ingest.add_argument(
        "--leave",
        action="store_true",
        help="retire this worker (stop it first): unsubscribe, write what its session still "
        "holds, end the session, exit. Without it, a stopped worker's session goes on "
        "receiving its share of the messages until it comes back",
    )

    api = sub.add_parser(
        "api",
        help="serve the REST API, live WebSocket and visitor dashboard",
        description="Serve /api/v1 (OpenAPI at /docs) and the visitor page at /. " + _ENV_HELP,
        epilog="Bounded whatever the database holds: GET /api/v1/machines answers in pages of "
        "at most 200 machines, each with at most MOLDLAB_API_MAX_SIGNALS_PER_MACHINE signals "
        "(256); the live socket follows MOLDLAB_LIVE_MAX_MACHINES machines (200); a query "
        "that takes longer than MOLDLAB_API_STATEMENT_TIMEOUT_S (5) answers 503.",
    )
    api.add_argument("--database-url", help="postgresql://... (MOLDLAB_DATABASE_URL)")
    api.add_argument("--host", help="listen address (MOLDLAB_API_HOST, default 127.0.0.1)")
    api.add_argument("--port", type=int, help="listen port (MOLDLAB_API_PORT, default 8000)")

    db = sub.add_parser("db", help="database schema", description="Manage the database schema.")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="DB_COMMAND")
    upgrade = db_sub.add_parser(
        "upgrade",
        help="migrate the database to the newest schema",
        description="Run the versioned migrations. Uses TimescaleDB (hypertables, compression, "
        "retention, continuous aggregates) when the server has the extension, plain "
        "PostgreSQL otherwise. " + _ENV_HELP,
    )
    upgrade.add_argument("--database-url", help="postgresql://... (MOLDLAB_DATABASE_URL)")
    plant_cli.add_parser(sub)
    return parser


def _overrides(args: argparse.Namespace, **names: str) -> dict[str, object]:
    """Settings fields given on the command line (option name -> field name)."""
    return {
        field: getattr(args, option)
        for option, field in names.items()
        if getattr(args, option, None) is not None
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(args.log_level)
    try:
        return _dispatch(args)
    except ValidationError as exc:
        missing = [".".join(map(str, e["loc"])) for e in exc.errors()]
        print(
            f"moldlab {args.command}: invalid settings for {', '.join(missing)}:", file=sys.stderr
        )
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else ""
            print(f"  MOLDLAB_{field.upper()}: {err['msg']}", file=sys.stderr)
        return 2


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from moldlab.demo import run_demo

        return run_demo(args.data_dir, port=args.port, machines=args.machines)
    if args.command == "sim":
        return _sim(args)
    if args.command == "bench" and args.bench_command == "ingest":
        from moldlab.bench_ingest import run_ingest_bench

        return run_ingest_bench(
            seconds=args.seconds, rate=args.rate, latency_rate=args.latency_rate,
            machines=args.machines, signals=args.signals,
            batch_max_messages=args.batch_max_messages,
            write_connections=args.write_connections, database_url=args.database_url,
            mqtt_url=args.mqtt_url, quick=args.quick, as_json=args.json,
        )  # fmt: skip
    if args.command == "bench" and args.bench_command == "edge":
        from moldlab.bench_edge import run_edge_bench

        return run_edge_bench(windows=args.windows, window_s=args.window_s, as_json=args.json)
    if args.command == "bench":
        from moldlab.bench import run_sim_bench

        return run_sim_bench(
            seconds=args.seconds, machines=args.machines, machine_days=args.days,
            runs=args.runs, as_json=args.json,
        )  # fmt: skip
    if args.command == "edge":
        return _edge(args)
    if args.command == "ingest":
        from ingest import IngestError, IngestSettings, run_ingest

        ingest_settings = IngestSettings(
            **_overrides(
                args, database_url="database_url", mqtt_url="mqtt_url",
                shared_group="ingest_shared_group", worker="ingest_worker",
                metrics_port="ingest_metrics_port",
            )  # type: ignore[arg-type]  # pydantic-settings fields are keyword-typed
        )  # fmt: skip
        try:
            return run_until_signalled(
                lambda stop: run_ingest(ingest_settings, stop, leave=args.leave)
            )
        except IngestError as exc:
            print(f"moldlab ingest: {exc}", file=sys.stderr)
            return 1
    if args.command == "api":
        return _api(args)
    if args.command == "plant":
        return plant_cli.run(args)
    if args.command == "db":
        from ingest.settings import IngestSettings
        from store import upgrade

        db_settings = IngestSettings(**_overrides(args, database_url="database_url"))  # type: ignore[arg-type]  # as above
        backend = upgrade(db_settings.database_url)
        print(f"database is at the newest schema (storage: {backend})")
        return 0
    raise AssertionError(args.command)


def _sim(args: argparse.Namespace) -> int:
    from contracts import BrokerUrl
    from simulators import demo_floor, run_simulation
    from simulators.scenario import ScenarioError, load_scenario

    if args.export is None and args.days is not None:
        print("moldlab sim: --days goes with --export DIR", file=sys.stderr)
        return 2
    numbers = (args.speed, args.interval_s, args.signal_interval_s)
    if (
        not all(map(math.isfinite, numbers))
        or args.speed <= 0
        or args.machines < 1
        or args.interval_s <= 0
    ):
        print("moldlab sim: --speed, --machines and --interval-s must be positive", file=sys.stderr)
        return 2
    if args.scenario:
        try:
            scenario = load_scenario(args.scenario)
        except ScenarioError as exc:
            print(f"moldlab sim: {exc}", file=sys.stderr)
            return 2
        specs = scenario.machines
    else:
        scenario = None
        specs = demo_floor(args.machines, site=args.site)
    if args.line:
        lines = sorted({spec.line for spec in specs})
        specs = [spec for spec in specs if spec.line in args.line]
        if not specs:
            chosen, known = ", ".join(args.line), ", ".join(lines)
            print(f"moldlab sim: no machine on {chosen}; lines: {known}", file=sys.stderr)
            return 2
    if args.export is not None:
        return _sim_export(args, specs, scenario)
    if args.seed is None:
        args.seed = scenario.seed if scenario and scenario.seed is not None else 1
    start = None
    if args.start is not None:
        from simulators.clock import parse_start

        try:
            start = parse_start(args.start, datetime.now(UTC))
        except ValueError as exc:
            print(f"moldlab sim: --start {exc}", file=sys.stderr)
            return 2
    if args.modbus_port is not None:
        from simulators.floor import ModbusFloor
        from simulators.modbus import load_register_map

        floor = ModbusFloor(
            specs, load_register_map(), host=args.modbus_host, base_port=args.modbus_port,
            seed=args.seed, speed=args.speed, start=start,
        )  # fmt: skip

        async def _serve(stop: asyncio.Event) -> None:
            async with floor:
                await floor.run(stop)

        return run_until_signalled(_serve)
    url = args.mqtt_url or os.environ.get("MOLDLAB_MQTT_URL", "mqtt://127.0.0.1:1883")
    broker = BrokerUrl.parse(url)

    async def _run(stop: asyncio.Event) -> None:
        await run_simulation(
            specs, broker, stop, seed=args.seed, speed=args.speed, start=start,
            telemetry_interval_s=args.interval_s,
        )  # fmt: skip

    return run_until_signalled(_run)


def _sim_export(
    args: argparse.Namespace, specs: list[MachineSpec], scenario: Scenario | None
) -> int:
    from moldlab.progress import ProgressBar
    from simulators.clock import parse_start
    from simulators.export import ExportError, export_floor

    def fail(message: str) -> int:
        print(f"moldlab sim: {message}", file=sys.stderr)
        return 2

    if args.days is None:
        return fail("--export needs --days N (simulated days per machine)")
    if args.modbus_port is not None or args.mqtt_url is not None:
        return fail("--export writes files; it does not take --modbus-port or --mqtt-url")
    if args.start is not None:
        try:
            start = parse_start(args.start, datetime.now(UTC))
        except ValueError as exc:
            return fail(f"--start {exc}")
    else:
        start = (scenario.start if scenario else None) or DEFAULT_EXPORT_START
    seed = args.seed if args.seed is not None else (scenario.seed if scenario else None)
    seed = 1 if seed is None else seed
    if args.scenario:
        source = f"scenario {args.scenario}"
    else:
        source = f"demo floor of {args.machines} machines, site {args.site}"
    bar = ProgressBar("export", "machine-days")
    try:
        summary = export_floor(
            specs, args.export, days=args.days, start=start, seed=seed,
            signal_interval_s=args.signal_interval_s, source=source, force=args.force,
            progress=bar,
        )  # fmt: skip
    except ExportError as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        print(
            f"\nmoldlab sim: interrupted; {args.export} holds no finished export", file=sys.stderr
        )
        return 130
    bar.finish()
    rows = ", ".join(f"{name} {count:,}" for name, count in summary.rows.items())
    print(
        f"wrote {summary.machine_days:g} machine-days ({len(specs)} machines x {args.days:g} "
        f"days from {start.isoformat()}, seed {seed}) to {summary.out_dir}: rows {rows}"
    )
    return 0


def _edge(args: argparse.Namespace) -> int:
    from edge import EdgeError, load_config, run_edge

    try:
        config = load_config(args.config)
    except EdgeError as exc:
        print(f"moldlab edge: {exc}", file=sys.stderr)
        return 2
    if args.check:
        print(f"{args.config}: gateway {config.gateway_id}, {len(config.machines)} machines: ok")
        return 0
    try:
        return run_until_signalled(lambda stop: run_edge(config, stop))
    except EdgeError as exc:
        print(f"moldlab edge: {exc}", file=sys.stderr)
        return 1


def _api(args: argparse.Namespace) -> int:
    import uvicorn

    from dashboard_api import ApiSettings, create_app

    settings = ApiSettings(
        **_overrides(args, database_url="database_url", host="api_host", port="api_port")  # type: ignore[arg-type]  # as above
    )
    config = uvicorn.Config(
        create_app(settings), host=settings.api_host, port=settings.api_port,
        log_config=None, ws="websockets-sansio",
    )  # fmt: skip
    uvicorn.Server(config).run()
    return 0
