"""The register map: validation, block grouping and register encoding (pure)."""

from __future__ import annotations

import copy
import re
from importlib import resources
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from contracts import ContractError, MachineState
from contracts.registers import MAX_READ_REGISTERS, Block, RegisterMap

PACKAGED: dict[str, Any] = yaml.safe_load(
    (resources.files("contracts") / "registers.yaml").read_text()
)
SAMPLE = {
    "TempZone1": 45.31,
    "TempZone2": 200.07,
    "TempZone3": 214.66,
    "TempNozzle": 229.87,
    "TempMould": 44.9,
    "TempOil": 42.13,
    "PressureHydraulic": 141.52,
    "MotorPower": 18.25,
    "CounterShots": 123_456_789.0,
    "CounterGood": 120_000_000.0,
    "CounterBad": 70_000.0,
}


def _image(words_by_address: dict[int, list[int]]) -> dict[int, int]:
    return {a + i: w for a, words in words_by_address.items() for i, w in enumerate(words)}


def _read(register_map: RegisterMap, image: dict[int, int]) -> dict[str, float]:
    values: dict[str, float] = {}
    for block in register_map.blocks():
        words = [image[a] for a in range(block.start, block.start + block.count)]
        values.update(register_map.decode(block.start, words))
    return values


def _map_with(*registers: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"registers": list(registers), "states": {1: "running"}, **extra}


def test_packaged_map_reads_in_two_blocks() -> None:
    register_map = RegisterMap.model_validate(PACKAGED)
    assert register_map.blocks() == [Block(0, 8), Block(100, 16)]
    assert register_map.state_code(MachineState.OFFLINE) == 0
    assert set(register_map.states.values()) == set(MachineState)


def test_round_trip_gives_the_values_back() -> None:
    register_map = RegisterMap.model_validate(PACKAGED)
    values = {**SAMPLE, "State": 5.0, "StandstillReason": 2.0}
    decoded = _read(register_map, _image(register_map.encode(values)))
    assert decoded == values  # float32 values come back rounded to the 7 digits they carry
    assert register_map.state_from(decoded) == (MachineState.UNPLANNED_STOP, "mould_fault")


def test_word_order_and_scale() -> None:
    register_map = RegisterMap.model_validate(
        _map_with(
            {"name": "CounterShots", "address": 10, "type": "uint32", "word_order": "CDAB"},
            {"name": "TempMould", "address": 12, "type": "uint16", "scale": 0.1, "unit": "degC"},
        )
    )
    words = register_map.encode({"CounterShots": 0x0001_0002, "TempMould": 45.3})
    assert words == {10: [0x0002, 0x0001], 12: [453]}
    assert register_map.decode(10, [2, 1, 453]) == {"CounterShots": 65538.0, "TempMould": 45.3}


def test_decode_takes_only_registers_wholly_in_the_block() -> None:
    register_map = RegisterMap.model_validate(PACKAGED)
    assert register_map.decode(0, [1, 0, 0]) == {"State": 1.0, "StandstillReason": 0.0}
    assert register_map.decode(3, [0, 7]) == {}  # CounterShots split across the block start


def test_unknown_codes() -> None:
    register_map = RegisterMap.model_validate(PACKAGED)
    assert register_map.state_from({"State": 1, "StandstillReason": 99}) == (
        MachineState.RUNNING,
        "code_99",
    )
    with pytest.raises(ContractError, match="unknown State code 42"):
        register_map.state_from({"State": 42})
    with pytest.raises(ContractError, match="no code for standstill reason"):
        register_map.reason_code("alien_abduction")


@pytest.mark.parametrize("value", [-1.0, 2.0**32, float("nan")])
def test_a_counter_that_does_not_fit_is_refused(value: float) -> None:
    register_map = RegisterMap.model_validate(PACKAGED)
    with pytest.raises(ContractError, match="CounterBad"):
        register_map.encode({"CounterBad": value})


def test_blocks_stay_within_the_limit() -> None:
    register_map = RegisterMap.model_validate(PACKAGED)
    blocks = register_map.blocks(max_registers=5)
    assert all(b.count <= 5 for b in blocks)
    covered = {a for b in blocks for a in range(b.start, b.start + b.count)}
    assert covered == {a for r in register_map.registers for a in range(r.address, r.end)}
    assert max(b.count for b in register_map.blocks()) <= MAX_READ_REGISTERS
    with pytest.raises(ValueError, match="max_registers"):
        register_map.blocks(max_registers=1)


def _moved(register: str, /, **changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(PACKAGED)
    entry = next(r for r in data["registers"] if r["name"] == register)
    entry.update(changes)
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_moved("TempZone2", address=101), "TempZone1 (100-101) overlaps TempZone2 (101-102)"),
        (_moved("TempZone2", adress=300), "Extra inputs are not permitted"),
        ({**PACKAGED, "version": 2}, "Extra inputs are not permitted"),
        (_moved("TempZone2", address=65536), "less than or equal to 65535"),
        (_moved("TempZone2", address=-1), "greater than or equal to 0"),
        (_moved("CounterBad", address=65535), "runs past register 65535"),
        (_moved("TempZone2", type="float64"), "'uint16', 'uint32' or 'float32'"),
        (_moved("TempZone2", name="TempZone9"), "'TempZone9' is neither a signal"),
        (_moved("TempZone2", unit="degF"), "TempZone2 is in 'degC', not 'degF'"),
        (_moved("TempZone2", name="TempZone1", address=300), "named more than once"),
        (_moved("State", type="uint32"), "State must be a uint16"),
        ({**PACKAGED, "states": {}}, "needs a `states` table"),
        ({**PACKAGED, "states": {0: "asleep"}}, "Input should be 'running'"),
    ],
)
def test_invalid_maps_are_refused(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        RegisterMap.model_validate(data)
