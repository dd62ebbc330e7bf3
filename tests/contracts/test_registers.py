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
    DEFECT_CAUSES,
    SIGNALS,
    STANDSTILL_REASONS,
    ContractError,
    Job,
    JobStatus,
    MachineState,
    PartQuality,
)
from contracts.registers import MAX_READ_REGISTERS, Block, RegisterMap, TextRegister

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


def test_packaged_map_reads_in_three_blocks() -> None:
    register_map = RegisterMap.model_validate(PACKAGED)
    assert register_map.blocks() == [
        Block(0, 41, "status"),
        Block(100, 28, "process"),
        Block(200, 44, "job"),
    ]
    assert register_map.groups == ("status", "process", "job")
    assert register_map.state_code(MachineState.OFFLINE) == 0
    assert set(register_map.states.values()) == set(MachineState)


def test_packaged_map_has_every_signal_and_cycle_parameter() -> None:
    register_map = RegisterMap.model_validate(PACKAGED)
    names = {r.name for r in register_map.registers}
    expected = {s.name for s in SIGNALS} | set(CYCLE_PARAMETERS)
    words = {"State", "StandstillReason", "CycleQuality", "DefectCause"}
    assert names == expected | words | {"JobStatus", "ActiveCavities", "NominalParts"}
    assert {t.name for t in register_map.texts} == {"JobName", "MouldId", "Material"}


# EUROMAP 77's JobStatusEnumeration (OPC 40083): each status by its own number.
EUROMAP_JOB_STATUS = {
    0: "other", 1: "transferred_assigned", 2: "set_up_active", 3: "set_up_interrupted",
    4: "set_up_finished", 5: "start_up_active", 6: "job_in_production", 7: "job_interrupted",
    8: "job_finished", 9: "tear_down_active", 10: "tear_down_interrupted",
    11: "tear_down_finished",
}  # fmt: skip
JOB = Job(
    job_name="PO-4711/10",
    mould_id="bracket-pp-4#1",
    job_status=JobStatus.JOB_IN_PRODUCTION,
    active_cavities=4,
    nominal_parts=3_000_000_000,  # past 16 bits and 31: NominalParts is a uint32
    material="PP",
)


def test_packaged_job_statuses_are_euromap_77s_numbers() -> None:
    register_map = RegisterMap.model_validate(PACKAGED)
    assert {code: s.value for code, s in register_map.job_statuses.items()} == EUROMAP_JOB_STATUS
    assert set(register_map.job_statuses.values()) == set(JobStatus)


def _read_texts(register_map: RegisterMap, image: dict[int, int]) -> dict[str, str]:
    texts: dict[str, str] = {}
    for block in register_map.blocks():
        words = [image.get(a, 0) for a in range(block.start, block.start + block.count)]
        texts.update(register_map.decode_texts(block.start, words))
    return texts


@pytest.mark.parametrize("job", [JOB, JOB.model_copy(update={"material": None})])
def test_a_job_round_trips_through_the_registers(job: Job) -> None:
    register_map = RegisterMap.model_validate(PACKAGED)
    image = _image(register_map.encode_job(job))
    assert (min(image), max(image)) == (200, 243)  # the job block, wholly
    values = _read(register_map, _with_zeros(image))
    texts = _read_texts(register_map, image)
    assert texts["JobName"] == "PO-4711/10"
    assert register_map.job_from(values, texts) == job


def _with_zeros(image: dict[int, int]) -> dict[int, int]:
    """`image` over every register of the packaged map, zeros where it has none."""
    register_map = RegisterMap.model_validate(PACKAGED)
    blocks = register_map.blocks()
    return {a: image.get(a, 0) for b in blocks for a in range(b.start, b.start + b.count)}


def test_no_job_is_an_empty_job_name() -> None:
    register_map = RegisterMap.model_validate(PACKAGED)
    image = _with_zeros(_image(register_map.encode_job(None)))
    assert (
        register_map.job_from(_read(register_map, image), _read_texts(register_map, image)) is None
    )
    assert register_map.job_from({}, {}) is None  # the job group was not read


