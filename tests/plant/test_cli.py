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
