"""`moldlab report oee|refresh`: the figures in the terminal, the API's JSON, clear errors.

One machine on one day of a site in Europe/Rome (UTC+1 in November). Its one shift is
06:00-14:00 local = 05:00-13:00 UTC with a break 10:00-10:30 local = 09:00-09:30 UTC.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from databases import migrated_database
from logins import login_headers
from performance import on_24_november, one_shift_plant
from places import serve_api
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from analytics.oee import MicroStops
from analytics.report import Bucket, Level
from dashboard_api import ApiSettings
from moldlab import report_cli
from moldlab.cli import BROKEN_PIPE_EXIT, main
from moldlab.servers import create_database, drop_database
from moldlab.servers.process import free_port
from plant import parse_plant
from store.plant import write_plant

PLACE = "rep/hall/l1/imm-x"
DAY = ["--from", "2026-11-24", "--to", "2026-11-25"]  # the site's local day

PLANT = one_shift_plant("rep", "Report test site")
at = on_24_november


# imm-x (UTC): running from 04:00, fault (hydraulics) 07:00-08:00, running, idle from 13:30.
# PBT = 28,800 shift - 1,800 break = 27,000 s (7.50 h); APT = 27,000 - 3,600 = 23,400 s
# (6.50 h); A = 23,400 / 27,000 = 86.7 %.
# 600 cycles of 2 parts every 20 s from 09:30:10 (the last at 12:49:50), job on m1 with 2
# cavities (10 s a part): 570 good, 25 bad (flash), 5 test = 1,140 / 50 / 10 of 1,200 parts;
# ideal time 12,000 s: E = 12,000 / 23,400 = 51.3 %; Q = 1,140 / 1,200 = 95.0 %;
# OEE = 12,000 / 27,000 * 0.95 = 42.2 %; 0.1 kWh a cycle: 60 kWh / 1,140 = 0.0526 kWh/part.
STATES = [
    ("04:00:00", "running", None), ("07:00:00", "fault", "hydraulics"),
    ("08:00:00", "running", None), ("13:30:00", "idle", None),
]  # fmt: skip


@pytest.fixture(scope="module")
def report_url(database_server_url: str) -> Iterator[str]:
    """A database of this module's own: loading a plant file retires what it does not name."""
    with migrated_database(database_server_url, "moldlab_report") as url:
        yield url


@pytest.fixture(scope="module")
async def seeded(report_url: str) -> str:
    async with await AsyncConnection.connect(report_url, autocommit=True) as db:
        await write_plant(db, parse_plant(PLANT), datetime(2026, 11, 1, tzinfo=UTC), "test")
        cur = await db.execute(
            "INSERT INTO machine (machine_key, site, area, line)"
            " VALUES ('imm-x', 'rep', 'hall', 'l1') RETURNING id"
        )
        row = await cur.fetchone()
        assert row is not None
        mid = row[0]
        async with db.cursor() as c:
            await c.executemany(
                "INSERT INTO machine_state (time, machine_id, state, reason, source, seq)"
                " VALUES (%s, %s, %s, %s, 'test', %s)",
                [(at(t), mid, s, r, i) for i, (t, s, r) in enumerate(STATES)],
            )
            await c.execute(
                "INSERT INTO machine_job (time, machine_id, job_name, mould_id, job_status,"
                " active_cavities, nominal_parts, source, seq)"
                " VALUES (%s, %s, 'job-x', 'm1', 'job_in_production', 2, 0, 'test', 1)",
                (at("04:00:00"), mid),
            )
            quality = ["good"] * 570 + ["bad"] * 25 + ["test"] * 5
            await c.executemany(
                "INSERT INTO cycle (time, machine_id, shot, quality, parts, cycle_time_s,"
                " parameters, source, seq, defect)"
                " VALUES (%s, %s, %s, %s, 2, 20.0, %s, 'test', %s, %s)",
                [
                    (
                        at("09:30:10") + timedelta(seconds=20 * k), mid, k, q,
                        Jsonb({"CycleEnergy": 0.1}), k, "flash" if q == "bad" else None,
                    )
                    for k, q in enumerate(quality)
                ],
            )  # fmt: skip
    return report_url


