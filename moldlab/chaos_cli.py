"""`moldlab chaos`: faults against a whole data path on this machine, counted end to end."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> None:
    """Add `chaos` to the `moldlab` parser's subparsers."""
    chaos = subparsers.add_parser(
        "chaos",
        help="faults against a whole data path on this machine; prints lost and duplicated",
        description="Start PostgreSQL, mosquitto, edge gateways with simulated Modbus machines "
        "(reaching the broker through a cable that can be cut) and two ingest workers in a "
        "shared group, all on this machine; then, one after the other: the broker stopped and "
        "restarted, the database stopped, ingest SIGKILLed several times, a gateway SIGKILLed "
        "while the broker is down, a Modbus machine gone, the network cut (bytes dropped), the "
        "broker restarted while ingest is away. After each, the time until everything made "
        "before its end is committed. Then it counts every (source, seq) from first to last "
        "in the database and prints, per source, what was lost and duplicated. Exit code 1 "
        "if anything was lost or duplicated or a fault was not recovered from. Needs "
        "mosquitto and the PostgreSQL server binaries; takes about 2 minutes (--short: 1).",
    )
    chaos.add_argument(
        "--short", action="store_true",
        help="one gateway of 2 machines, 3 s outages, 2 ingest kills (the test suite's run)",
    )  # fmt: skip
    chaos.add_argument(
        "--database-url",
        help="an existing database to use (its server is not stopped: no database fault)",
    )
    chaos.add_argument(
        "--dir", type=Path, help="where the servers and logs go (default: a new temporary one)"
    )


def run(args: argparse.Namespace) -> int:
    """Run `moldlab chaos`; returns the exit code."""
    from moldlab.chaos import SHORT, Plan, run_chaos
    from moldlab.servers import ServerError

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    plan = SHORT if args.short else Plan()
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
    try:
        report = asyncio.run(run_chaos(plan, say, database_url=args.database_url, home=args.dir))
    except (ServerError, OSError) as exc:
        print(f"moldlab chaos: {exc}", file=sys.stderr)
        return 2
    command = "moldlab chaos" + (" --short" if args.short else "")
    print(f"$ {command}")
    for line in report.lines():
        print(line)
    failed = report.lost or report.duplicated or any(f.recovery_s is None for f in report.faults)
    return 1 if failed else 0
