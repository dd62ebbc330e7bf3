"""Loading the gateway config: the example loads, mistakes name file, line and field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edge import ConfigError, GatewayConfig, load_config, load_register_map

EXAMPLE = Path(__file__).parents[2] / "deploy" / "edge" / "gateway.example.yaml"

GOOD = """\
gateway_id: pi-1
site: demo
area: hall-a
line: line-1
broker:
  url: mqtt://user:k7-plant@broker:1884
  password: other
machines:
  - machine_id: imm-01
    modbus:
      host: 10.0.0.5
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(text)
    return path


def test_the_example_config_loads() -> None:
    config = load_config(EXAMPLE)
    assert [m.machine_id for m in config.machines] == ["imm-01", "imm-02", "imm-03"]
    assert config.machines[2].mqtt is not None
    modbus = config.machines[1].modbus
    assert modbus is not None
    assert modbus.port == 502
    assert modbus.register_map is None


def test_defaults_and_broker_credentials(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, GOOD))
    modbus = config.machines[0].modbus
    assert modbus is not None
    assert (modbus.unit_id, modbus.poll_interval_s, config.telemetry_interval_s) == (1, 1.0, 1.0)
    endpoint = config.broker.endpoint()
    assert (endpoint.host, endpoint.port, endpoint.username, endpoint.password) == (
        "broker",
        1884,
        "user",
        "other",
    )
    assert "other" not in repr(config)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "      host: 10.0.0.5\n",
            "      host: 10.0.0.5\n      port: 70000\n",
            ":12: machines[0].modbus.port: Input should be less than or equal to 65535",
        ),
        (
            "      host: 10.0.0.5\n",
            "      host: 10.0.0.5\n      pol_interval_s: 2\n",
            ":12: machines[0].modbus.pol_interval_s: Extra inputs are not permitted",
        ),
        ("  - machine_id: imm-01\n", "  - machine_id: imm 01\n", ":9: machines[0].machine_id: "),
        ("  url: mqtt://user:k7-plant@broker:1884\n", "  url: http://broker\n", ":6: broker.url: "),
        ("site: demo\n", "", ":1: site: Field required"),
        (
            "      host: 10.0.0.5\n",
            "      host: 10.0.0.5\n      poll_interval_s: -1\n",
            ":12: machines[0].modbus.poll_interval_s: Input should be greater than 0",
        ),
    ],
)
def test_a_malformed_config_names_line_and_field(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    path = _write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}{expected}")


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nowhere\.yaml: no such file"):
        load_config(tmp_path / "nowhere.yaml")


def test_not_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"gateway.yaml:3: not valid YAML"):
        load_config(_write(tmp_path, "site: demo\nbroker: {url: x\nmachines: [\n"))


def test_duplicate_machine_ids(tmp_path: Path) -> None:
    text = GOOD + "  - machine_id: imm-01\n    modbus: {host: 10.0.0.6}\n"
    with pytest.raises(ConfigError, match=r":1: config: .* differ .*\['imm-01'\]"):
        load_config(_write(tmp_path, text))


def test_register_map_path_is_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "map.yaml").write_text(
        "registers: [{name: TempOil, address: 7, type: float32, unit: degC}]\n"
    )
    text = GOOD.replace(
        "      host: 10.0.0.5\n", "      host: 10.0.0.5\n      register_map: map.yaml\n"
    )
    config: GatewayConfig = load_config(_write(tmp_path, text))
    modbus = config.machines[0].modbus
    assert modbus is not None
    path = modbus.register_map
    assert path == tmp_path / "map.yaml"
    assert [r.name for r in load_register_map(path).registers] == ["TempOil"]