@pytest.fixture(autouse=True)
def _no_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command sees only what a test gives it, not the environment's MOLDLAB_* settings."""
    import os

    for name in [n for n in os.environ if n.startswith("MOLDLAB_")]:
        if not name.startswith("MOLDLAB_TEST_"):
            monkeypatch.delenv(name)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`moldlab ARGS` in this process: exit code, stdout, stderr."""
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _cells(out: str, first: str) -> list[str]:
    """The cells of the first line of `out` whose first cell is `first`."""
    return next(cells for line in out.splitlines() if (cells := line.split())[:1] == [first])


def test_report_oee_prints_the_hand_computed_figures(
    seeded: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "report", "oee", "--site", "rep", *DAY, "--database-url", seeded)
    assert code == 0, err
    assert "OEE of rep by day, 2026-11-24 00:00 to 2026-11-25 00:00 (Europe/Rome)" in out
    assert "micro-stops: iso (< 300 s)" in out
    assert _cells(out, "place") == [
        "place", "bucket", "A", "E", "Q", "OEE", "PBT", "h", "APT", "h", "unknown", "h",
        "good/bad/test", "kWh/part",
    ]  # fmt: skip
    assert _cells(out, PLACE) == [
        PLACE, "2026-11-24", "86.7%", "51.3%", "95.0%", "42.2%", "7.50", "6.50", "0.00",
        "1140/50/10", "0.0526",
    ]  # fmt: skip
    # The loss tree: 27,000 s of PBT = 3,600 fault + 11,400 speed (23,400 - 12,000)
    # + 600 quality (60 parts * 10 s: 500 scrap, 100 test) + 11,400 valuable.
    assert _cells(out, "planned") == ["planned", "busy", "time", "7.50", "100.0%"]
    assert _cells(out, "availability") == ["availability", "loss", "1.00", "13.3%"]
    assert _cells(out, "fault/hydraulics") == ["fault/hydraulics", "1.00", "13.3%", "1", "stop"]
    assert _cells(out, "speed") == ["speed", "loss", "3.17", "42.2%"]
    assert _cells(out, "quality") == ["quality", "loss", "0.17", "2.2%", "60", "parts"]
    assert _cells(out, "scrap/flash") == ["scrap/flash", "0.14", "1.9%", "50", "parts"]
    assert _cells(out, "test") == ["test", "samples", "0.03", "0.4%", "10", "parts"]
    assert _cells(out, "valuable") == ["valuable", "time", "3.17", "42.2%", "1140", "good", "parts"]
    # The Pareto: one fault of 1 h, MTBF = APT 6.50 h / 1, MTTR 60 min.
    assert "Downtime Pareto (whole range)" in out
    assert _cells(out, "reason") == [
        "reason", "stops", "hours", "share", "cumulative", "MTBF", "h", "MTTR", "min",
    ]  # fmt: skip
    assert out.splitlines()[-1].split() == [
        "fault/hydraulics", "1", "1.00", "100.0%", "100.0%", "6.50", "60.0",
    ]  # fmt: skip


def test_tpm_and_levels_and_buckets(seeded: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "report", "oee", "--site", "rep", *DAY, "--bucket", "shift", "--level", "line",
        "--place", "rep/hall", "--micro-stops", "tpm", "--database-url", seeded,
    )  # fmt: skip
    assert code == 0, err
    assert "micro-stops: tpm" in out
    # A line's hours are its machines' summed: the header says so.
    assert out.splitlines()[1].startswith("The hours of a line, area or site")
    assert "machine-hours" in out.splitlines()[1]
    rows = [line.split() for line in out.splitlines() if line.startswith("rep/hall/l1 ")]
    assert [r[1:3] for r in rows] == [["2026-11-24", "(no"], ["2026-11-24", "morning"]]
    assert rows[1][3:7] == ["86.7%", "51.3%", "95.0%", "42.2%"]


async def test_json_is_the_apis_json(seeded: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["report", "oee", "--site", "rep", *DAY, "--json", "--database-url", seeded]
    capsys.readouterr()
    assert await asyncio.to_thread(main, args) == 0
    printed = json.loads(capsys.readouterr().out)
    window = {"from": "2026-11-24T00:00+01:00", "to": "2026-11-25T00:00+01:00"}
    base = "/api/v1/performance/rep"
    async with (
        serve_api(ApiSettings(database_url=seeded)) as url,
        httpx.AsyncClient(base_url=url, timeout=30, headers=login_headers(seeded)) as http,
    ):
        answers: dict[str, Any] = {}
        for name, path, extra in (
            ("oee", "/oee", {"bucket": "day", "level": "machine"}),
            ("losses", "/losses", {}),
            ("downtime", "/downtime", {}),
        ):
            response = await http.get(base + path, params={**window, **extra})
            assert response.status_code == 200, response.text
            answers[name] = response.json()
    for rows in (printed["oee"], answers["oee"]):
        for row in rows:
            row.pop("from_rollup")  # how each was computed, not a figure
    assert printed == answers
    (row,) = printed["oee"]
    assert row["kpis"]["oee"] == pytest.approx(12_000 / 27_000 * 0.95, abs=1e-9)


def _whole_range(capsys: pytest.CaptureFixture[str], url: str, start: str, end: str) -> Any:
    """The one --bucket range row of site rep from `start` to `end`, as JSON."""
    code, out, err = run(
        capsys, "report", "oee", "--site", "rep", "--from", start, "--to", end, "--bucket",
        "range", "--json", "--database-url", url,
    )  # fmt: skip
    assert code == 0, err
    (row,) = json.loads(out)["oee"]
    return row


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2026-11-24T06:00", "2026-11-24T14:00"),  # the site's local time
        ("2026-11-24T06:00+01:00", "2026-11-24T14:00+01:00"),
        ("2026-11-24T05:00Z", "2026-11-24T13:00Z"),
    ],
)
def test_times_without_an_offset_are_the_sites_local_time(
    seeded: str, capsys: pytest.CaptureFixture[str], start: str, end: str
) -> None:
    row = _whole_range(capsys, seeded, start, end)
    assert row["start"] == "2026-11-24T05:00:00Z"
    # Exactly the shift: read as UTC, 06:00-14:00 would miss its first hour.
    assert row["times"]["calendar_s"] == 28_800
    assert row["times"]["shift_s"] == 28_800
    assert row["times"]["planned_busy_s"] == 27_000


@pytest.mark.parametrize(
    ("start", "end", "first", "seconds"),
    [
        # 02:30 does not exist that night (02:00 -> 03:00): read at +01:00, it is 03:30 CEST.
        ("2026-03-29T02:30", "2026-03-29T04:00", "2026-03-29T01:30:00Z", 1_800),
        # 02:30 comes twice (03:00 -> 02:00): the first, at +02:00; 04:00 is at +01:00.
        ("2026-10-25T02:30", "2026-10-25T04:00", "2026-10-25T00:30:00Z", 9_000),
    ],
)
def test_a_local_time_the_clocks_skip_or_repeat_is_read_as_help_says(
    seeded: str, capsys: pytest.CaptureFixture[str], start: str, end: str, first: str, seconds: int
) -> None:
    row = _whole_range(capsys, seeded, start, end)
    assert row["start"] == first
    assert row["times"]["calendar_s"] == seconds


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--from", "2026-13-01", "--to", "2026-11-25"], "--from '2026-13-01' is not a date"),
        (["--from", "2026-11-25", "--to", "2026-11-24"], "the range is empty"),
        (["--from", "2025-01-01", "--to", "2026-11-25"], "longer than 400 days"),
        ([*DAY, "--place", "other/hall"], "--place other/hall is not in site rep"),
        ([*DAY, "--place", "rep/hall/l1", "--level", "area"], "--place rep/hall/l1 (a line)"),
        ([*DAY, "--place", "rep/hall", "--level", "site"], "--place rep/hall (an area)"),
        # The API's window, 1970-2200; never a traceback at datetime's limits.
        (["--from", "0001-01-02", "--to", "0001-01-03"], "--from 0001-01-02T00:00:00 is not betw"),
        (["--from", "0001-01-01T02:00+02:00", "--to", "0001-01-02"], "between 1970 and 2200"),
        (["--from", "0001-01-01", "--to", "0001-01-02"], "--from 0001-01-01T00:00:00 is not betw"),
        (["--from", "1900-01-01", "--to", "1900-02-01"], "--from 1900-01-01T00:00:00 is not betw"),
        (["--from", "1969-12-31T23:59Z", "--to", "1970-01-02"], "between 1970 and 2200"),
        (["--from", "2199-12-31", "--to", "2200-01-02"], "--to 2200-01-02T00:00:00 is not betw"),
        (["--from", "9999-12-30", "--to", "9999-12-31"], "between 1970 and 2200"),
        ([*DAY, "--place", "rep//l1"], "is not a place"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_code_2(
    seeded: str, capsys: pytest.CaptureFixture[str], args: list[str], words: str
) -> None:
    code, out, err = run(capsys, "report", "oee", "--site", "rep", *args, "--database-url", seeded)
    assert code == 2, err
    assert err.startswith("moldlab report oee: ")
    assert "Traceback" not in err
    assert words in err
    assert len(err.strip().splitlines()) == 1
    assert out == ""


def test_no_database_url_is_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "report", "oee", "--site", "rep", *DAY)
    assert code == 2
    assert "no database: give --database-url or set MOLDLAB_DATABASE_URL" in err


def test_an_unknown_site_is_exit_code_1(seeded: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "report", "oee", "--site", "nosuch", *DAY, "--database-url", seeded
    )
    assert code == 1
    assert err.strip() == "moldlab report oee: no machine under 'nosuch' has sent data"
    assert out == ""


def test_a_database_not_migrated_is_exit_code_1(
    database_server_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"moldlab_report_bare_{uuid.uuid4().hex[:8]}"
    url = create_database(database_server_url, name)
    try:
        for command in (["oee", "--site", "rep", *DAY], ["refresh"]):
            code, _, err = run(capsys, "report", *command, "--database-url", url)
            assert code == 1
            assert err.strip().endswith(
                "the database has no performance tables: run `moldlab db upgrade` first"
            )
    finally:
        drop_database(database_server_url, name)


def test_an_unreachable_database_is_one_line_and_exit_code_1(
    moldlab_cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    nowhere = f"postgresql://moldlab@127.0.0.1:{free_port()}/moldlab"
    result = moldlab_cli("report", "oee", "--site", "rep", *DAY, "--database-url", nowhere)
    assert result.returncode == 1
    assert result.stderr.startswith("moldlab report oee: cannot reach the database: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_refresh_rolls_up_with_a_progress_line_and_the_figures_stay(
    seeded: str, capsys: pytest.CaptureFixture[str]
) -> None:
    json_args = ["report", "oee", "--site", "rep", *DAY, "--json", "--database-url", seeded]
    code, before, err = run(capsys, *json_args)
    assert code == 0, err
    code, out, err = run(capsys, "report", "refresh", "--database-url", seeded)
    assert code == 0, err
    assert out.startswith("rollup: ")
    assert "slices of 1 machines recomputed" in out
    assert "rollup [########################] 1/1 machines" in err
    code, after, err = run(capsys, *json_args)
    assert code == 0, err
    rolled, raw = json.loads(after)["oee"], json.loads(before)["oee"]
    assert [r["from_rollup"] for r in rolled] == [r["slices"] for r in rolled]  # all rolled up
    for rows in (rolled, raw):
        for row in rows:
            row.pop("from_rollup")
    assert rolled == raw


@pytest.mark.parametrize("unbuffered", [False, True])
def test_a_reader_that_stops_early_ends_the_command_quietly(
    seeded: str, capsys: pytest.CaptureFixture[str], unbuffered: bool
) -> None:
    """`moldlab report oee ... | head -2`: two lines, no traceback, exit code 141."""
    args = [
        "report", "oee", "--site", "rep", "--from", "2025-11-01", "--to", "2026-11-25",
        "--bucket", "shift", "--json", "--database-url", seeded,
    ]  # fmt: skip
    code, out, err = run(capsys, *args)
    assert code == 0, err
    # Four times what a pipe holds (64 KiB): the command is still writing when head has gone.
    assert len(out) > 4 * 65_536
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOLDLAB_", "PYTHONUNBUF"))}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    command = subprocess.Popen(
        [sys.executable, "-m", "moldlab", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    assert command.stdout is not None
    head = subprocess.run(
        ["head", "-2"], stdin=command.stdout, capture_output=True, text=True, timeout=120
    )
    command.stdout.close()  # only head reads the pipe
    _, stderr = command.communicate(timeout=120)
    assert head.stdout.splitlines() == ["{", '  "oee": [']
    assert stderr.decode() == ""
    assert command.returncode == BROKEN_PIPE_EXIT == 141


def test_help_texts(moldlab_cli: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    top = moldlab_cli("--help")
    assert "    report " in top.stdout
    assert (
        "stops early (`moldlab report oee ... | head`) ends the command quietly with exit code 141"
        in (" ".join(top.stdout.split()))
    )
    for command, words in (
        (["report"], ["ISO 22400-2", "never average ratios"]),
        (
            ["report", "oee"],
            [
                "--micro-stops",
                "site's time zone",
                "excluded",
                "Exit codes",
                "from 1970 to 2200",
                "machine-hours",
                "A local time the clocks skip (02:30 on the night they go forward) is read with "
                "the offset in force before the change",
                "is its first occurrence",
                "141",
            ],
        ),
        (["report", "refresh"], ["MOLDLAB_API_PERFORMANCE_REFRESH_S", "stale"]),
        (["api"], ["MOLDLAB_API_PERFORMANCE_REFRESH_S", "MOLDLAB_MICRO_STOP_CONVENTION"]),
    ):
        result = moldlab_cli(*command, "--help")
        assert result.returncode == 0, result.stderr
        assert f"usage: moldlab {' '.join(command)}" in result.stdout
        text = " ".join(result.stdout.split())
        for word in words:
            assert word in text, (command, word)


def test_the_choices_are_the_analytics_values() -> None:
    assert tuple(b.value for b in Bucket) == report_cli.BUCKETS
    assert tuple(level.value for level in Level) == report_cli.LEVELS
    assert tuple(c.value for c in MicroStops) == report_cli.CONVENTIONS
