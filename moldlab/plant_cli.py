"""`moldlab plant load|show`: the plant file into the database, and what is in force when."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from moldlab.dbargs import UsageError, add_database_option, database_url

if TYPE_CHECKING:
    from plant import Plant
    from store.plant import PlantInForce

_FORMAT = (
    "The plant file (YAML) holds what a machine cannot tell: sites with their IANA time zone "
    "and shift calendar (named shifts with local start and end, weekdays, breaks, holidays), "
    "moulds (cavities, ideal cycle time, part weight, material, specification limits of the "
    "EUROMAP 77 cycle parameters) and machines (site/area/line/id, nominal data). Example: "
    "simulators/scenarios/demo-plant.yaml."
)


def add_parser(subparsers: Any) -> None:
    """Add `plant` and its subcommands to the `moldlab` parser's subparsers."""
    from plant.plantfile import BOUNDS, MAX_PROBLEMS

    plant = subparsers.add_parser(
        "plant",
        help="master data: load the plant file (sites, shift calendars, moulds, machines)",
        description=f"{_FORMAT} {BOUNDS}",
    )
    sub = plant.add_subparsers(dest="plant_command", required=True, metavar="PLANT_COMMAND")
    load = sub.add_parser(
        "load",
        help="validate a plant file and write it to the database from a stated time",
        description="Validate FILE and write it to the database, in force from "
        "--effective-from. History is kept: what changed gets a new version from that time, "
        "its previous version ends there, what the file no longer lists ends there, and "
        "figures before that time keep the master data they had. Loading the same content "
        "again changes nothing. A change must take effect after the newest version of what it "
        "changes; an earlier one is refused and nothing is written. A file with errors is "
        "refused (exit code 2) with one line per error, file:line: field: what (the first "
        f"{MAX_PROBLEMS}, then how many more). {_FORMAT} {BOUNDS}",
    )
    load.add_argument("file", type=Path, metavar="FILE", help="the plant file (YAML)")
    load.add_argument(
        "--effective-from", metavar="TIMESTAMP",
        help="when it takes effect: ISO 8601 with a zone, e.g. 2026-12-01T06:00+01:00, "
        "from 1970 to a year ahead of now (default: the file's effective_from, else now)",
    )  # fmt: skip
    load.add_argument("--check", action="store_true", help="only validate the file; write nothing")
    add_database_option(load)
    show = sub.add_parser(
        "show",
        help="print the plant master data in force at a time",
        description="Print the sites with their shift calendars, the moulds and the machines "
        "as they were in force at --at (default now), each with the time its version took "
        "effect.",
    )
    show.add_argument(
        "--at", metavar="TIMESTAMP", help="ISO 8601 with a zone, e.g. 2026-11-01T12:00Z"
    )
    add_database_option(show)