def test_a_bad_register_map_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "map.yaml"
    path.write_text("registers: [{name: TempOil, address: 7, type: float64, unit: degC}]\n")
    with pytest.raises(ConfigError, match=r"map.yaml: registers\[0\].type: Input should be"):
        load_register_map(path)
    with pytest.raises(ConfigError, match="no such file"):
        load_register_map(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (  # a register map that is not there
            "      host: 10.0.0.5\n",
            "      host: 10.0.0.5\n      register_map: nowhere.yaml\n",
            r":12: machines\[0\]\.modbus\.register_map: .*nowhere\.yaml: no such file",
        ),
        (  # a register map whose registers overlap
            "      host: 10.0.0.5\n",
            "      host: 10.0.0.5\n      register_map: overlapping.yaml\n",
            r":12: machines\[0\]\.modbus\.register_map: .*TempOil \(0-1\) overlaps TempMould",
        ),
        (  # neither source
            "    modbus:\n      host: 10.0.0.5\n",
            "",
            r":9: machines\[0\]: .*either `modbus` or `mqtt`",
        ),
        (
            "    modbus:\n      host: 10.0.0.5\n",
            "    mqtt: {url: 'mqtt://10.0.0.9', topic: 'imm/#'}\n"
            "    modbus:\n      host: 10.0.0.5\n",
            r":9: machines\[0\]: .*either `modbus` or `mqtt`",
        ),
        (
            "    modbus:\n      host: 10.0.0.5\n",
            "    mqtt: {url: 'mqtt://10.0.0.9'}\n",
            r":10: machines\[0\]\.mqtt\.topic: Field required",
        ),
        (  # TLS files must be there, and TLS needs mqtts://
            "  password: other\n",
            "  password: other\n  tls: {ca_file: plant-ca.pem}\n",
            r":8: broker\.tls\.ca_file: .*plant-ca\.pem: no such file",
        ),
        (
            "  password: other\n",
            "  password: other\n  tls: {}\n",
            r":5: broker: .*`tls` needs an mqtts:// url",
        ),
        (
            "machines:\n",
            "outbox: {max_mb: 0}\nmachines:\n",
            r":8: outbox\.max_mb: Input should be greater than 0",
        ),
        (
            "machines:\n",
            "outbox: {synchronous: off}\nmachines:\n",
            r":8: outbox\.synchronous: Input should be 'full' or 'normal'",
        ),
        (
            "machines:\n",
            "metrics: {port: 99999}\nmachines:\n",
            r":8: metrics\.port: Input should be less than or equal to 65535",
        ),
    ],
)
def test_sources_files_and_sections_are_checked_at_start_up(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    (tmp_path / "overlapping.yaml").write_text(
        "registers:\n"
        "  - {name: TempOil, address: 0, type: float32, unit: degC}\n"
        "  - {name: TempMould, address: 1, type: float32, unit: degC}\n"
    )
    assert old in GOOD
    path = _write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert re.match(f"{re.escape(str(path))}{expected}", str(caught.value)), caught.value


def test_an_mqtt_native_machine_tls_files_and_the_outbox(tmp_path: Path) -> None:
    (tmp_path / "plant-ca.pem").write_text("not read until connecting")
    text = (
        GOOD.replace("mqtt://user:k7-plant@broker:1884", "mqtts://broker").replace(
            "  password: other\n", "  password: other\n  tls: {ca_file: plant-ca.pem}\n"
        )
        + "  - machine_id: imm-02\n"
        "    mqtt: {url: 'mqtt://127.0.0.1:1884', topic: 'moldlab/v1/+/+/+/imm-02/+'}\n"
        "outbox: {path: /var/lib/moldlab/outbox.sqlite, max_mb: 256, drain_rate_per_s: 50}\n"
    )
    config = load_config(_write(tmp_path, text))
    assert config.broker.tls is not None
    assert config.broker.tls.ca_file == tmp_path / "plant-ca.pem"
    mqtt = config.machines[1].mqtt
    assert mqtt is not None
    assert (mqtt.endpoint().host, mqtt.endpoint().port) == ("127.0.0.1", 1884)
    assert (config.outbox.max_mb, config.outbox.drain_rate_per_s) == (256, 50)
    assert config.outbox.synchronous == "full"
    assert (config.metrics.enabled, config.metrics.port) == (True, 9108)
