"""`moldlab broker acl`: the plant broker's users, passwords and ACL from the plant file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> None:
    """Add `broker` and its subcommands to the `moldlab` parser's subparsers."""
    broker = subparsers.add_parser(
        "broker",
        help="the plant broker's users and ACL, made from the plant file",
        description="What the plant's mosquitto needs to let each part do its job and no more.",
    )
    sub = broker.add_subparsers(dest="broker_command", required=True, metavar="BROKER_COMMAND")
    acl = sub.add_parser(
        "acl",
        help="write the broker's ACL and password file, and a password for each new user",
        description="Read the plant file's `gateways` (id, site, area, line) and write, in "
        "--out: `acl` (mosquitto's acl_file: each gateway may publish only under its own line "
        "and read only its own commit confirmations; ingest may read the machines' messages "
        "and publish confirmations), `passwd` (mosquitto's password_file, PBKDF2-SHA512) and "
        "`credentials/USER`, the password of each user made now (mode 600: give it to that "
        "gateway's YAML, `broker.password`, or to ingest's MOLDLAB_MQTT_URL, then delete it). "
        "Users: moldlab-ingest, moldlab-monitor (reads the broker's $SYS statistics for "
        "Prometheus), each gateway, and with --sim moldlab-sim (the demo's simulated "
        "MQTT-native machines). Run it again when the plant file changes: kept users keep "
        "their passwords; mosquitto reads the files again on SIGHUP.",
    )
    acl.add_argument("plant_file", type=Path, metavar="PLANT_FILE", help="the plant file (YAML)")
    acl.add_argument(
        "--out", type=Path, default=Path("broker"),
        help="the directory to write (default ./broker); mount it as mosquitto's config",
    )  # fmt: skip
    acl.add_argument(
        "--sim", action="store_true", help="also a user for simulated MQTT-native machines"
    )


def run(args: argparse.Namespace) -> int:
    """Run `moldlab broker acl`; returns the exit code."""
    from moldlab.brokerauth import BrokerAuthError, write_broker_files
    from plant import PlantFileError, load_plant

    try:
        plant = load_plant(args.plant_file)
        made = write_broker_files(plant, args.out, sim=args.sim)
    except PlantFileError as exc:
        print(exc, file=sys.stderr)
        return 2
    except (BrokerAuthError, OSError) as exc:
        print(f"moldlab broker acl: {exc}", file=sys.stderr)
        return 2
    if not plant.gateways:
        print(f"{args.plant_file} lists no gateways: only ingest has a user", file=sys.stderr)
    for user in made.created:
        print(f"{user}: new; its password is in {args.out / 'credentials' / user}")
    for user in made.kept:
        print(f"{user}: kept")
    for user in made.removed:
        print(f"{user}: removed (no longer in the plant file)")
    print(f"wrote {args.out / 'acl'} and {args.out / 'passwd'}")
    return 0