def _timestamp(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time (2026-12-01T06:00+01:00)") from None
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone: add one, e.g. +01:00 or Z")
    return value


def run(args: argparse.Namespace) -> int:
    """Run `moldlab plant ...`; returns the exit code."""
    from plant import PlantFileError, load_plant
    from plant.plantfile import effective_problem

    def fail(message: str, code: int = 2) -> int:
        print(f"moldlab plant {args.plant_command}: {message}", file=sys.stderr)
        return code

    when = getattr(args, "effective_from", None) or getattr(args, "at", None)
    try:
        given = _timestamp(when) if when else None
    except ValueError as exc:
        return fail(str(exc))
    now = datetime.now(UTC)
    if args.plant_command == "load" and given and (problem := effective_problem(given, now)):
        return fail(f"--effective-from {when}: {problem}")
    plant = None
    if args.plant_command == "load":
        try:
            plant = load_plant(args.file, now=now)
        except PlantFileError as exc:
            print(exc, file=sys.stderr)
            return 2
        if args.check:
            print(
                f"{args.file}: {len(plant.sites)} sites, {len(plant.moulds)} moulds, "
                f"{len(plant.machines)} machines: ok"
            )
            return 0
    import psycopg

    from store import StoreError

    try:
        url = database_url(args.database_url)
    except UsageError as exc:
        return fail(str(exc))
    try:
        if plant is not None:
            return asyncio.run(_load(url, plant, given, str(args.file)))
        return asyncio.run(_show(url, given or datetime.now(UTC)))
    except StoreError as exc:
        return fail(str(exc), 1)
    except psycopg.errors.UndefinedTable:
        return fail("the database has no plant tables: run `moldlab db upgrade` first", 1)
    except psycopg.OperationalError as exc:
        return fail(f"cannot reach the database: {str(exc).strip()[:300]}", 1)


async def _load(url: str, plant: Plant, given: datetime | None, source: str) -> int:
    from psycopg import AsyncConnection

    from plant.plantfile import effective
    from store.plant import write_plant

    at = effective(plant, given, datetime.now(UTC))
    async with await AsyncConnection.connect(url) as conn:
        result = await write_plant(conn, plant, at, source)
    if not result.changes:
        print(f"{source}: no change (the database already holds this content)")
        return 0
    print(f"{source}: in force from {at.isoformat()}")
    for verb, things in (
        ("added", result.added), ("changed", result.changed), ("retired", result.retired),
    ):  # fmt: skip
        if things:
            print(f"  {verb}: {', '.join(things)}")
    return 0


async def _show(url: str, at: datetime) -> int:
    from psycopg import AsyncConnection

    from store.plant import plant_at

    async with await AsyncConnection.connect(url) as conn:
        found = await plant_at(conn, at)
    print("\n".join(describe(found)))
    return 0


def _since(t: datetime) -> str:
    return f"since {t.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def describe(found: PlantInForce) -> list[str]:
    """The plant in force (store.plant.PlantInForce) as lines an engineer reads."""
    from plant.calendar import WEEKDAY_NAMES

    lines = [f"plant master data in force at {found.at.astimezone(UTC).isoformat()}"]
    if not (found.sites or found.moulds or found.machines):
        return [*lines, "(nothing: load a plant file with `moldlab plant load FILE`)"]
    for v in found.sites:
        site = v.item
        lines.append(f"\nsite {site.id}  {site.name}  ({site.timezone}, {_since(v.valid_from)})")
        for s in site.calendar.shifts:
            days = (
                "every day"
                if len(set(s.weekdays)) == 7
                else ",".join(d for d in WEEKDAY_NAMES if d in s.weekdays)
            )
            breaks = ", ".join(f"{b.start:%H:%M}-{b.end:%H:%M}" for b in s.breaks) or "none"
            lines.append(
                f"  shift {s.name:<12} {s.start:%H:%M}-{s.end:%H:%M}  {days:<27} breaks: {breaks}"
            )
        if site.calendar.holidays:
            lines.append("  holidays: " + ", ".join(d.isoformat() for d in site.calendar.holidays))
    if found.moulds:
        lines.append("\nmoulds")
        lines.append(
            f"  {'id':<20} {'cavities':>8} {'ideal cycle':>12} {'part weight':>12}  material"
        )
    for mv in found.moulds:
        m = mv.item
        lines.append(
            f"  {m.id:<20} {m.cavities:>8} {m.ideal_cycle_s:>10g} s {m.part_weight_g:>10g} g  "
            f"{m.material:<8} {_since(mv.valid_from)}"
        )
        for name, lim in m.limits.items():
            target = f", target {lim.target:g}" if lim.target is not None else ""
            lines.append(f"      {name}: {lim.lower:g} .. {lim.upper:g}{target}")
    if found.machines:
        lines.append("\nmachines")
    for pv in found.machines:
        machine = pv.item
        nominal = ", ".join(
            f"{label} {value:g} {unit}"
            for label, value, unit in (
                ("clamp", machine.clamp_force_kn, "kN"),
                ("screw", machine.screw_diameter_mm, "mm"),
                ("shot", machine.max_shot_volume_cm3, "cm3"),
            )
            if value is not None
        )
        lines.append(f"  {'/'.join(machine.place):<36} {nominal or '-'}  {_since(pv.valid_from)}")
    return lines


def merge_plant(plant: Plant, in_force: Plant) -> Plant:
    """`plant` plus what `in_force` holds that it does not name; `plant`'s own items win.

    Loaded over a database other loads also wrote to, the merge retires nothing: only what
    `plant` names is added or changed.
    """
    from plant import Plant

    sites = {s.id for s in plant.sites}
    moulds = {m.id for m in plant.moulds}
    machines = {m.place for m in plant.machines}
    return Plant(
        sites=[*plant.sites, *(s for s in in_force.sites if s.id not in sites)],
        moulds=[*plant.moulds, *(m for m in in_force.moulds if m.id not in moulds)],
        machines=[*plant.machines, *(m for m in in_force.machines if m.place not in machines)],
    )


def load_demo_plant(database_url: str) -> None:
    """Write the demo scenario's plant file to the database, keeping what others loaded.

    `moldlab demo` runs this after the migrations, so that the figures of the demo are
    computed from the calendar and moulds its simulated machines follow. Into a database with
    no plant yet the file goes in force from 1970 (plant.plantfile.EARLIEST): data from before
    the demo's first start (an edge gateway's backlog, a backfill, late messages) is judged by
    the demo's calendar and moulds, not by none. On later starts it is merged with the sites,
    moulds and machines in force now that it does not name (say, a plant file the user loaded
    into the demo's database), from now: a restart changes only what the file says and
    retires nothing. One log line says what the load added, changed and retired.
    """
    import logging

    from psycopg import AsyncConnection

    from plant.plantfile import EARLIEST
    from simulators.scenario import load_scenario
    from store.plant import PlantConflict, plant_at, write_plant

    log = logging.getLogger("moldlab.demo")
    scenario = load_scenario("demo")
    plant = scenario.plant
    assert plant is not None, "the packaged demo scenario names its plant file"

    async def write() -> None:
        async with await AsyncConnection.connect(database_url) as conn:
            cur = await conn.execute(
                "SELECT EXISTS (SELECT FROM plant_site) OR EXISTS (SELECT FROM plant_mould)"
                " OR EXISTS (SELECT FROM plant_machine)"
            )
            row = await cur.fetchone()
            await conn.commit()
            now = datetime.now(UTC)
            if row is not None and row[0]:
                at, merged = now, merge_plant(plant, (await plant_at(conn, now)).plant())
            else:
                at, merged = EARLIEST, plant
            result = await write_plant(conn, merged, at, str(scenario.plant_path))
        if result.changes:
            what = {"added": result.added, "changed": result.changed, "retired": result.retired}
            named = "; ".join(f"{verb} {', '.join(items)}" for verb, items in what.items() if items)
            log.info(
                "plant file %s loaded, in force from %s: %d added, %d changed, %d retired (%s)",
                scenario.plant_path, at.isoformat(), len(result.added), len(result.changed),
                len(result.retired), named[:300],
            )  # fmt: skip
        else:
            log.info("plant file %s: already in the database", scenario.plant_path)

    try:
        asyncio.run(write())
    # PlantConflict: the clock went back since the last load; ValueError: the merge is not a
    # valid plant (say, too many machines). Either way keep what is there.
    except (PlantConflict, ValueError) as exc:
        log.warning("plant file %s not loaded: %s", scenario.plant_path, str(exc)[:300])