def test_texts_are_ascii_two_characters_a_register_high_byte_first() -> None:
    text = TextRegister(name="MouldId", address=0, length=3)
    assert text.encode("AB C") == [0x4142, 0x2043, 0x0000]
    assert text.decode([0x4142, 0x2043, 0x0000]) == "AB C"
    assert text.decode([0x2041, 0x4220, 0x2000]) == "AB"  # blank-padded, as some PLCs do
    assert text.decode([0x4100, 0x4242, 0x4242]) == "A"  # up to the first NUL
    swapped = TextRegister(name="MouldId", address=0, length=3, byte_order="BA")
    assert swapped.encode("AB C") == [0x4241, 0x4320, 0x0000]
    assert swapped.decode([0x4241, 0x4320, 0x0000]) == "AB C"
    with pytest.raises(ContractError, match="longer than 6 characters"):
        text.encode("ABCDEFG")
    assert text.encode("ABCDEFG", clip=True) == text.encode("ABCDEF")
    with pytest.raises(ContractError, match="not printable ASCII"):
        text.encode("Düse")
    with pytest.raises(ContractError, match="not printable ASCII"):
        text.decode([0x41FF, 0, 0])


def test_registers_that_make_no_job_are_refused_and_unknown_status_codes_read_other() -> None:
    register_map = RegisterMap.model_validate(PACKAGED)
    texts = {"JobName": "PO-1", "MouldId": "m-1", "Material": ""}
    values = {"JobStatus": 99.0, "ActiveCavities": 2.0, "NominalParts": 0.0}
    job = register_map.job_from(values, texts)
    assert job is not None
    assert (job.job_status, job.material) == (JobStatus.OTHER, None)
    with pytest.raises(ContractError, match="active_cavities"):
        register_map.job_from({**values, "ActiveCavities": 0.0}, texts)
    with pytest.raises(ContractError, match="mould_id"):
        register_map.job_from(values, {**texts, "MouldId": ""})
    only_some = RegisterMap.model_validate({**PACKAGED, "job_statuses": {6: "job_in_production"}})
    with pytest.raises(ContractError, match="no code for job status 'set_up_active'"):
        only_some.job_status_code(JobStatus.SET_UP_ACTIVE)


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
        "DefectCause": 4.0,
    }
    image = _image(register_map.encode(values) | register_map.encode_job(JOB))
    decoded = _read(register_map, image)
    job = {"JobStatus": 6.0, "ActiveCavities": 4.0, "NominalParts": 3e9}
    assert decoded == values | job  # float32 values come back rounded to the 7 digits they carry
    assert register_map.job_from(decoded, _read_texts(register_map, image)) == JOB
    assert register_map.state_from(decoded) == (MachineState.UNPLANNED_STOP, "mould_fault")
    assert register_map.quality_from(decoded) is PartQuality.BAD
    assert register_map.defect_from(decoded) == "sink_marks"


@pytest.mark.parametrize("defect", list(DEFECT_CAUSES))
def test_every_defect_cause_has_a_code_that_round_trips(defect: str) -> None:
    register_map = RegisterMap.model_validate(PACKAGED)
    code = register_map.defect_code(defect)
    assert code > 0
    words = _image(register_map.encode({"DefectCause": code}))
    assert register_map.decode(40, [words[40]]) == {"DefectCause": float(code)}
    assert register_map.defect_from({"DefectCause": float(code)}) == defect


def test_an_unlisted_defect_code_reads_as_its_number_and_0_as_none() -> None:
    register_map = RegisterMap.model_validate(PACKAGED)
    assert register_map.defect_from({"DefectCause": 57.0}) == "code_57"
    assert register_map.defect_code("code_57") == 57  # and back, as the machine showed it
    assert register_map.defect_from({"DefectCause": 0.0}) is None
    assert register_map.defect_from({}) is None  # not read
    assert register_map.defect_code(None) == 0
    with pytest.raises(ContractError, match="no code for defect cause 'gate_blush'"):
        register_map.defect_code("gate_blush")
    with pytest.raises(ContractError, match="no code for defect cause 'code_0'"):
        register_map.defect_code("code_0")


