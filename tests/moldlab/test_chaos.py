"""`moldlab chaos --short`: the whole data path under every fault in turn, nothing lost."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from moldlab.chaos import Report, SourceCount
from moldlab.servers import create_database, drop_database

pytestmark = [pytest.mark.infra, pytest.mark.slow]


def test_a_short_chaos_run_loses_and_duplicates_nothing(scratch_dir: Path) -> None:
    external = os.environ.get("MOLDLAB_TEST_DATABASE_URL")
    name = f"chaos_{uuid.uuid4().hex[:8]}"
    home = scratch_dir / name  # where the postgres user may enter, as root too
    home.mkdir(mode=0o755)
    args = [sys.executable, "-m", "moldlab", "chaos", "--short", "--dir", str(home)]
    if external:  # TimescaleDB, say: its server is not ours to stop (no database fault)
        args += ["--database-url", create_database(external, name)]
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=600, check=False)
    finally:
        if external:
            drop_database(external, name)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    out = done.stdout
    assert out.startswith("$ moldlab chaos --short\n")
    assert "lost 0, duplicated 0" in out
    for fault in (
        "broker stopped",
        "ingest SIGKILLed",
        "gateway SIGKILLed while the broker",
        "Modbus machine gone",
        "network cut",
        "broker restarted while ingest",
    ):
        assert fault in out, fault
    assert ("database stopped" in out) != bool(external)
    assert "NOT RECOVERED" not in out
    assert "fault: " in done.stderr  # progress as it goes


def test_the_report_counts_a_missing_number_as_lost() -> None:
    report = Report(sources=[SourceCount("gw0:imm-00", 10, 19, 9, 0)])
    assert (report.lost, report.duplicated) == (1, 0)
    assert report.lines()[-1] == "lost 1, duplicated 0"


def test_a_directory_postgres_cannot_use_is_one_line(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("as another user than root, PostgreSQL runs as that user: no such error")
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    done = subprocess.run(
        [sys.executable, "-m", "moldlab", "chaos", "--short", "--dir", str(closed / "run")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1].startswith("moldlab chaos: PostgreSQL cannot run as root")
