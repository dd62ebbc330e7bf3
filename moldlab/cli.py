"""The `moldlab` command: one subcommand per deployable, plus `demo` and `db upgrade`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from moldlab import (
    bench_cli,
    broker_cli,
    chaos_cli,
    pdm_cli,
    plant_cli,
    report_cli,
    sim_cli,
    user_cli,
)
from moldlab.runner import ENV_HELP, run_until_signalled, setup_logging


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="moldlab",
        description="moldlab: telemetry for a living-lab floor of injection-moulding machines.",
        epilog="Start with `moldlab demo`: everything on this machine, no configuration. "
        "Output piped into a reader that stops early (`moldlab report oee ... | head`) ends "
        f"the command quietly with exit code {BROKEN_PIPE_EXIT}, as a command stopped by SIGPIPE.",
    )
    parser.add_argument(
        "--log-level", default=os.environ.get("MOLDLAB_LOG_LEVEL", "INFO"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="default INFO",
    )  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="run the whole stack on this machine (PostgreSQL, broker, 3 machines, edge, "
        "ingest, maintenance scorer, API)",
        description="Start a PostgreSQL server (the system's, or one installed from PyPI), an "
        "MQTT broker (mosquitto when installed, otherwise an in-process Python broker), "
        "simulated machines, ingest, the maintenance scorer and the API, and print the address "
        "to open. The machines of line-1 are retrofitted: Modbus TCP servers read by a "
        "`moldlab edge` gateway; the others publish over MQTT themselves. With no model in "
        "DATA_DIR/models, the scorer first trains one on a simulated export (minutes, with "
        "progress in the log) while the rest runs. A machine is scored while it makes cycles: "
        "a demo started in a break of the plant calendar shows predictions once the break "
        "ends. Ctrl-C or SIGTERM stops everything; data is kept in the data directory across "
        "restarts.",
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

    sim_cli.add_parser(sub)
    bench_cli.add_parser(sub)

    edge = sub.add_parser(
        "edge",
        help="the edge agent: poll Modbus TCP machines and forward to the plant broker",
        description="Run the edge gateway agent described by a YAML file (site, machines with "
        "their Modbus TCP connection or MQTT-native source, the plant broker, the outbox, the "
        "metrics endpoint). Every message is stored in the outbox (SQLite) before it is sent "
        "and kept there until ingest confirms the database has it. See "
        "deploy/edge/gateway.example.yaml.",
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
        "it in batches; a message is acknowledged only after its rows are committed. " + ENV_HELP,
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
        help="serve the REST API, the live WebSockets, the visitor kiosk and the workspace",
        description="Serve /api/v1 (OpenAPI at /docs), the visitor kiosk at / (public) and the "
        "engineer workspace at /engineer (after a login at /login; users: `moldlab user add`). "
        "The pages' chart and /docs files come from `moldlab assets`. " + ENV_HELP,
        epilog="Bounded whatever the database holds: GET /api/v1/machines answers in pages of "
        "at most 200 machines, each with at most MOLDLAB_API_MAX_SIGNALS_PER_MACHINE signals "
        "(256); the live socket follows MOLDLAB_LIVE_MAX_MACHINES machines (200); the kiosk's "
        "picture is taken every MOLDLAB_KIOSK_REFRESH_S (5) while someone looks; a query "
        "that takes longer than MOLDLAB_API_STATEMENT_TIMEOUT_S (5) answers 503. OEE "
        "(/api/v1/performance): micro-stops are stops shorter than MOLDLAB_MICRO_STOP_S (300), "
        "counted by MOLDLAB_MICRO_STOP_CONVENTION (iso or tpm); a rollup pass every "
        "MOLDLAB_API_PERFORMANCE_REFRESH_S (30; 0: none) keeps the figures fast.",
    )
    api.add_argument("--database-url", help="postgresql://... (MOLDLAB_DATABASE_URL)")
    api.add_argument("--host", help="listen address (MOLDLAB_API_HOST, default 127.0.0.1)")
    api.add_argument("--port", type=int, help="listen port (MOLDLAB_API_PORT, default 8000)")

    sub.add_parser(
        "assets",
        help="download the pages' chart and /docs files (checked against pinned checksums)",
        description="Download uPlot (the charts) and Swagger UI (/docs) from the npm registry "
        "(MOLDLAB_NPM_REGISTRY, default https://registry.npmjs.org), check each tarball "
        "against its pinned sha512, and unpack the files the pages load into "
        "dashboard_api/static/vendor/, from where the API serves them: the pages then need no "
        "internet. scripts/demo and scripts/test run it; run it again after upgrading moldlab.",
    )

    db = sub.add_parser("db", help="database schema", description="Manage the database schema.")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="DB_COMMAND")
    upgrade = db_sub.add_parser(
        "upgrade",
        help="migrate the database to the newest schema",
        description="Run the versioned migrations. Uses TimescaleDB (hypertables, compression, "
        "retention, continuous aggregates) when the server has the extension, plain "
        "PostgreSQL otherwise. " + ENV_HELP,
    )
    upgrade.add_argument("--database-url", help="postgresql://... (MOLDLAB_DATABASE_URL)")
    roles = db_sub.add_parser(
        "roles",
        help="make the services' database roles and grant each its tables",
        description="Make (or set the password of) moldlab_ingest, moldlab_api, "
        "moldlab_workspace and moldlab_scorer, and grant each what its job needs: all may "
        "read; ingest writes what arrives; the API reads with moldlab_api, which may only "
        "read, and writes the workspace's own (users' sessions, alert acknowledgements, its "
        "performance rollup) with moldlab_workspace; the scorer writes maintenance "
        "predictions and alerts. None is a superuser or owns "
        "the schema. Each role's password is read from PASSWORDS/ROLE, or made and written "
        "there (mode 600) when the file is missing. Run it as the schema's owner after "
        "`moldlab db upgrade`, and again after each upgrade. " + ENV_HELP,
    )
    roles.add_argument("--database-url", help="postgresql://... (MOLDLAB_DATABASE_URL)")
    roles.add_argument(
        "--passwords", type=Path, default=Path("db-roles"), metavar="PASSWORDS",
        help="the directory of the roles' password files (default ./db-roles)",
    )  # fmt: skip
    plant_cli.add_parser(sub)
    broker_cli.add_parser(sub)
    chaos_cli.add_parser(sub)
    report_cli.add_parser(sub)
    pdm_cli.add_parser(sub)
    user_cli.add_parser(sub)
    return parser


def _overrides(args: argparse.Namespace, **names: str) -> dict[str, object]:
    """Settings fields given on the command line (option name -> field name)."""
    return {
        field: getattr(args, option)
        for option, field in names.items()
        if getattr(args, option, None) is not None
    }


# The exit code when stdout's reader went away early (`moldlab report oee ... | head`): that of
# a command stopped by SIGPIPE in the shell (128 + 13). The output was cut short, so a script
# with `set -o pipefail` sees a failure rather than a complete answer.
BROKEN_PIPE_EXIT = 141


def main(argv: Sequence[str] | None = None) -> int:
    """Run `moldlab ARGS`; returns the exit code.

    Output into a pipe whose reader has gone ends the command quietly with BROKEN_PIPE_EXIT,
    not a BrokenPipeError traceback (Python ignores SIGPIPE, so a write raises instead).
    """
    try:
        try:
            return _main(argv)
        finally:  # here, not at exit, where a failed flush prints "Exception ignored ..."
            sys.stdout.flush()
    except BrokenPipeError:
        if not _stdout_gone():
            raise  # another pipe or socket: a real error
        # Python flushes stdout once more at exit: let that one write to /dev/null.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE_EXIT


def _stdout_gone() -> bool:
    """Whether stdout is a pipe or socket whose reader has closed it."""
    import select

    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # replaced (tests): not a closed pipe
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


def _main(argv: Sequence[str] | None) -> int:
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
        return sim_cli.run(args)
    if args.command == "bench":
        return bench_cli.run(args)
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
    if args.command == "broker":
        return broker_cli.run(args)
    if args.command == "chaos":
        return chaos_cli.run(args)
    if args.command == "report":
        return report_cli.run(args)
    if args.command == "pdm":
        return pdm_cli.run(args)
    if args.command == "user":
        return user_cli.run(args)
    if args.command == "assets":
        from dashboard_api.assets import AssetError, install

        try:
            install()
        except (AssetError, OSError) as exc:
            print(f"moldlab assets: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.command == "db":
        from ingest.settings import IngestSettings
        from store import upgrade

        db_settings = IngestSettings(**_overrides(args, database_url="database_url"))  # type: ignore[arg-type]  # as above
        if args.db_command == "roles":
            return _db_roles(db_settings.database_url, args.passwords)
        backend = upgrade(db_settings.database_url)
        print(f"database is at the newest schema (storage: {backend})")
        return 0
    raise AssertionError(args.command)


def _db_roles(database_url: str, directory: Path) -> int:
    import secrets

    import psycopg

    from store.roles import ROLES, grant_roles

    passwords: dict[str, str] = {}
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        for role in ROLES:
            path = directory / role
            if path.exists():
                passwords[role] = path.read_text().strip()
                print(f"{role}: password from {path}")
                continue
            passwords[role] = secrets.token_urlsafe(24)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(passwords[role] + "\n")
            print(f"{role}: new password in {path}")
    except OSError as exc:
        print(f"moldlab db roles: {exc}", file=sys.stderr)
        return 2
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            grant_roles(conn, passwords)
    except psycopg.Error as exc:
        print(f"moldlab db roles: {' '.join(str(exc).split())[:300]}", file=sys.stderr)
        return 1
    print(f"granted {', '.join(ROLES)}")
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
        # One picture, the same bytes for every kiosk: compressing it per connection would
        # cost each client its own CPU. Clients send nothing worth more than 64 KiB.
        ws_per_message_deflate=False, ws_max_size=64 * 1024,
    )  # fmt: skip
    uvicorn.Server(config).run()
    return 0
