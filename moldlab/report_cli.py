"""`moldlab report oee|refresh`: OEE, losses and downtime in the terminal; a rollup pass."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any

from moldlab.dbargs import UsageError as _Usage
from moldlab.dbargs import add_database_option, database_url
from moldlab.runner import ENV_HELP

if TYPE_CHECKING:
    from psycopg import AsyncConnection

    from analytics.report import LossNode, OeeRow, ParetoRow
    from dashboard_api.settings import PerformanceEnv

# The values of analytics.report.Bucket, Level and analytics.oee.MicroStops (a test checks
# them): `moldlab --help` does not import the database driver to list them.
BUCKETS = ("shift", "day", "week", "month", "range")
LEVELS = ("machine", "line", "area", "site")
CONVENTIONS = ("iso", "tpm")

_DEFINITIONS = (
    "Figures follow ISO 22400-2, as the API's /api/v1/performance endpoints: time-weighted "
    "from state intervals, clipped to the shifts of the site's calendar in its time zone; "
    "planned busy time (PBT) is shift time less breaks, holidays, planned stops and unknown "
    "time (no data); setup is an availability loss; A = APT / PBT, E = ideal time / APT, Q = "
    "good / parts made; roll-ups sum times and counts, never average ratios. Micro-stops are "
    "stops shorter than MOLDLAB_MICRO_STOP_S (300 s), availability loss in the iso "
    "convention, speed loss in tpm (MOLDLAB_MICRO_STOP_CONVENTION, default iso)."
)
_TIME_HELP = (
    "a date or time from 1970 to 2200, as the API: 2026-11-02 (local midnight), "
    "2026-11-02T06:00 (in the site's time zone, that of the plant file, UTC when it does not "
    "name the site) or with an offset, 2026-11-02T06:00+01:00"
)
# How zoneinfo reads a local time without an offset (fold=0), said in --help and README.
_CLOCK_CHANGE_HELP = (
    "A local time the clocks skip (02:30 on the night they go forward) is read with the "
    "offset in force before the change, so it lands that much later (03:30 in Europe/Rome); "
    "one they repeat (02:30 on the night they go back) is its first occurrence."
)
# Figures above machine level sum their machines' times, as the API's `times` do.
_MACHINE_HOURS = (
    "The hours of a line, area or site (its rows; the loss tree and Pareto of a place above "
    "one machine) sum those of its machines: machine-hours, 72 h for 3 machines over a day."
)


def add_parser(subparsers: Any) -> None:
    """Add `report` and its subcommands to the `moldlab` parser's subparsers."""
    report = subparsers.add_parser(
        "report",
        help="production performance: OEE, losses and downtime per machine and shift",
        description="Production performance from the database: OEE and its losses "
        "(`report oee`), and a pass of the rollup that keeps them fast (`report refresh`). "
        + _DEFINITIONS,
    )
    sub = report.add_subparsers(dest="report_command", required=True, metavar="REPORT_COMMAND")
    oee = sub.add_parser(
        "oee",
        help="print OEE per place and bucket, the loss tree and the downtime Pareto",
        description="Print a table of the places at --level under --place (default: every "
        "machine of --site) by --bucket over [--from, --to): availability (A), effectiveness "
        "(E), quality (Q), OEE, planned busy time, actual production time and unknown time in "
        "hours, good/bad/test parts and kWh per good part; below it, for the whole range and "
        "place, the loss tree (where the planned busy time went) and the downtime Pareto "
        "(reasons by time lost, with MTBF and MTTR). --json prints the API's JSON instead: "
        '{"oee": [...], "losses": {...}, "downtime": [...]}, as GET '
        "/api/v1/performance/PLACE/oee, /losses and /downtime answer. "
        + _DEFINITIONS
        + " "
        + _MACHINE_HOURS
        + " "
        + _CLOCK_CHANGE_HELP
        + " "
        + ENV_HELP,
        epilog="Exit codes: 2 for a bad argument (a date, one outside 1970-2200, a place "
        "outside the site, an empty range or one over 400 days), 1 when the database cannot "
        "be reached, is not migrated or holds no machine of that site or place; 141 when the "
        "reader of its output stops early (`| head`).",
    )
    oee.add_argument("--site", required=True, help="the site, as in the topic and plant file")
    oee.add_argument(
        "--from", dest="start", required=True, metavar="TIME",
        help=f"start of the range, included: {_TIME_HELP}",
    )  # fmt: skip
    oee.add_argument(
        "--to", dest="end", required=True, metavar="TIME",
        help="end of the range, excluded, in the same forms: --from 2026-11-02 --to 2026-11-03 "
        "is the site's 2 November",
    )  # fmt: skip
    oee.add_argument(
        "--bucket", choices=BUCKETS, default="day",
        help="the time a row sums: a shift, a local day, an ISO week, a month, the whole "
        "range (default day)",
    )  # fmt: skip
    oee.add_argument(
        "--level", choices=LEVELS, default="machine",
        help="the places a row sums (default machine); not above --place",
    )  # fmt: skip
    oee.add_argument(
        "--place", metavar="PLACE",
        help="only this part of the site: site/area, site/area/line or a machine's "
        "site/area/line/machine (default the whole site)",
    )  # fmt: skip
    oee.add_argument(
        "--micro-stops", choices=CONVENTIONS,
        help="where micro-stops go: iso, availability loss; tpm, speed loss "
        "(default MOLDLAB_MICRO_STOP_CONVENTION, iso)",
    )  # fmt: skip
    oee.add_argument("--json", action="store_true", help="print the API's JSON, not tables")
    add_database_option(oee)
    refresh = sub.add_parser(
        "refresh",
        help="run one pass of the OEE rollup now, with a progress line",
        description="Bring performance_slice (OEE figures per machine and shift, the rollup "
        "that makes reports over months fast) up to date: recompute every slice that data "
        "written since the last pass made stale (late data, a plant file load) and roll up "
        "the slices ended since, then print what it did. The API runs such a pass every "
        "MOLDLAB_API_PERFORMANCE_REFRESH_S (30 s); reports are exact without it, only slower. "
        "When another pass is running, this one does nothing and says so. The micro-stop "
        "threshold is MOLDLAB_MICRO_STOP_S (300 s): slices rolled up with another one are "
        "computed from the raw rows. " + ENV_HELP,
    )
    add_database_option(refresh)


