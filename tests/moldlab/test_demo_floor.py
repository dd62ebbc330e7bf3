"""The demo's floor as processes: which machines speak MQTT, which an edge reads over Modbus."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from edge import load_config
from moldlab import demo
from moldlab.cli import _parser, main
from moldlab.demo_floor import RETROFIT_LINE, floor_parts
from moldlab.runner import command_name

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
    assert edge.gateway == "demo/hall-a/line-1/edge-line-1"  # its edge_status key

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


def test_the_demos_ingest_serves_its_metrics_on_a_free_port(tmp_path: Path) -> None:
    (ingest, port), (pdm, api) = demo._ingest(), demo._services(tmp_path)
    assert (ingest.name, pdm.name, api.name) == ("ingest", "pdm", "api")
    assert _parser().parse_args(ingest.args).metrics_port == port
    assert port not in (None, 9109)  # the default, which another ingest on this host may hold
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
    assert f"metrics at http://127.0.0.1:{port}/metrics" in ingest.role


def test_the_demo_stops_machines_then_the_gateway_then_ingest_then_the_api(
    tmp_path: Path,
) -> None:
    parts = [demo._ingest()[0], *demo._services(tmp_path), *floor_parts(None, tmp_path, BROKER)]
    groups = demo._stop_groups(parts)
    assert [[p.name for p in group] for group, _ in groups] == [
        ["pdm", "sim-mqtt", "sim-modbus"], ["edge"], ["ingest"], ["api"],
    ]  # fmt: skip
    budget_s = sum(budget for _, budget in groups) + demo._GOODBYE_WAIT_S
    assert budget_s + demo._BROKER_STOP_S + demo._POSTGRES_STOP_S < 10


@pytest.fixture
def restored_signals() -> Iterator[None]:
    saved = {signum: signal.getsignal(signum) for signum in demo._STOP_SIGNALS}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


@pytest.mark.usefixtures("restored_signals")
def test_sighup_stops_the_demo_like_sigterm() -> None:
    signals = demo._Signals()
    signals.check()  # nothing yet
    os.kill(os.getpid(), signal.SIGHUP)  # the terminal or SSH session closed
    with pytest.raises(demo._Stop, match="SIGHUP"):
        signals.check()
    # While it stops, further signals are ignored: none leaves half the stack running.
    assert all(signal.getsignal(s) == signal.SIG_IGN for s in demo._STOP_SIGNALS)


def test_one_demo_at_a_time_on_a_data_dir(tmp_path: Path) -> None:
    first = demo._claim(tmp_path)
    assert first is not None
    try:
        assert demo._claim(tmp_path) is None  # it would stop the first one's servers
        assert demo._holder(tmp_path) == f" (pid {os.getpid()})"
    finally:
        os.close(first)
    again = demo._claim(tmp_path)  # the lock goes with the demo
    assert again is not None
    os.close(again)


def test_logs_name_the_command_that_got_the_signal() -> None:
    assert command_name(["moldlab", "ingest", "--worker", "w1"]) == "moldlab ingest"
    assert command_name(["/x/__main__.py", "--log-level", "DEBUG", "sim", "-q"]) == "moldlab sim"
    assert command_name(["moldlab"]) == "moldlab"


def _status(url: str, key: str, *, online: bool) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO edge_status (time, edge_key, online, detail, source, seq, received_at)"
            " VALUES (%s, %s, %s, 'test', 'test', 1, clock_timestamp())",
            (datetime.now(UTC), key, online),
        )


@pytest.mark.infra
def test_ingest_is_stopped_once_the_gateways_goodbye_is_written(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    key = f"demo/hall-a/line-1/edge-{os.getpid()}"
    _status(database_url, key, online=True)  # its birth: the goodbye is not written yet
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, "moldlab.demo"):
        demo._wait_for_goodbyes(database_url, [key], time.monotonic() + 0.5)
    assert time.monotonic() - started >= 0.5  # waited for it, within its budget
    assert f"ingest did not write the goodbye of gateway {key} in time" in caplog.text
    caplog.clear()
    _status(database_url, key, online=False)  # the goodbye, written
    started = time.monotonic()
    demo._wait_for_goodbyes(database_url, [key], time.monotonic() + 5)
    assert time.monotonic() - started < 2
    assert caplog.text == ""
