"""The `moldlab` command as an operator meets it: --help everywhere, clear errors, db upgrade."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from moldlab.servers import create_database, drop_database
from store import head_revision

COMMANDS = [["demo"], ["sim"], ["edge"], ["ingest"], ["api"], ["db"], ["db", "upgrade"]]


def _moldlab(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MOLDLAB_")}
    return subprocess.run(
        [sys.executable, "-m", "moldlab", *args],
        capture_output=True, text=True, timeout=60, env={**clean, **(env or {})},
    )  # fmt: skip


def test_top_level_help_lists_every_subcommand() -> None:
    result = _moldlab("--help")
    assert result.returncode == 0
    for command in ("demo", "sim", "edge", "ingest", "api", "db"):
        assert f"    {command} " in result.stdout


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_subcommand_has_a_useful_help(command: list[str]) -> None:
    result = _moldlab(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert f"usage: moldlab {' '.join(command)}" in result.stdout
    assert len(result.stdout.split()) > 25  # says what it does, not only its options


def test_missing_database_url_is_a_clear_error() -> None:
    result = _moldlab("ingest")
    assert result.returncode == 2
    assert "MOLDLAB_DATABASE_URL: Field required" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.infra
def test_db_upgrade_migrates_a_fresh_database(database_server_url: str) -> None:
    name = f"moldlab_cli_{uuid.uuid4().hex[:8]}"
    url = create_database(database_server_url, name)
    try:
        result = _moldlab("db", "upgrade", "--database-url", url)
        assert result.returncode == 0, result.stderr
        assert "newest schema" in result.stdout
        again = _moldlab("db", "upgrade", env={"MOLDLAB_DATABASE_URL": url})
        assert again.returncode == 0, again.stderr
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        assert row == (head_revision(),)
    finally:
        drop_database(database_server_url, name)


def test_edge_check_validates_a_config_and_exits(tmp_path: Path) -> None:
    example = Path(__file__).parents[2] / "deploy" / "edge" / "gateway.example.yaml"
    good = _moldlab("edge", "--config", str(example), "--check")
    assert good.returncode == 0, good.stderr
    assert "gateway pi-hall-a-1, 3 machines: ok" in good.stdout

    bad = tmp_path / "gateway.yaml"
    bad.write_text(example.read_text().replace("port: 502", "port: 70000"))
    result = _moldlab("edge", "--config", str(bad), "--check")
    assert result.returncode == 2
    assert f"{bad}:" in result.stderr
    assert "machines[0].modbus.port: Input should be less than or equal to 65535" in result.stderr
    assert "Traceback" not in result.stderr


def test_edge_with_an_outbox_it_cannot_open_is_a_clear_error(tmp_path: Path) -> None:
    example = Path(__file__).parents[2] / "deploy" / "edge" / "gateway.example.yaml"
    (tmp_path / "a-file").write_text("")
    config = tmp_path / "gateway.yaml"
    config.write_text(
        example.read_text().replace("path: outbox.sqlite", f"path: {tmp_path}/a-file/outbox.sqlite")
    )
    result = _moldlab("edge", "--config", str(config))
    assert result.returncode == 1
    assert f"outbox {tmp_path}/a-file/outbox.sqlite: cannot open" in result.stderr
    assert "Traceback" not in result.stderr
