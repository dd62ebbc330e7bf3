"""The demo's floor as processes: which machines speak MQTT, which an edge reads over Modbus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge import load_config
from moldlab.cli import main
from moldlab.demo_floor import RETROFIT_LINE, floor_parts

BROKER = "mqtt://127.0.0.1:1883"


def _option(args: list[str], name: str) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args) if arg == name]


def test_the_demo_scenario_has_an_mqtt_line_and_a_modbus_line_read_by_a_gateway(
    tmp_path: Path,
) -> None:
    edge_dir = tmp_path / "edge"
    parts = floor_parts(None, edge_dir, BROKER)
    assert [p.name for p in parts] == ["sim-mqtt", "sim-modbus", "edge"]
    mqtt, modbus, edge = parts
    assert mqtt.args[:3] == ["sim", "--scenario", "demo"]
    assert _option(mqtt.args, "--line") == ["line-2"]
    assert "--modbus-port" not in mqtt.args
    assert "imm-02 (line-2): MQTT-native" in mqtt.role
    # Each sim seeds its first machine alike: imm-02 and imm-01 would stop in step.
    assert _option(mqtt.args, "--seed") != _option(modbus.args, "--seed")
    assert _option(modbus.args, "--line") == [RETROFIT_LINE]
    base = int(_option(modbus.args, "--modbus-port")[0])
    assert f"imm-01, imm-03 ({RETROFIT_LINE}): Modbus TCP only, on 127.0.0.1:{base}-" in modbus.role
    assert "gateway edge-line-1 reads imm-01, imm-03 over Modbus TCP" in edge.role

    config_path = Path(_option(edge.args, "--config")[0])
    assert config_path == edge_dir / "gateway.yaml"
    config = load_config(config_path)  # what `moldlab edge` itself accepts
    assert (config.site, config.area, config.line) == ("demo", "hall-a", "line-1")
    assert config.broker.url == BROKER
    assert config.outbox.path == edge_dir / "outbox.sqlite"  # kept across restarts
    machines = [(m.machine_id, m.modbus.port if m.modbus else None) for m in config.machines]
    assert machines == [("imm-01", base), ("imm-03", base + 1)]  # the sim's order and ports
    assert config.metrics.port == 0  # never a clash with another gateway on 9108


def test_a_built_in_floor_is_split_by_line_too(tmp_path: Path) -> None:
    mqtt, modbus, _edge = floor_parts(5, tmp_path, BROKER)
    assert mqtt.args[:3] == ["sim", "--machines", "5"]
    assert _option(mqtt.args, "--line") == ["line-2"]
    assert mqtt.role.startswith("imm-02, imm-04 ")
    assert modbus.role.startswith("imm-01, imm-03, imm-05 ")
    ids = [m.machine_id for m in load_config(tmp_path / "gateway.yaml").machines]
    assert ids == ["imm-01", "imm-03", "imm-05"]
    # One machine: all of it on the retrofitted line, no MQTT process.
    assert [p.name for p in floor_parts(1, tmp_path, BROKER)] == ["sim-modbus", "edge"]


def test_a_long_list_of_machines_is_bounded_in_the_log_line(tmp_path: Path) -> None:
    mqtt, *_ = floor_parts(40, tmp_path, BROKER)
    assert mqtt.role.startswith("imm-02, imm-04, imm-06, imm-08, imm-10, imm-12 and 14 more ")


def test_sim_line_runs_only_the_machines_of_that_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["sim", "--scenario", "demo", "--line", "line-1", "--export", str(out), "--days", "0.01"]
    assert main(argv) == 0, capsys.readouterr().err
    assert json.loads((out / "manifest.json").read_text())["machines"] == ["imm-01", "imm-03"]


def test_sim_line_that_no_machine_is_on_is_a_clear_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["sim", "--scenario", "demo", "--line", "line-9", "--line", "x"]) == 2
    assert "no machine on line-9, x; lines: line-1, line-2" in capsys.readouterr().err
