"""The `moldlab` command: one subcommand per deployable, plus `demo` and `db upgrade`."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from moldlab.runner import run_until_signalled, setup_logging

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
        help="run the whole stack on this machine (PostgreSQL, broker, 3 machines, ingest, API)",
        description="Start a PostgreSQL server (the system's, or one installed from PyPI), an "
        "MQTT broker (mosquitto when installed, otherwise an in-process Python broker), "
        "simulated machines, ingest and the API, and print the address to open. Ctrl-C or "
        "SIGTERM stops everything; data is kept in the data directory across restarts.",
    )
    demo.add_argument(
        "--data-dir", type=Path, default=Path(os.environ.get("MOLDLAB_DATA_DIR", ".moldlab")),
        help="where the database and broker keep their data (default ./.moldlab)",
    )  # fmt: skip
    demo.add_argument("--port", type=int, default=8000, help="API port (default 8000)")
    demo.add_argument("--machines", type=int, default=3, help="simulated machines (default 3)")

    sim = sub.add_parser(
        "sim",
        help="simulated injection-moulding machines (MQTT-native or Modbus TCP servers)",
        description="Run N simulated MQTT-native machines, each its own MQTT client publishing "
        "telemetry batches, cycle records and state changes; or, with --modbus-port, serve "
        "them as Modbus TCP servers for the edge agent to poll. " + _ENV_HELP,
    )
    sim.add_argument("--machines", type=int, default=3, help="how many machines (default 3)")
    sim.add_argument("--mqtt-url", help="broker, e.g. mqtt://127.0.0.1:1883 (MOLDLAB_MQTT_URL)")
    sim.add_argument("--site", default="demo", help="site segment of the topics (default demo)")
    sim.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    sim.add_argument(
        "--speed", type=float, default=1.0, help="simulated seconds per real second (default 1)"
    )
    sim.add_argument(
        "--interval-s", type=float, default=1.0, help="telemetry batch interval (default 1 s)"
    )
    sim.add_argument(
        "--modbus-port", type=int, metavar="BASE",
        help="serve the machines over Modbus TCP on ports BASE, BASE+1, ... instead of "
        "publishing over MQTT (for the edge agent); register map: contracts/registers.yaml",
    )  # fmt: skip
    sim.add_argument(
        "--modbus-host", default="127.0.0.1", help="address the Modbus servers listen on"
    )

    edge = sub.add_parser(
        "edge",
        help="the edge agent: poll Modbus TCP machines and forward to the plant broker",
        description="Run the edge gateway agent described by a YAML file (site, machines with "
        "their Modbus TCP connection, the plant broker). See deploy/edge/gateway.example.yaml.",
    )
    edge.add_argument("--config", type=Path, required=True, help="the gateway's YAML file")

    ingest = sub.add_parser(
        "ingest",
        help="subscribe to the broker and write to PostgreSQL/TimescaleDB",
        description="Consume every moldlab message with a persistent QoS 1 session and write "
        "it in batches; a message is acknowledged only after its rows are committed. " + _ENV_HELP,
    )
    ingest.add_argument("--database-url", help="postgresql://... (MOLDLAB_DATABASE_URL)")
    ingest.add_argument("--mqtt-url", help="mqtt://host:port (MOLDLAB_MQTT_URL)")

    api = sub.add_parser(
        "api",
        help="serve the REST API, live WebSocket and visitor dashboard",
        description="Serve /api/v1 (OpenAPI at /docs) and the visitor page at /. " + _ENV_HELP,
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
    if args.command == "edge":
        return _edge(args)
    if args.command == "ingest":
        from ingest import IngestSettings, run_ingest

        ingest_settings = IngestSettings(
            **_overrides(args, database_url="database_url", mqtt_url="mqtt_url")  # type: ignore[arg-type]  # pydantic-settings fields are keyword-typed
        )
        return run_until_signalled(lambda stop: run_ingest(ingest_settings, stop))
    if args.command == "api":
        return _api(args)
    if args.command == "db":
        from ingest import upgrade
        from ingest.settings import IngestSettings

        db_settings = IngestSettings(**_overrides(args, database_url="database_url"))  # type: ignore[arg-type]  # as above
        backend = upgrade(db_settings.database_url)
        print(f"database is at the newest schema (storage: {backend})")
        return 0
    raise AssertionError(args.command)


def _sim(args: argparse.Namespace) -> int:
    from contracts import BrokerUrl
    from simulators import demo_floor, run_simulation

    specs = demo_floor(args.machines, site=args.site)
    if args.modbus_port is not None:
        from simulators.floor import ModbusFloor
        from simulators.modbus import load_register_map

        floor = ModbusFloor(
            specs, load_register_map(), host=args.modbus_host, base_port=args.modbus_port,
            seed=args.seed, speed=args.speed,
        )  # fmt: skip

        async def _serve(stop: asyncio.Event) -> None:
            async with floor:
                await floor.run(stop)

        return run_until_signalled(_serve)
    url = args.mqtt_url or os.environ.get("MOLDLAB_MQTT_URL", "mqtt://127.0.0.1:1883")
    broker = BrokerUrl.parse(url)

    async def _run(stop: asyncio.Event) -> None:
        await run_simulation(
            specs, broker, stop, seed=args.seed, speed=args.speed,
            telemetry_interval_s=args.interval_s,
        )  # fmt: skip

    return run_until_signalled(_run)


def _edge(args: argparse.Namespace) -> int:
    from edge import EdgeError, load_config, run_edge

    try:
        config = load_config(args.config)
    except EdgeError as exc:
        print(f"moldlab edge: {exc}", file=sys.stderr)
        return 2
    return run_until_signalled(lambda stop: run_edge(config, stop))


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
