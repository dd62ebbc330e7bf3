"""The register map: validation, register groups and blocks, register encoding (pure)."""

from __future__ import annotations

import copy
import re
from importlib import resources
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from contracts import (
    ALARM_BITS,
    CYCLE_PARAMETERS,
    SIGNALS,
    STANDSTILL_REASONS,
    ContractError,
    MachineState,
    PartQuality,
)
from contracts.registers import MAX_READ_REGISTERS, Block, RegisterMap

PACKAGED: dict[str, Any] = yaml.safe_load(
    (resources.files("contracts") / "registers.yaml").read_text()
)
SAMPLE = {  # every signal, counter and AlarmWord, as a model samples them
    "TempZone1": 45.31,
    "TempZone2": 200.07,
    "TempZone3": 214.66,
    "TempZone4": 224.93,
    "TempNozzle": 229.87,
    "HeaterOutputZone2": 41.3,
    "HeaterOutputZone3": 44.8,
    "HeaterOutputZone4": 47.1,
    "HeaterOutputNozzle": 100.0,
    "TempMould": 44.9,
    "TempOil": 42.13,
    "PressureHydraulic": 141.5,
    "ScrewPosition": 41.27,
    "MotorPower": 18.25,
    "CounterShots": 123_456_789.0,
    "CounterGood": 120_000_000.0,
    "CounterBad": 70_000.0,
    "CounterMould": 1_240_311.0,
    "AlarmWord": 0b100_0011,
}
LAST_CYCLE = {  # the per-cycle parameters, as the model rounds them
    "CycleTime": 15.912,
    "InjectionTime": 0.613,
    "DosingTime": 3.561,
    "CoolingTime": 8.04,
    "CushionVolume": 62.233,
    "CushionStroke": 4.953,
    "PlastificationVolume": 759.51,
    "SpecificPressureMaximum": 912.4,
    "HoldPressure": 448.9,
    "MeltTemperature": 232.71,
    "MouldTemperature": 37.02,
    "EjectionForceMaximum": 8.13,
    "CycleEnergy": 0.0412,
    "PartWeight": 11.987,
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
    assert register_map.blocks() == [Block(0, 40, "status"), Block(100, 28, "process")]
    assert register_map.groups == ("status", "process")
    assert register_map.state_code(MachineState.OFFLINE) == 0
    assert set(register_map.states.values()) == set(MachineState)


def test_packaged_map_has_every_signal_and_cycle_parameter() -> None:
    names = {r.name for r in RegisterMap.model_validate(PACKAGED).registers}
    expected = {s.name for s in SIGNALS} | set(CYCLE_PARAMETERS)
    assert names == expected | {"State", "StandstillReason", "CycleQuality"}


def test_packaged_map_has_a_code_for_every_standstill_reason() -> None:
    register_map = RegisterMap.model_validate(PACKAGED)
    reasons = [reason for by_state in STANDSTILL_REASONS.values() for reason in by_state]
    assert sorted(register_map.reasons.values()) == sorted(reasons)
    for reason in reasons:
        assert register_map.reasons[register_map.reason_code(reason)] == reason


def test_packaged_alarms_are_the_contracts_alarm_bits() -> None:
    assert RegisterMap.model_validate(PACKAGED).alarms == ALARM_BITS


def test_round_trip_gives_the_values_back() -> None:
    register_map = RegisterMap.model_validate(PACKAGED)
    values = {
        **SAMPLE,
        **LAST_CYCLE,
        "State": 5.0,
        "StandstillReason": 2.0,
        "CycleQuality": 2.0,
    }
    decoded = _read(register_map, _image(register_map.encode(values)))
    assert decoded == values  # float32 values come back rounded to the 7 digits they carry
    assert register_map.state_from(decoded) == (MachineState.UNPLANNED_STOP, "mould_fault")
    assert register_map.quality_from(decoded) is PartQuality.BAD


@pytest.mark.parametrize("quality", list(PartQuality))
def test_quality_code_and_quality_from_round_trip(quality: PartQuality) -> None:
    register_map = RegisterMap.model_validate(PACKAGED)
    code = register_map.quality_code(quality)
    assert code > 0
    assert register_map.quality_from({"CycleQuality": float(code)}) is quality


def test_no_cycle_yet_is_quality_code_0() -> None:
    register_map = RegisterMap.model_validate(PACKAGED)
    assert register_map.quality_code(None) == 0
    assert register_map.quality_from({"CycleQuality": 0.0}) is None
    assert register_map.quality_from({}) is None  # values read without the word


def test_unknown_quality_codes() -> None:
    register_map = RegisterMap.model_validate(PACKAGED)
    with pytest.raises(ContractError, match="unknown CycleQuality code 9"):
        register_map.quality_from({"CycleQuality": 9.0})
    only_good = RegisterMap.model_validate({**PACKAGED, "qualities": {1: "good"}})
    with pytest.raises(ContractError, match="no code for part quality 'test'"):
        only_good.quality_code(PartQuality.TEST)


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


def test_blocks_never_span_two_groups() -> None:
    def degc(name: str, address: int, **group: str) -> dict[str, Any]:
        return {"name": name, "address": address, "type": "float32", "unit": "degC", **group}

    register_map = RegisterMap.model_validate(
        _map_with(
            degc("TempZone1", 0),
            degc("TempOil", 2, group="slow"),
            degc("TempMould", 4),
            degc("TempZone2", 6),
            degc("TempNozzle", 8, group="slow"),
        )
    )
    assert register_map.groups == ("default", "slow")  # a register that names none: "default"
    assert register_map.group_of("TempOil") == "slow"
    assert register_map.group_of("CounterShots") is None
    assert register_map.blocks() == [
        Block(0, 2, "default"),
        Block(2, 2, "slow"),
        Block(4, 4, "default"),
        Block(8, 2, "slow"),
    ]
    assert register_map.blocks(max_registers=3) == [
        Block(0, 2, "default"),
        Block(2, 2, "slow"),
        Block(4, 2, "default"),
        Block(6, 2, "default"),
        Block(8, 2, "slow"),
    ]


def test_blocks_of_a_large_group_stay_within_the_limit() -> None:
    registers = [
        {"name": name, "address": 2 * i, "type": "float32", "unit": unit, "group": "big"}
        for i, (name, unit) in enumerate(CYCLE_PARAMETERS.items())
    ]
    register_map = RegisterMap.model_validate(_map_with(*registers))
    assert register_map.blocks(max_registers=10) == [
        Block(0, 10, "big"),
        Block(10, 10, "big"),
        Block(20, 8, "big"),
    ]


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
        (_moved("CycleTime", unit="ms"), "CycleTime is in 's', not 'ms'"),
        (_moved("CycleEnergy", unit="Wh"), "CycleEnergy is in 'kWh', not 'Wh'"),
        (_moved("TempZone2", name="TempZone1", address=300), "named more than once"),
        (_moved("State", type="uint32"), "State must be a uint16"),
        ({**PACKAGED, "states": {}}, "needs a `states` table"),
        ({**PACKAGED, "states": {0: "asleep"}}, "Input should be 'running'"),
        (_moved("CycleQuality", type="uint32"), "CycleQuality must be a uint16"),
        ({**PACKAGED, "qualities": {}}, "a CycleQuality register needs a `qualities` table"),
        ({**PACKAGED, "qualities": {0: "good"}}, "greater than or equal to 1"),
        ({**PACKAGED, "qualities": {1: "scrap"}}, "Input should be 'good', 'bad' or 'test'"),
        ({**PACKAGED, "alarms": {16: "too_high"}}, "less than or equal to 15"),
        (_moved("TempOil", group="Slow Ones"), "group 'Slow Ones' is not a short name"),
        (_moved("TempOil", group=""), "group '' is not a short name"),
        (_moved("TempOil", group="x" * 33), "is not a short name"),
        (_moved("TempOil", address=65535), "TempOil at 65535 runs past register 65535"),
        (
            _moved("StandstillReason", group="process"),
            "StandstillReason must be in the group of State ('status'), not 'process'",
        ),
        (
            _moved("PartWeight", group="process"),
            "PartWeight must be in the group of CounterShots ('status'), not 'process'",
        ),
        (
            _moved("CycleQuality", group="quality"),
            "CycleQuality must be in the group of CounterShots ('status')",
        ),
        (
            {
                **PACKAGED,
                "registers": [r for r in PACKAGED["registers"] if r["name"] != "CycleTime"],
            },
            "a CycleQuality register needs CounterShots and CycleTime registers",
        ),
    ],
)
def test_invalid_maps_are_refused(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        RegisterMap.model_validate(data)