def test_no_order_is_a_planned_stop_with_code_33() -> None:
    register_map = RegisterMap.model_validate(PACKAGED)
    assert "no_order" in STANDSTILL_REASONS[MachineState.PLANNED_STOP]
    assert register_map.reason_code("no_order") == 33
    values = {"State": 4.0, "StandstillReason": 33.0}
    assert register_map.state_from(values) == (MachineState.PLANNED_STOP, "no_order")


def test_a_defect_word_needs_a_quality_word_in_the_shot_counters_group() -> None:
    shots = {"name": "CounterShots", "address": 0, "type": "uint32"}
    cycle_time = {"name": "CycleTime", "address": 2, "type": "float32", "unit": "s"}
    quality = {"name": "CycleQuality", "address": 4, "type": "uint16"}
    defect = {"name": "DefectCause", "address": 5, "type": "uint16"}
    cycle = (shots, cycle_time, quality)
    qualities = {1: "good", 2: "bad"}
    with pytest.raises(ValidationError, match="DefectCause register needs a CycleQuality"):
        RegisterMap.model_validate(_map_with(shots, cycle_time, defect))
    with pytest.raises(ValidationError, match="must be in the group of CounterShots"):
        RegisterMap.model_validate(
            _map_with(*cycle, {**defect, "group": "qc"}, qualities=qualities)
        )
    with pytest.raises(ValidationError, match="DefectCause must be a uint16 with scale 1"):
        RegisterMap.model_validate(_map_with(*cycle, {**defect, "scale": 2}, qualities=qualities))
    with pytest.raises(ValidationError, match="defects"):  # a cause is a name: no blanks around
        RegisterMap.model_validate(
            _map_with(*cycle, defect, qualities=qualities, defects={1: " short_shot"})
        )
    plain = RegisterMap.model_validate(_map_with(*cycle, defect, qualities=qualities))
    assert plain.defect_from({"DefectCause": 2.0}) == "code_2"  # no table: every code by number


def test_packaged_defect_codes_are_the_contracts_defect_causes() -> None:
    assert set(RegisterMap.model_validate(PACKAGED).defects.values()) == set(DEFECT_CAUSES)


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
    blocks = register_map.blocks(max_registers=16)  # the longest text: 16 registers
    assert all(b.count <= 16 for b in blocks)
    covered = {a for b in blocks for a in range(b.start, b.start + b.count)}
    assert covered == {a for r in register_map.fields for a in range(r.address, r.end)}
    assert max(b.count for b in register_map.blocks()) <= MAX_READ_REGISTERS
    with pytest.raises(ValueError, match=r"max_registers must be 16\.\.125"):
        register_map.blocks(max_registers=15)  # a text is read whole


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
    entry = next(r for r in data["registers"] + data["texts"] if r["name"] == register)
    entry.update(changes)
    return data


def _without(*names: str) -> dict[str, Any]:
    data = copy.deepcopy(PACKAGED)
    for key in ("registers", "texts"):
        data[key] = [r for r in data[key] if r["name"] not in names]
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
        (_moved("MouldId", address=210), "JobName (200-215) overlaps MouldId (210-225)"),
        (_moved("JobName", name="Colour"), "Input should be 'JobName', 'MouldId' or 'Material'"),
        (_moved("JobName", length=33), "less than or equal to 32"),
        (_moved("JobName", address=65530), "JobName at 65530 runs past register 65535"),
        (_moved("MouldId", group="status"), "MouldId must be in the group of JobName ('job')"),
        (_moved("NominalParts", group="status"), "NominalParts must be in the group of JobName"),
        (_moved("JobStatus", type="uint32"), "JobStatus must be a uint16 with scale 1"),
        (_moved("NominalParts", type="float32"), "NominalParts must be a uint16 or uint32"),
        (_without("MouldId", "ActiveCavities"), "missing: MouldId, ActiveCavities"),
        ({**PACKAGED, "job_statuses": {}}, "a JobStatus register needs a `job_statuses` table"),
        ({**PACKAGED, "job_statuses": {6: "producing"}}, "Input should be 'other'"),
    ],
)
def test_invalid_maps_are_refused(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        RegisterMap.model_validate(data)
