"""`moldlab plant` as an engineer meets it: --help that says what it does, --check, bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from simulators.scenario import PACKAGED


def _moldlab(*args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MOLDLAB_")}
    return subprocess.run(
        [sys.executable, "-m", "moldlab", *args],
        capture_output=True, text=True, timeout=60, env=clean,
    )  # fmt: skip


@pytest.mark.parametrize("command", [["plant"], ["plant", "load"], ["plant", "show"]], ids=" ".join)
def test_every_plant_subcommand_has_a_useful_help(command: list[str]) -> None:
    result = _moldlab(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert f"usage: moldlab {' '.join(command)}" in result.stdout
    assert len(result.stdout.split()) > 40


def test_the_top_level_help_lists_plant() -> None:
    assert "    plant " in _moldlab("--help").stdout


def test_check_validates_without_a_database_and_a_bad_file_exits_2(tmp_path: Path) -> None:
    ok = _moldlab("plant", "load", "--check", str(PACKAGED / "demo-plant.yaml"))
    assert ok.returncode == 0, ok.stderr
    assert "1 sites, 5 moulds, 3 machines: ok" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("sites:\n  - id: s\n    timezone: UTC\n    calendar: {shifts: []}\n")
    result = _moldlab("plant", "load", "--check", str(bad))
    assert result.returncode == 2
    assert result.stderr.startswith(f"{bad}:4: sites[0].calendar.shifts: List should have at")
    assert len(result.stderr.splitlines()) == 1


def test_without_a_database_url_the_error_says_how_to_give_one() -> None:
    result = _moldlab("plant", "show")
    assert result.returncode == 2
    assert "MOLDLAB_DATABASE_URL" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.infra
def test_a_database_without_the_schema_is_a_clear_error(database_server_url: str) -> None:
    import uuid

    from moldlab.servers import create_database, drop_database

    name = f"moldlab_plant_empty_{uuid.uuid4().hex[:8]}"
    url = create_database(database_server_url, name)
    try:
        result = _moldlab("plant", "show", "--database-url", url)
    finally:
        drop_database(database_server_url, name)
    assert result.returncode == 1
    assert "no plant tables: run `moldlab db upgrade` first" in result.stderr


def _good(tmp_path: Path, effective_from: str = "") -> Path:
    text = (PACKAGED / "demo-plant.yaml").read_text()
    path = tmp_path / "plant.yaml"
    path.write_text(f"effective_from: {effective_from}\n{text}" if effective_from else text)
    return path


def test_an_impossible_date_exits_2_with_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "sites:\n  - id: s\n    timezone: UTC\n    calendar:\n"
        "      shifts: [{name: a, start: 06:00, end: 14:00}]\n"
        "      holidays: [2026-02-30]\n"
    )
    result = _moldlab("plant", "load", "--check", str(bad))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{bad}:6: sites[0].calendar.holidays[0]: 2026-02-30 is not a date: day is out of "
        "range for month"
    ]


def test_an_endless_file_exits_2_without_being_read_whole(tmp_path: Path) -> None:
    result = _moldlab("plant", "load", "--check", "/dev/zero")
    assert result.returncode == 2
    assert result.stderr == (
        "/dev/zero: the file is more than 1,048,576 bytes (1 MiB), the most a plant file may be\n"
    )


def test_the_help_states_the_bounds() -> None:
    text = " ".join(_moldlab("plant", "load", "--help").stdout.split())
    assert "at most 1 MiB, 100 sites, 50 shifts and 2,000 holidays a site" in text
    assert "10,000 moulds, 2,000 machines and 2,000 gateways" in text
    assert "(the first 20, then how many more)" in text


def test_many_problems_print_twenty_lines_and_a_count(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    shift = "        - {name: same, start: '06:00', end: '14:00'}\n"
    bad.write_text(
        "sites:\n  - id: s\n    timezone: UTC\n    calendar:\n      shifts:\n" + shift * 50
    )
    result = _moldlab("plant", "load", "--check", str(bad))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 21
    assert lines[-1] == "... and 78 more problems"


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ("9999-12-31T23:59Z", "9999-12-31T23:59:00+00:00 is more than 366 days ahead of now"),
        ("1969-12-31T23:59Z", "1969-12-31T23:59:00+00:00 is before 1970"),
    ],
)
def test_an_effective_time_out_of_range_exits_2(tmp_path: Path, given: str, problem: str) -> None:
    good = _good(tmp_path)
    result = _moldlab("plant", "load", "--check", "--effective-from", given, str(good))
    assert result.returncode == 2
    assert result.stderr.startswith(f"moldlab plant load: --effective-from {given}: {problem}")
    in_file = _good(tmp_path, given)
    result = _moldlab("plant", "load", "--check", str(in_file))
    assert result.returncode == 2
    assert result.stderr.startswith(f"{in_file}:1: effective_from: {problem}")
    assert len(result.stderr.splitlines()) == 1


def test_a_near_effective_time_in_the_file_checks_ok(tmp_path: Path) -> None:
    soon = _good(tmp_path, "2026-12-01 06:00:00 +1")
    result = _moldlab("plant", "load", "--check", str(soon))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("command", [["show"], ["load", "PLANT"]], ids=" ".join)
@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("not-a-url", 'missing "=" after "not-a-url" in connection info string'),
        ("postgresql://moldlab:s3cret@db/moldlab?bogus=1", 'invalid URI query parameter: "bogus"'),
        ("postgres//moldlab:s3cret@db", 'missing "=" after "<the URL>" in connection'),
    ],
)
def test_a_malformed_database_url_is_one_clear_line(
    tmp_path: Path, command: list[str], url: str, shown: str
) -> None:
    args = [str(_good(tmp_path)) if a == "PLANT" else a for a in command]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MOLDLAB_")}
    result = subprocess.run(
        [sys.executable, "-m", "moldlab", "plant", *args],
        capture_output=True, text=True, timeout=60, env={**clean, "MOLDLAB_DATABASE_URL": url},
    )  # fmt: skip
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(
        f"moldlab plant {command[0]}: the database URL (--database-url or MOLDLAB_DATABASE_URL) "
        f"is not valid: {shown}"
    )
    assert line.endswith("; give postgresql://USER@HOST:PORT/DATABASE")
    assert "s3cret" not in line
