"""Poll intervals per register group in the gateway config: only groups the map has."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge import ConfigError, load_config

CONFIG = """\
gateway_id: pi-1
site: demo
area: hall-a
line: line-1
broker:
  url: mqtt://broker
machines:
  - machine_id: imm-01
    modbus:
      host: 10.0.0.5
      poll_interval_s: 2
"""


def _load(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(CONFIG + extra)
    return path


def test_groups_poll_at_their_interval_or_the_machine_s(tmp_path: Path) -> None:
    config = load_config(_load(tmp_path, "      poll_intervals_s: {status: 0.5}\n"))
    modbus = config.machines[0].modbus
    assert modbus is not None
    assert (modbus.interval_s("status"), modbus.interval_s("process")) == (0.5, 2.0)


def test_a_group_the_packaged_map_lacks_is_refused(tmp_path: Path) -> None:
    path = _load(tmp_path, "      poll_intervals_s:\n        status: 0.5\n        fast: 0.1\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == (
        f"{path}:12: machines[0].modbus.poll_intervals_s: no register group 'fast' in the "
        "register map (the packaged one); its groups: status, process, job"
    )


def test_the_groups_are_those_of_the_machine_s_own_map(tmp_path: Path) -> None:
    (tmp_path / "map.yaml").write_text(
        "registers:\n"
        "  - {name: TempOil, address: 7, type: float32, unit: degC, group: oil}\n"
        "  - {name: TempMould, address: 9, type: float32, unit: degC}\n"
    )
    own_map = "      register_map: map.yaml\n"
    config = load_config(_load(tmp_path, own_map + "      poll_intervals_s: {oil: 10}\n"))
    modbus = config.machines[0].modbus
    assert modbus is not None
    assert (modbus.interval_s("oil"), modbus.interval_s("default")) == (10.0, 2.0)

    path = _load(tmp_path, own_map + "      poll_intervals_s: {status: 1, oil: 10}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    problem = str(caught.value)
    assert ":13: machines[0].modbus.poll_intervals_s: no register group 'status'" in problem
    assert problem.endswith("its groups: oil, default")


def test_a_bad_map_is_reported_once_not_as_unknown_groups(tmp_path: Path) -> None:
    (tmp_path / "map.yaml").write_text(
        "registers: [{name: TempOil, address: 7, type: float32, unit: degC, group: Oil}]\n"
    )
    path = _load(tmp_path, "      register_map: map.yaml\n      poll_intervals_s: {oil: 10}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    (problem,) = str(caught.value).splitlines()
    assert ":12: machines[0].modbus.register_map: " in problem
    assert "registers[0].group: group 'Oil' is not a short name" in problem


def test_an_interval_must_be_positive(tmp_path: Path) -> None:
    path = _load(tmp_path, "      poll_intervals_s: {status: 0}\n")
    with pytest.raises(ConfigError, match=r":12: machines\[0\]\.modbus\.poll_intervals_s\.status"):
        load_config(path)
