"""`moldlab sim`: simulated machines over MQTT or Modbus TCP, or an export to Parquet."""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from moldlab.runner import ENV_HELP, run_until_signalled

if TYPE_CHECKING:
    from simulators.scenario import Scenario
    from simulators.specs import MachineSpec

# The default start of `sim --export` (simulators.export.DEFAULT_START; not imported here so
# that `moldlab --help` does not need pyarrow).
DEFAULT_EXPORT_START = datetime(2026, 1, 5, tzinfo=UTC)


def add_parser(subparsers: Any) -> None:
    """Add `sim` to the `moldlab` parser's subparsers."""
    sim = subparsers.add_parser(
        "sim",
        help="simulated injection-moulding machines (MQTT-native or Modbus TCP servers)",
        description="Run N simulated MQTT-native machines, each its own MQTT client publishing "
        "telemetry batches, cycle records and state changes; or, with --modbus-port, serve "
        "them as Modbus TCP servers for the edge agent to poll; or, with --export DIR --days N, "
        "run them as fast as the CPU allows and write N days of cycles, signals, states and "
        "ground truth to Parquet files for training. " + ENV_HELP,
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


def run(args: argparse.Namespace) -> int:
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
