"""decode_samples, ingest's fast path, accepts and refuses exactly what decode does."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from contracts import DecodeError, TelemetryBatch, decode
from contracts.codec import decode_samples

_BASE = {
    "schema_version": 1,
    "kind": "telemetry",
    "machine_id": "imm-01",
    "ts": "2026-11-21T08:00:00.000Z",
    "source": "edge-1",
    "seq": 7,
}


def _batch(readings: Any, **envelope: Any) -> bytes:
    return orjson.dumps({**_BASE, **envelope, "readings": readings})


def _outcome(fn: Any, payload: bytes) -> tuple[str, Any]:
    try:
        return "ok", fn(payload)
    except DecodeError as exc:
        return "refused", str(exc)


_OK = {"signal": "TempZone2", "offset_ms": 0, "value": 200.5}

CASES = {
    "plain": [_OK, {"signal": "MotorPower", "offset_ms": 500, "value": 12}],
    "int value": [{"signal": "A", "offset_ms": 0, "value": 3}],
    "numeric string value": [{"signal": "A", "offset_ms": 0, "value": "1.5"}],
    "bool value": [{"signal": "A", "offset_ms": 0, "value": True}],
    "text value": [{"signal": "A", "offset_ms": 0, "value": "hot"}],
    "null value": [{"signal": "A", "offset_ms": 0, "value": None}],
    "huge value": orjson.loads(b'[{"signal": "A", "offset_ms": 0, "value": 1e308}]'),
    "bool offset": [{"signal": "A", "offset_ms": False, "value": 1.0}],
    "float offset": [{"signal": "A", "offset_ms": 1.0, "value": 1.0}],
    "negative offset": [{"signal": "A", "offset_ms": -1, "value": 1.0}],
    "offset past an hour": [{"signal": "A", "offset_ms": 3_600_001, "value": 1.0}],
    "extra key": [{**_OK, "unit": "degC"}],
    "missing key": [{"signal": "A", "value": 1.0}],
    "swapped key": [{"signal": "A", "offset": 0, "value": 1.0}],
    "bad name": [{"signal": "9lives", "offset_ms": 0, "value": 1.0}],
    "name with newline": [{"signal": "A\n", "offset_ms": 0, "value": 1.0}],
    "long name": [{"signal": "A" * 65, "offset_ms": 0, "value": 1.0}],
    "name not text": [{"signal": ["A"], "offset_ms": 0, "value": 1.0}],
    "reading not an object": [[1, 2, 3]],
    "no readings": [],
    "readings not a list": {"signal": "A"},
    "too many readings": [_OK] * 100_001,
}


@pytest.mark.parametrize("name", [*CASES, "huge int value"])
def test_the_fast_path_agrees_with_decode(name: str) -> None:
    if name == "huge int value":  # beyond what orjson writes: spelled out
        payload = (
            _batch([_OK])[:-2] + b',{"signal":"A","offset_ms":0,"value":1' + b"0" * 30 + b"}]}"
        )
    else:
        payload = _batch(CASES[name])
    slow, fast = _outcome(decode, payload), _outcome(decode_samples, payload)
    if slow[0] == "refused":
        assert fast == slow
        return
    expected = slow[1]
    message, samples = fast[1]
    assert isinstance(expected, TelemetryBatch)
    assert isinstance(message, TelemetryBatch)
    if samples is None:
        assert message == expected
    else:
        assert samples == [(r.signal, r.offset_ms, r.value) for r in expected.readings]
        assert message.model_copy(update={"readings": expected.readings}) == expected


@pytest.mark.parametrize(
    "envelope",
    [{"schema_version": 4}, {"ts": "2026-11-21T08:00:00"}, {"machine_id": "a b"}, {"x": 1}],
)
def test_a_bad_envelope_is_refused_on_the_fast_path_too(envelope: dict[str, Any]) -> None:
    payload = _batch([_OK], **envelope)
    with pytest.raises(DecodeError) as fast:
        decode_samples(payload)
    with pytest.raises(DecodeError) as slow:
        decode(payload)
    assert str(fast.value) == str(slow.value)


def test_other_kinds_decode_as_before() -> None:
    payload = orjson.dumps({**_BASE, "kind": "state", "state": "running", "reason": None})
    assert decode_samples(payload) == (decode(payload), None)
