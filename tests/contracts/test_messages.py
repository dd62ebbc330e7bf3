"""The wire contract: golden messages, validation errors and topics."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from contracts import (
    DEFECT_CAUSES,
    SCHEMA_VERSION,
    SCHEMA_VERSIONS,
    CycleRecord,
    DecodeError,
    EdgeStatus,
    JobRecord,
    JobStatus,
    MachineState,
    MessageKind,
    PartQuality,
    StateChange,
    TelemetryBatch,
    Topic,
    TopicError,
    decode,
    encode,
)
from contracts.broker import BrokerUrl
from contracts.errors import ContractError

GOLDEN = Path(__file__).parents[1] / "fixtures" / "messages"


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("telemetry", TelemetryBatch),
        ("cycle", CycleRecord),
        ("state", StateChange),
        ("status", EdgeStatus),
        ("job", JobRecord),
        ("cycle_v1", CycleRecord),
        ("cycle_v2", CycleRecord),
    ],
)
def test_golden_messages_decode_and_round_trip(name: str, model: type) -> None:
    payload = (GOLDEN / f"{name}.json").read_bytes()
    message = decode(payload)
    assert isinstance(message, model)
    assert message.kind == MessageKind(name.split("_v")[0])
    assert message.ts.tzinfo is UTC
    assert decode(encode(message)) == message


def test_a_job_message_speaks_euromap_77() -> None:
    message = decode((GOLDEN / "job.json").read_bytes())
    assert isinstance(message, JobRecord)
    assert (message.job_name, message.mould_id, message.job_status) == (
        "PO-4711/10", "bracket-pp-4#1", JobStatus.SET_UP_ACTIVE,
    )  # fmt: skip
    assert (message.active_cavities, message.nominal_parts, message.material) == (4, 40000, "PP")
    assert message.schema_version == 2
    assert str(Topic.parse("moldlab/v1/s/a/l/imm-01/job").kind) == "job"


def test_a_version_1_cycle_is_still_read_and_written_back_as_version_1() -> None:
    old = decode((GOLDEN / "cycle_v1.json").read_bytes())
    assert isinstance(old, CycleRecord)
    assert (old.schema_version, old.job, old.defect) == (1, None, None)
    assert b'"schema_version":1' in encode(old)
    new = decode((GOLDEN / "cycle_v2.json").read_bytes())
    assert isinstance(new, CycleRecord)
    assert (new.schema_version, new.job, new.defect) == (2, "PO-4711/10", None)
    assert old.model_dump(exclude={"schema_version", "job"}) == new.model_dump(
        exclude={"schema_version", "job"}
    )


def test_a_version_2_cycle_is_still_read_and_written_back_as_version_2() -> None:
    old = decode((GOLDEN / "cycle_v2.json").read_bytes())
    assert isinstance(old, CycleRecord)
    assert b'"schema_version":2' in encode(old)
    assert decode(encode(old)) == old
    raw = {**_golden("cycle_v2"), "quality": "bad"}  # a v2 bad cycle: its cause untold
    bad = decode(orjson.dumps(raw))
    assert isinstance(bad, CycleRecord)
    assert (bad.schema_version, bad.quality, bad.defect) == (2, PartQuality.BAD, None)


def test_a_version_3_bad_cycle_tells_its_defect_cause() -> None:
    message = decode((GOLDEN / "cycle.json").read_bytes())
    assert isinstance(message, CycleRecord)
    assert (message.schema_version, message.quality, message.defect) == (
        3, PartQuality.BAD, "short_shot",
    )  # fmt: skip
    assert message.defect in DEFECT_CAUSES
    assert b'"defect":"short_shot"' in encode(message)
    # A plant's own cause, not in the table, is taken: the table names the usual ones.
    own = decode(orjson.dumps({**_golden("cycle"), "defect": "gate blush"}))
    assert isinstance(own, CycleRecord)
    assert own.defect == "gate blush"
    # What Python code makes is the newest version.
    made = CycleRecord(**{**message.model_dump(), "schema_version": SCHEMA_VERSION})
    assert (SCHEMA_VERSION, SCHEMA_VERSIONS) == (3, (1, 2, 3))
    assert made.schema_version == 3


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"schema_version": 2}, "a cycle's defect needs schema_version 3"),
        ({"schema_version": 1, "job": None}, "a cycle's defect needs schema_version 3"),
        ({"quality": "good"}, "only bad parts have a defect cause, not good ones"),
        ({"quality": "test"}, "only bad parts have a defect cause, not test ones"),
        ({"defect": ""}, "defect"),
        ({"defect": " short_shot"}, "defect"),  # blanks: a register's padding
        ({"defect": "x" * 65}, "defect"),
        ({"defect": 2}, "defect"),
    ],
)
def test_a_defect_where_none_can_be_is_refused_with_the_reason(
    change: dict[str, object], reason: str
) -> None:
    raw = {**_golden("cycle"), **change}
    with pytest.raises(DecodeError, match=reason):
        decode(orjson.dumps(raw))
    with pytest.raises(ValueError, match=reason):  # and in Python code alike
        CycleRecord.model_validate(raw)


@pytest.mark.parametrize("version", [2, 3])
def test_a_job_message_is_read_in_versions_2_and_3(version: int) -> None:
    message = decode(orjson.dumps({**_golden("job"), "schema_version": version}))
    assert isinstance(message, JobRecord)
    assert message.schema_version == version
    assert JobRecord(**message.model_dump(exclude={"schema_version"})).schema_version == 3


@pytest.mark.parametrize(
    ("name", "change", "reason"),
    [
        ("job", {"schema_version": 1}, "job.schema_version: Input should be 2"),
        ("cycle_v2", {"schema_version": 1}, "a cycle's job needs schema_version 2"),
        ("job", {"job_status": "running"}, "job_status"),
        ("job", {"job_status": "SET_UP_ACTIVE"}, "job_status"),
        ("job", {"job_name": ""}, "job_name"),
        ("job", {"job_name": " PO-1"}, "job_name"),  # blanks: a register's padding
        ("job", {"job_name": "PO-1 "}, "job_name"),
        ("job", {"mould_id": "m\n1"}, "mould_id"),
        ("job", {"mould_id": "m" * 65}, "mould_id"),
        ("job", {"material": ""}, "material"),
        ("job", {"active_cavities": 0}, "active_cavities"),
        ("job", {"active_cavities": 1025}, "active_cavities"),
        ("job", {"active_cavities": 4.0}, "active_cavities"),
        ("job", {"nominal_parts": -1}, "nominal_parts"),
        ("job", {"nominal_parts": "40000"}, "nominal_parts"),
        ("job", {"job_name": None}, "job_name"),
        ("cycle", {"job": ""}, "job"),
        ("cycle", {"job": 4711}, "job"),
    ],
)
def test_invalid_jobs_are_refused_with_the_reason(
    name: str, change: dict[str, object], reason: str
) -> None:
    raw = {**_golden(name), **change}
    with pytest.raises(DecodeError, match=reason):
        decode(orjson.dumps(raw))


def test_a_version_1_cycle_may_say_it_has_no_job() -> None:
    raw = {**_golden("cycle_v1"), "job": None}
    assert isinstance(decode(orjson.dumps(raw)), CycleRecord)


def test_timestamps_are_normalised_to_utc() -> None:
    message = decode((GOLDEN / "state.json").read_bytes())
    assert message.ts == datetime(2026, 11, 21, 7, 1, tzinfo=UTC)
    assert b'"ts":"2026-11-21T07:01:00Z"' in encode(message)
    assert isinstance(message, StateChange)
    assert message.state is MachineState.UNPLANNED_STOP


def _golden(name: str) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((GOLDEN / f"{name}.json").read_text())
    return loaded


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"schema_version": 4}, "schema_version"),
        ({"schema_version": 0}, "schema_version"),
        ({"kind": "alarm"}, "does not match any of the expected tags"),
        ({"ts": "2026-11-21T08:00:00"}, "with an offset"),
        ({"machine_id": "imm/01"}, "machine_id"),
        ({"seq": -1}, "seq"),
        ({"readings": []}, "readings"),
        ({"extra": 1}, "extra"),
        ({"readings": [{"signal": "TempZone2", "offset_ms": 0, "value": "hot"}]}, "value"),
    ],
)
def test_invalid_telemetry_is_refused_with_the_reason(
    change: dict[str, object], reason: str
) -> None:
    raw = {**_golden("telemetry"), **change}
    with pytest.raises(DecodeError, match=reason):
        decode(orjson.dumps(raw))


@pytest.mark.parametrize("bad", [b"NaN", b"Infinity", b"1e999"])
def test_non_finite_values_are_refused(bad: bytes) -> None:
    payload = (GOLDEN / "telemetry.json").read_bytes().replace(b"200.4", bad)
    with pytest.raises(DecodeError):
        decode(payload)


def test_invalid_json_is_refused() -> None:
    with pytest.raises(DecodeError, match="invalid JSON"):
        decode(b'{"kind": "telemetry",')


def test_unknown_cycle_parameter_is_refused() -> None:
    raw = _golden("cycle")
    raw["parameters"] = {"CycleTime": 15.0, "Colour": 3.0}
    with pytest.raises(DecodeError, match="Colour"):
        decode(orjson.dumps(raw))


def test_topic_round_trip() -> None:
    topic = Topic("plant-1", "hall-a", "line-1", "imm-01", MessageKind.CYCLE)
    assert str(topic) == "moldlab/v1/plant-1/hall-a/line-1/imm-01/cycle"
    assert Topic.parse(str(topic)) == topic
    assert Topic.subscription() == "moldlab/v1/+/+/+/+/+"


@pytest.mark.parametrize(
    "bad",
    [
        "moldlab/v2/s/a/l/m/cycle",
        "moldlab/v1/s/a/l/m",
        "moldlab/v1/s/a/l/m/alarm",
        "moldlab/v1/s/a/l/m+/cycle",
        "moldlab/v1/s//l/m/cycle",
    ],
)
def test_bad_topics_are_refused(bad: str) -> None:
    with pytest.raises(TopicError):
        Topic.parse(bad)


def test_broker_url() -> None:
    url = BrokerUrl.parse("mqtts://ingest:s%40cret@broker.plant:8884")
    assert (url.host, url.port, url.tls, url.username, url.password) == (
        "broker.plant", 8884, True, "ingest", "s@cret",
    )  # fmt: skip
    assert "s@cret" not in str(url)
    assert BrokerUrl.parse("mqtt://localhost").port == 1883
    with pytest.raises(ContractError):
        BrokerUrl.parse("http://localhost")