def run(args: argparse.Namespace) -> int:
    """Run `moldlab report ...`; returns the exit code."""
    import psycopg

    from analytics import NotFound
    from dashboard_api.settings import PerformanceEnv
    from store import SchemaNotReady

    def fail(message: str, code: int) -> int:
        print(f"moldlab report {args.report_command}: {message}", file=sys.stderr)
        return code

    env = PerformanceEnv()  # a bad MOLDLAB_MICRO_STOP_* is cli.main's "invalid settings"
    try:
        url = database_url(args.database_url)
        if args.report_command == "refresh":
            return asyncio.run(_refresh(url, env.micro_stop_s))
        asked = _Asked.parse(args)
        return asyncio.run(_oee(url, asked, env))
    except _Usage as exc:
        return fail(str(exc), 2)
    except NotFound as exc:
        return fail(str(exc), 1)
    except (SchemaNotReady, psycopg.errors.UndefinedTable):
        return fail("the database has no performance tables: run `moldlab db upgrade` first", 1)
    except psycopg.OperationalError as exc:
        return fail(f"cannot reach the database: {' '.join(str(exc).split())[:300]}", 1)


@dataclass(frozen=True, slots=True)
class _Asked:
    """The arguments of `report oee`, checked as far as they can be without the database."""

    site: str
    place: str
    start: datetime  # naive: in the site's time zone
    end: datetime
    bucket: str
    level: str
    convention: str | None
    json: bool

    @classmethod
    def parse(cls, args: argparse.Namespace) -> _Asked:
        from contracts import ID_PATTERN
        from dashboard_api.routes.performance import PLACE_PREFIX_PATTERN, a_level

        site: str = args.site
        if not re.match(ID_PATTERN, site):
            raise _Usage(f"--site {site!r} is not a site id: 1-64 letters, digits, _ . or -")
        place: str = args.place or site
        if not re.match(PLACE_PREFIX_PATTERN, place):
            raise _Usage(
                f"--place {place!r} is not a place: site/area[/line[/machine]], e.g. "
                f"{site}/hall-a/line-1"
            )
        if place.split("/")[0] != site:
            raise _Usage(f"--place {place} is not in site {site}: it must start with {site}/")
        depth = place.count("/") + 1
        if LEVELS.index(args.level) > len(LEVELS) - depth:
            own = LEVELS[len(LEVELS) - depth]
            raise _Usage(
                f"--level {args.level} is above --place {place} ({a_level(own)}): give {own} "
                "or a finer one"
            )
        return cls(
            site, place, _time(args.start, "--from"), _time(args.end, "--to"),
            args.bucket, args.level, args.micro_stops, args.json,
        )  # fmt: skip


