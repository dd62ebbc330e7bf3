"""`moldlab bench edge`: the agent's CPU and memory beside a bare poller's, as text or JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from moldlab.bench_edge import Floor, ProcessFigures, Target, _print_figures
from moldlab.cli import main


@pytest.mark.infra
def test_bench_edge_json_has_every_figure(moldlab_cli: Callable[..., Any]) -> None:
    result = moldlab_cli("bench", "edge", "--json", "--windows", "2", "--window-s", "2")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["command"] == "moldlab bench edge --windows 2 --window-s 2 --json"
    assert figures["machine"]["cores"] >= 1

    floor = figures["floor"]
    assert floor["machines"] == 10
    assert floor["poll_interval_s"] == floor["telemetry_interval_s"] == 1.0
    assert floor["registers_per_machine"] == sum(c for _, c in floor["register_blocks"]) >= 40
    assert floor["broker"].startswith("mosquitto mqtt://127.0.0.1:")
    assert floor["simulator_command"].endswith("-m moldlab sim --machines 10 --modbus-port 0")

    agent, baseline = figures["agent"], figures["baseline"]
    assert "-m moldlab edge --config " in agent["command"]
    assert "-m moldlab.bench_edge poll --ports " in baseline["command"]
    assert baseline["command"].count(",") >= 9  # ten ports
    for p in (agent, baseline):
        assert p["windows"] == len(p["cpu_pct_windows"]) == len(p["rss_mb_windows"]) == 2
        assert p["window_s"] == 2.0
        assert 0.0 <= p["cpu_pct_median"] < 50.0
        assert min(p["cpu_pct_windows"]) <= p["cpu_pct_median"] <= max(p["cpu_pct_windows"])
        assert 10.0 < max(p["rss_mb_windows"]) <= p["peak_rss_mb"] < 500.0
        assert 0.0 < p["ready_s"] < 60.0
    # The agent does everything the bare poller does, and more: MQTT, JSON, SQLite.
    assert agent["cpu_pct_median"] > baseline["cpu_pct_median"]
    assert agent["peak_rss_mb"] > baseline["peak_rss_mb"]
    # At least one telemetry batch per machine per second reaches the broker.
    assert agent["messages_per_s_by_kind"]["telemetry"] >= 9.0
    assert agent["messages_per_s"] == pytest.approx(
        sum(agent["messages_per_s_by_kind"].values()), abs=0.1
    )
    assert baseline["messages_per_s"] is None

    targets = figures["targets"]
    assert targets["peak_rss_mb"] == {
        "target": 60.0, "figure": agent["peak_rss_mb"], "met": agent["peak_rss_mb"] < 60.0,
    }  # fmt: skip
    assert targets["cpu_pct_median"]["target"] == 10.0
    assert targets["cpu_pct_median"]["figure"] == agent["cpu_pct_median"]

    # Progress on stderr under --json: a line per phase and per window.
    progress = result.stderr
    assert "broker: mosquitto on mqtt://127.0.0.1:" in progress
    assert "agent: " in progress
    assert "baseline: " in progress
    assert progress.count("  window 1/2: cpu ") == progress.count("  window 2/2: cpu ") == 2
    assert "messages/s from the broker" in progress


def test_bench_edge_rejects_nonsense_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "edge", "--windows", "0"]) == 2
    assert "must be positive" in capsys.readouterr().err
    assert main(["bench", "edge", "--window-s", "-1"]) == 2
    assert "must be positive" in capsys.readouterr().err


def test_text_output_shows_both_processes_and_the_targets(
    capsys: pytest.CaptureFixture[str],
) -> None:
    floor = Floor(
        broker="mosquitto mqtt://127.0.0.1:1883", simulator_command="python -m moldlab sim",
        machines=10, registers_per_machine=68, register_blocks=[(0, 40), (100, 28)],
        poll_interval_s=1.0, telemetry_interval_s=1.0,
    )  # fmt: skip
    agent = ProcessFigures(
        name="agent", command="python -m moldlab edge --config /tmp/g.yaml", ready_s=1.2,
        windows=6, window_s=10.0, cpu_pct_median=11.25, cpu_pct_windows=[11.0, 11.5, 12.0],
        rss_mb_windows=[44.0, 44.5, 45.0], peak_rss_mb=45.2, messages_per_s=10.7,
        messages_per_s_by_kind={"cycle": 0.7, "telemetry": 10.0},
    )  # fmt: skip
    baseline = ProcessFigures(
        name="baseline", command="python -m moldlab.bench_edge poll --ports 1,2", ready_s=0.3,
        windows=6, window_s=10.0, cpu_pct_median=1.0, cpu_pct_windows=[0.9, 1.0, 1.1],
        rss_mb_windows=[26.0, 26.0, 26.0], peak_rss_mb=26.4, messages_per_s=None,
        messages_per_s_by_kind={},
    )  # fmt: skip
    targets = {
        "peak_rss_mb": Target(60.0, 45.2, True),
        "cpu_pct_median": Target(10.0, 11.25, False),
    }
    _print_figures(floor, agent, baseline, targets)
    out = capsys.readouterr().out
    assert (
        "edge agent, 10 machines x 68 holding registers (0-39, 100-127, the packaged map: at "
        "least the 40 asked) polled every 1 s, telemetry every 1 s"
    ) in out
    assert "  agent     python -m moldlab edge --config /tmp/g.yaml\n" in out
    assert (
        "  agent     cpu 11.2 % of one core, median of 6 windows of 10 s (min 11.0, max 12.0); "
        "peak rss 45.2 MB\n"
    ) in out
    assert "  baseline  cpu 1.0 % of one core" in out
    assert "  the agent beyond polling: +10.2 % cpu, +18.8 MB peak rss\n" in out
    assert "  messages  10.7/s delivered by the broker (cycle 0.7, telemetry 10.0)\n" in out
    assert "  peak rss < 60 MB: 45.2 MB, met\n" in out
    assert "  cpu < 10 % of one core: 11.2 %, MISSED\n" in out
