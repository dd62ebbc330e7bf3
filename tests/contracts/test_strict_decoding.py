"""Decoding is exactly as strict as contracts/schema.json, and never raises anything else.

Regression tests of the hostile-input findings: timestamps that overflowed the conversion
to UTC (finding 1), values that overflow a database's sum (2), and payloads looser than the
published schema that were accepted (6).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contracts import DecodeError, Topic, TopicError, decode
from contracts.codec import decode_samples

GOLDEN = Path(__file__).parents[1] / "fixtures" / "messages"


def _golden(name: str) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((GOLDEN / f"{name}.json").read_text())
    return loaded


def _refused(payload: bytes, match: str) -> None:
    """Both decoders refuse `payload` with a DecodeError whose text matches `match`."""
    with pytest.raises(DecodeError, match=match):
        decode(payload)
    with pytest.raises(DecodeError, match=match):
        decode_samples(payload)


def _with(name: str, **change: object) -> bytes:
    return json.dumps({**_golden(name), **change}).encode()


# Finding 1: each of these raised OverflowError (or another non-DecodeError) from decode.
OVERFLOWS = [
    ("0001-01-01T00:00:00+01:00", "must lie between"),
    ("9999-12-31T23:59:59-01:00", "must lie between"),
    ("9999-12-31T23:59:59.999999-23:59", "must lie between"),
    ("0000-01-01T00:00:00Z", "year 0 is out of range"),
    ("1969-12-31T23:59:59Z", "must lie between"),
    ("2100-01-01T00:00:00Z", "must lie between"),
    ("2026-02-30T08:00:00Z", "day is out of range"),
]


@pytest.mark.parametrize(("ts", "reason"), OVERFLOWS)
@pytest.mark.parametrize("kind", ["telemetry", "cycle", "cycle_v1", "state", "status", "job"])
def test_a_timestamp_out_of_range_is_refused_not_an_overflow(
    kind: str, ts: str, reason: str
) -> None:
    _refused(_with(kind, ts=ts), reason)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("1e308", "outside its physical range"),
        ("1e30", "outside its physical range"),
        ("18446744073709551616", "outside its physical range"),  # 2**64
        ("1" + "0" * 400, "valid number"),  # past a double
        ("1e999", "outside its physical range|finite"),  # parses as infinity
        ("-300.0", "outside its physical range"),  # below absolute zero
    ],
)
def test_a_value_outside_its_physical_range_is_refused(value: str, reason: str) -> None:
    payload = (
        b'{"schema_version": 1, "kind": "telemetry", "machine_id": "imm-01", '
        b'"ts": "2026-11-21T08:00:00Z", "source": "edge-pi01", "seq": 1, "readings": ['
        b'{"signal": "TempZone2", "offset_ms": 0, "value": ' + value.encode() + b"}]}"
    )
    _refused(payload, reason)


def test_each_unit_has_its_range_and_unknown_signals_stay_far_from_overflow() -> None:
    def reading(signal: str, value: float) -> bytes:
        return _with("telemetry", readings=[{"signal": signal, "offset_ms": 0, "value": value}])

    assert decode(reading("HeaterOutputZone2", 100.0))
    _refused(reading("HeaterOutputZone2", 100.5), "HeaterOutputZone2 = 100.5 is outside")
    assert decode(reading("CounterShots", 2.0**53))
    _refused(reading("CounterShots", -1.0), "outside its physical range")
    assert decode(reading("VendorSpecific", 1e12))
    _refused(reading("VendorSpecific", 1.1e12), "outside its physical range")
    cycle = _golden("cycle")
    cycle["parameters"] = {"CycleTime": 1e308}
    _refused(json.dumps(cycle).encode(), "CycleTime = 1e\\+308 is outside")


# Finding 6: each of these was accepted, though the published schema does not allow it.
LOOSE = [
    ("telemetry", {"seq": "1"}, "seq"),
    ("telemetry", {"seq": True}, "seq"),
    ("telemetry", {"seq": 1e3}, "seq"),
    ("cycle", {"shot": "15235"}, "shot"),
    ("cycle", {"parts": 2.0}, "parts"),
    ("status", {"online": "yes"}, "online"),
    ("status", {"online": 1}, "online"),
    ("state", {"ts": 1763712060}, "ts"),
    ("state", {"ts": "1763712060"}, "ts"),
    ("state", {"ts": "2026-11-21 08:01:00+01:00"}, "ts"),
    ("state", {"schema_version": True}, "schema_version"),
    ("state", {"schema_version": 1.0}, "schema_version"),
    ("state", {"schema_version": "1"}, "schema_version"),
    ("state", {"machine_id": "imm-01\n"}, "machine_id"),
    ("job", {"schema_version": 2.0}, "schema_version"),
    ("job", {"schema_version": "2"}, "schema_version"),
    ("job", {"active_cavities": "4"}, "active_cavities"),
    ("job", {"active_cavities": True}, "active_cavities"),
    ("job", {"nominal_parts": 4e4}, "nominal_parts"),
    ("job", {"nominal_parts": 2**53}, "nominal_parts"),
    ("job", {"job_name": "PO-4711\n"}, "job_name"),
    ("job", {"mould_id": "m\u007f"}, "mould_id"),
    ("cycle", {"job": "PO\t1"}, "job"),
]


@pytest.mark.parametrize(("kind", "change", "field"), LOOSE)
def test_a_payload_looser_than_the_schema_is_refused(
    kind: str, change: dict[str, object], field: str
) -> None:
    _refused(_with(kind, **change), field)


@pytest.mark.parametrize("value", ['"1.5"', "true", "null", "[1.5]"])
def test_a_reading_value_must_be_a_json_number(value: str) -> None:
    payload = (
        b'{"schema_version": 1, "kind": "telemetry", "machine_id": "imm-01", '
        b'"ts": "2026-11-21T08:00:00Z", "source": "edge-pi01", "seq": 1, "readings": ['
        b'{"signal": "TempZone2", "offset_ms": 0, "value": ' + value.encode() + b"}]}"
    )
    _refused(payload, "value")


@pytest.mark.parametrize(
    "payload",
    [
        b'{"schema_version": 1, "schema_version": 1, "kind": "state", "machine_id": "imm-01",'
        b' "ts": "2026-11-21T08:00:00Z", "source": "s", "seq": 1, "state": "idle"}',
        b'{"schema_version": 1, "kind": "telemetry", "machine_id": "imm-01",'
        b' "ts": "2026-11-21T08:00:00Z", "source": "s", "seq": 1, "readings": ['
        b'{"signal": "TempZone2", "offset_ms": 0, "value": 1.0, "value": 999.0}]}',
        # The same key once plainly and once with an escape: counting the bytes misses it.
        b'{"schema_version": 1, "kind": "telemetry", "machine_id": "imm-01",'
        b' "ts": "2026-11-21T08:00:00Z", "source": "s", "seq": 1, "readings": ['
        b'{"signal": "TempZone2", "offset_ms": 0, "value": 1.0, "val\\u0075e": 999.0}]}',
        b'{"schema_version": 1, "kind": "telemetry", "machine_id": "imm-01",'
        b' "ts": "2026-11-21T08:00:00Z", "source": "s", "seq": 1, "s\\u0065q": 2, "readings": ['
        b'{"signal": "TempZone2", "offset_ms": 0, "value": 1.0}]}',
    ],
)
def test_duplicate_keys_are_refused(payload: bytes) -> None:
    _refused(payload, "duplicate key")


def test_key_names_as_values_do_not_pass_for_duplicates() -> None:
    # A signal named "value", a machine named "kind": valid, decoded by the thorough path.
    payload = (
        b'{"schema_version": 1, "kind": "telemetry", "machine_id": "kind",'
        b' "ts": "2026-11-21T08:00:00Z", "source": "s", "seq": 1, "readings": ['
        b'{"signal": "value", "offset_ms": 0, "value": 1.0},'
        b'{"signal": "signal", "offset_ms": 5, "value": 2.0}]}'
    )
    message, samples = decode_samples(payload)
    assert message.machine_id == "kind"
    assert samples == [("value", 0, 1.0), ("signal", 5, 2.0)]


def test_a_missing_schema_version_is_refused() -> None:
    raw = _golden("state")
    del raw["schema_version"]
    _refused(json.dumps(raw).encode(), "missing schema_version")


@pytest.mark.parametrize("level", ["imm-01\n", "imm-01 ", "imm\x0001"])
def test_a_topic_level_with_a_trailing_newline_or_control_character_is_refused(
    level: str,
) -> None:
    with pytest.raises(TopicError, match="not a valid topic segment"):
        Topic.parse(f"moldlab/v1/site/hall/line-1/{level}/telemetry")


def test_refusals_are_bounded_in_length() -> None:
    # Thousands of errors, a 64 KiB topic: the reason stays one short line.
    readings = [{"signal": "x" * 100, "offset_ms": -1, "value": "a"} for _ in range(5000)]
    with pytest.raises(DecodeError) as caught:
        decode(_with("telemetry", readings=readings))
    assert len(str(caught.value)) <= 300
    with pytest.raises(TopicError) as topic_error:
        Topic.parse("moldlab/v1/" + "a" * 65_536 + "/b/c/d/telemetry")
    assert len(str(topic_error.value)) < 400


@pytest.mark.parametrize(
    "payload",
    [b"", b"\xff\xfe", b"[" * 100_000, b'{"a":' * 10_000, b"1" * 5000, b'"' + b"\\" * 999],
)
def test_garbage_is_a_decode_error(payload: bytes) -> None:
    _refused(payload, "invalid JSON|message|missing")
