"""`moldlab bench sim`: figures with the command and the machine, as text or JSON."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from moldlab.bench import (
    ExportFigures,
    RealtimeFigures,
    _print_export,
    _print_realtime,
    cpu_seconds,
    machine,
    peak_rss_bytes,
)
from moldlab.cli import main


@pytest.mark.infra
def test_bench_sim_json_has_every_figure(moldlab_cli: Callable[..., Any]) -> None:
    argv = ["bench", "sim", "--json", "--seconds", "3", "--machines", "2", "--days", "0.2",
            "--runs", "2"]  # fmt: skip
    result = moldlab_cli(*argv)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert (
        figures["command"]
        == "moldlab bench sim --seconds 3 --machines 2 --days 0.2 --runs 2 --json"
    )
    assert figures["machine"]["cores"] >= 1
    assert figures["machine"]["cpu_model"]

    rt = figures["realtime"]
    assert "-m moldlab sim --machines 2 --mqtt-url mqtt://127.0.0.1:" in rt["command"]
    assert rt["machines"] == 2
    assert rt["windows"] == len(rt["cpu_pct_windows"]) == 3
    assert rt["window_s"] == 1.0
    assert 0.0 <= rt["cpu_pct_median"] < 50.0  # two machines idle most of the second
    assert rt["target_cpu_pct"] == 10.0
    assert 10.0 < rt["peak_rss_mb"] < 1000.0
    assert 1.0 <= rt["messages_per_s"] <= 10.0  # a telemetry batch a second each, some cycles

    ex = figures["export"]
    assert "-m moldlab sim --scenario faults --export " in ex["command"]
    assert ex["command"].endswith("--days 0.0333333")
    assert ex["machines"] == 6
    assert ex["machine_days"] == pytest.approx(0.2, rel=1e-4)
    assert len(ex["run_s"]) == 2
    assert min(ex["run_s"]) <= ex["median_s"] <= max(ex["run_s"])
    # median_s is printed to 0.01 s and the rate from the unrounded median: a 0.39 s median
    # may be 0.385 s, 1.3 % off.
    rounding = 0.005 / ex["median_s"]
    assert ex["machine_days_per_s"] == pytest.approx(
        ex["machine_days"] / ex["median_s"], rel=0.01 + rounding
    )
    assert ex["identical_runs"] is True
    assert ex["rows"]["signals"] == 6 * 288
    assert ex["target_s"] is None  # too small an export to judge against 60 s / 30 days
    assert ex["target_met"] is None


def test_bench_rejects_nonsense_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "sim", "--seconds", "0"]) == 2
    assert "must be positive" in capsys.readouterr().err


def test_text_output_shows_the_commands_figures_and_targets(
    capsys: pytest.CaptureFixture[str],
) -> None:
    realtime = RealtimeFigures(
        command="python -m moldlab sim --machines 20 --mqtt-url mqtt://127.0.0.1:1883",
        broker="mosquitto", machines=20, windows=6, window_s=10.0, cpu_pct_median=3.25,
        cpu_pct_windows=[3.0, 3.2, 3.3, 3.5, 3.1, 4.0], broker_cpu_pct_median=0.5,
        peak_rss_mb=61.2, messages_per_s=21.3, target_cpu_pct=10.0, target_met=True,
    )  # fmt: skip
    export = ExportFigures(
        command="python -m moldlab sim --scenario faults --export /tmp/x --days 5",
        scenario="faults", machines=6, days_per_machine=5.0, machine_days=30.0,
        median_s=61.0, run_s=[60.5, 61.0, 62.0], machine_days_per_s=0.49, identical_runs=True,
        rows={"cycles": 72971, "signals": 259200}, target_s=60.0, target_met=False,
    )  # fmt: skip
    _print_realtime(realtime)
    _print_export(export)
    out = capsys.readouterr().out
    assert "python -m moldlab sim --machines 20 --mqtt-url" in out
    assert (
        "cpu       3.2 % of one core, median of 6 windows of 10 s (min 3.0, max 4.0), "
        "broker 0.5 %; target < 10 %: met"
    ) in out
    assert "peak rss  61.2 MB" in out
    assert "6 machines x 5 days = 30 machine-days" in out
    assert "time      61.0 s, median of 3 runs (60.5, 61.0, 62.0); target < 60 s: MISSED" in out
    assert "rows      cycles 72,971, signals 259,200" in out
    assert "identical files in every run: yes" in out


def test_process_figures_from_proc() -> None:
    before = cpu_seconds(os.getpid())
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:  # burn 0.2 s of CPU
        pass
    assert cpu_seconds(os.getpid()) - before >= 0.1
    assert peak_rss_bytes(os.getpid()) > 10_000_000
    host = machine()
    assert host.cores == os.cpu_count()
    assert (
        host.python == f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
    )
