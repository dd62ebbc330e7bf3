"""The decoder under hypothesis: generated and mutated messages, arbitrary bytes.

Properties: decode returns a message or raises DecodeError, nothing else; the fast telemetry
path (decode_samples) accepts and refuses exactly what decode does, with the same readings;
what decode accepts, contracts/schema.json accepts, and the other way round (but for the
forms JSON Schema cannot tell apart: 1.0 for an integer, a timestamp whose offset moves it
across the range's edge). Derandomized, so CI repeats the same examples.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema_rs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mutations import mutate, valid_message

from contracts import DecodeError, TelemetryBatch, decode, encode
from contracts.codec import decode_samples

SCHEMA = json.loads((Path(__file__).parents[2] / "contracts" / "schema.json").read_text())
VALIDATOR = jsonschema_rs.validator_for(SCHEMA, validate_formats=True)
NOW = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)

FUZZ = settings(
    max_examples=1000, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _outcome(payload: bytes) -> tuple[str, Any]:
    """("ok", message) or ("refused", reason); anything else raised fails the test."""
    try:
        return "ok", decode(payload)
    except DecodeError as exc:
        reason = str(exc)
    assert reason, "a refusal says why"
    assert len(reason) <= 300
    return "refused", reason


def _check_both_paths(payload: bytes) -> tuple[str, Any]:
    outcome = _outcome(payload)
    try:
        fast, samples = decode_samples(payload)
    except DecodeError:
        assert outcome[0] == "refused", f"decode_samples refused what decode took: {payload!r}"
        return outcome
    assert outcome[0] == "ok", f"decode_samples took what decode refused: {outcome[1]}"
    message = outcome[1]
    if samples is None:
        assert fast == message
    else:
        assert isinstance(message, TelemetryBatch)
        assert samples == [(r.signal, r.offset_ms, r.value) for r in message.readings]
        assert fast.model_dump(exclude={"readings"}) == message.model_dump(exclude={"readings"})
    return outcome


def _integral_float_for_integer(instance: Any) -> bool:
    """Whether a float with no fraction stands where the schema wants an integer."""
    if not isinstance(instance, dict):
        return False
    integers = ("schema_version", "seq", "shot", "parts", "active_cavities", "nominal_parts")
    fields = [instance.get(k) for k in integers]
    for reading in (
        instance.get("readings", []) if isinstance(instance.get("readings"), list) else []
    ):
        if isinstance(reading, dict):
            fields.append(reading.get("offset_ms"))
    return any(type(v) is float and v.is_integer() for v in fields)


def _judge_as_the_schema(payload: bytes, verdict: str, detail: Any) -> None:
    """decode's verdict on `payload` is contracts/schema.json's."""
    try:
        instance = json.loads(payload)
    except ValueError:
        assert verdict == "refused"
        return
    schema_ok = VALIDATOR.is_valid(instance)
    if verdict == "ok":
        assert schema_ok, f"decode took what the schema refuses: {payload!r}"
    elif schema_ok:
        # JSON Schema reads 1.0 as an integer; duplicate keys are gone once parsed; an
        # offset can carry a timestamp across 1970 or 2100.
        assert (
            _integral_float_for_integer(instance)
            or "duplicate key" in detail
            or "must lie between" in detail
        ), f"the schema takes what decode refused ({detail}): {payload!r}"


@FUZZ
@given(rng=st.randoms(use_true_random=False), mutations=st.integers(0, 3))
def test_mutated_messages_decode_or_are_refused_as_the_schema_says(
    rng: random.Random, mutations: int
) -> None:
    message = valid_message(rng, machine="imm-01", source="edge-pi01:imm-01", seq=7, now=NOW)
    payload = json.dumps(message).encode() if mutations == 0 else mutate(message, rng)
    verdict, detail = _check_both_paths(payload)
    if mutations == 0:
        assert verdict == "ok", detail
        assert decode(encode(detail)) == detail
    _judge_as_the_schema(payload, verdict, detail)


@FUZZ
@given(payload=st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise_anything_but_decode_error(payload: bytes) -> None:
    _check_both_paths(payload)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


@FUZZ
@given(
    field=st.sampled_from(
        ["schema_version", "kind", "machine_id", "ts", "source", "seq", "readings"]
    ),
    value=json_values,
)
def test_any_json_in_any_field_never_raises_anything_but_decode_error(
    field: str, value: Any
) -> None:
    message = valid_message(random.Random(1), machine="m", source="s", seq=1, now=NOW)
    message[field] = value
    _check_both_paths(json.dumps(message).encode())


def test_a_seeded_corpus_of_mutations_is_judged_as_the_schema_judges_it() -> None:
    # Breadth beside hypothesis' depth: hypothesis' randoms lean towards first choices, so
    # 20,000 mutations from plain seeded generators cover every kind of mistake often.
    verdicts = {"ok": 0, "refused": 0}
    for seed in range(20):
        rng = random.Random(seed)
        for _ in range(1000):
            message = valid_message(rng, machine="imm-01", source="gw:imm-01", seq=1, now=NOW)
            payload = mutate(message, rng)
            verdict, detail = _check_both_paths(payload)
            verdicts[verdict] += 1
            _judge_as_the_schema(payload, verdict, detail)
    # Both outcomes in number: a corpus all refused (or all taken) would test little.
    assert verdicts["ok"] > 2000
    assert verdicts["refused"] > 10_000