def _time(text: str, option: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise _Usage(
            f"{option} {text!r} is not a date or time: give 2026-11-02, 2026-11-02T06:00 "
            "(the site's time zone) or 2026-11-02T06:00+01:00"
        ) from None


def _in_zone(value: datetime, zone: tzinfo, option: str) -> datetime:
    """`value` (given with an offset, or local to the site) in UTC, from 1970 to 2200."""
    from analytics.performance import EARLIEST, LATEST

    local = value if value.tzinfo is not None else value.replace(tzinfo=zone)
    try:
        utc = local.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc <= LATEST:
        raise _Usage(
            f"{option} {value.isoformat()} is not between {EARLIEST:%Y} and {LATEST:%Y}: "
            "give a time in that range, as the API asks"
        )
    return utc


async def _zone(conn: AsyncConnection[Any], site: str) -> tzinfo:
    """The site's time zone in the plant file now; UTC for a site it does not name."""
    from store.plant import site_at

    found = await site_at(conn, site, datetime.now(UTC))
    return found.shift_calendar().zone if found is not None else UTC


async def _oee(url: str, asked: _Asked, env: PerformanceEnv) -> int:
    from psycopg import AsyncConnection

    from analytics.oee import MicroStops
    from analytics.report import (
        Bucket,
        Level,
        group,
        loss_tree,
        oee_row,
        pareto_rows,
        read_slices,
        summed,
    )
    from dashboard_api.routes.performance import MAX_RANGE

    convention = MicroStops(asked.convention) if asked.convention else env.micro_stop_convention
    async with await AsyncConnection.connect(url, autocommit=True) as conn:
        zone = await _zone(conn, asked.site)
        start, end = _in_zone(asked.start, zone, "--from"), _in_zone(asked.end, zone, "--to")
        if end <= start:
            raise _Usage(f"the range is empty: --to ({end:%Y-%m-%d %H:%M} UTC) is not after --from")
        if end - start > MAX_RANGE:
            raise _Usage(f"the range is longer than {MAX_RANGE.days} days: give a shorter one")
        try:
            rows = await read_slices(conn, asked.place, start, end, env.performance(convention))
        except ValueError as exc:  # a range analytics refuses, in a sentence of its own
            raise _Usage(str(exc)) from None
    oee = [oee_row(g, convention) for g in group(rows, Bucket(asked.bucket), Level(asked.level))]
    total = summed(rows)
    losses = loss_tree(total, convention)
    downtime = pareto_rows(total, convention)
    if asked.json:
        print(
            json.dumps(
                {
                    "oee": [r.model_dump(mode="json") for r in oee],
                    "losses": losses.model_dump(mode="json"),
                    "downtime": [p.model_dump(mode="json") for p in downtime],
                },
                indent=2,
            )
        )
        return 0
    title = (
        f"OEE of {asked.place} by {asked.bucket}, {start.astimezone(zone):%Y-%m-%d %H:%M} to "
        f"{end.astimezone(zone):%Y-%m-%d %H:%M} ({zone}); micro-stops: {convention} "
        f"(< {env.micro_stop_s:g} s)"
    )
    note = [_MACHINE_HOURS] if asked.place.count("/") < 3 else []  # above one machine
    print("\n".join([title, *note, "", *oee_table(oee), "", *loss_lines(losses), ""]))
    print("\n".join(pareto_table(downtime)))
    return 0


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _h(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 3600:.2f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 2) -> list[str]:
    """Columns as wide as their widest cell; the first `left` left-aligned, the rest right."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        padded = (
            c.ljust(w) if i < left else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )
        return "  ".join(padded).rstrip()

    return [line(header), *(line(r) for r in rows)]


def oee_table(rows: Sequence[OeeRow]) -> list[str]:
    if not rows:
        return ["(no slices in the range)"]
    return _table(
        ["place", "bucket", "A", "E", "Q", "OEE", "PBT h", "APT h", "unknown h",
         "good/bad/test", "kWh/part"],
        [
            [
                r.place, r.bucket, _pct(r.kpis.availability), _pct(r.kpis.effectiveness),
                _pct(r.kpis.quality), _pct(r.kpis.oee), _h(r.times.planned_busy_s),
                _h(r.times.production_s), _h(r.times.unknown_s),
                f"{r.counts.good}/{r.counts.bad}/{r.counts.test}",
                "-" if r.kpis.kwh_per_good_part is None else f"{r.kpis.kwh_per_good_part:.4f}",
            ]
            for r in rows
        ],
    )  # fmt: skip


_COUNTED = {
    "availability loss": "stops",
    "speed loss": "stops",
    "quality loss": "parts",
    "valuable time": "good parts",
}


def loss_lines(root: LossNode) -> list[str]:
    """The loss tree, indented: name, hours, share of planned busy time, stops or parts."""
    rows: list[list[str]] = []

    def walk(node: LossNode, depth: int, counted: str) -> None:
        what = _COUNTED.get(node.name, counted)
        count = ""
        if node.count is not None and depth:
            count = f"{node.count} {what if node.count != 1 else what.removesuffix('s')}"
        rows.append(["  " * depth + node.name, _h(node.seconds), _pct(node.share_of_pbt), count])
        for child in node.children:
            walk(child, depth + 1, what)

    walk(root, 0, "")
    return ["Where the planned busy time went (whole range)", "", *_table(
        ["loss tree", "hours", "of PBT", "count"], rows, left=1
    )]  # fmt: skip


def pareto_table(rows: Sequence[ParetoRow]) -> list[str]:
    head = ["Downtime Pareto (whole range)", ""]
    if not rows:
        return [*head, "(no downtime)"]
    return [*head, *_table(
        ["reason", "stops", "hours", "share", "cumulative", "MTBF h", "MTTR min"],
        [
            [
                p.reason + (" (micro-stops)" if p.micro_stops else ""), str(p.stops),
                _h(p.downtime_s), _pct(p.share), _pct(p.cumulative_share), _h(p.mtbf_s),
                "-" if p.mttr_s is None else f"{p.mttr_s / 60:.1f}",
            ]
            for p in rows
        ],
        left=1,
    )]  # fmt: skip


async def _refresh(url: str, micro_stop_s: float) -> int:
    from psycopg import AsyncConnection

    from analytics.rollup import refresh
    from moldlab.progress import ProgressBar

    bar = ProgressBar("rollup", "machines")
    async with await AsyncConnection.connect(url, autocommit=True) as conn:
        result = await refresh(conn, micro_stop_s=micro_stop_s, progress=bar)
    if not result.ran:
        print("another rollup pass is running (an API's or another refresh): nothing done")
        return 0
    bar.finish()
    print(
        f"rollup: {result.slices} slices of {result.machines} machines recomputed, "
        f"{result.marks} stale marks cleared in {result.seconds:.1f} s"
    )
    return 0
