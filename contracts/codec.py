"""Bytes on the wire to and from messages: orjson to write, jiter to read, pydantic to check.

Decoding is strict: exactly what contracts/schema.json allows. A duplicate key, a number
written as a string (or a string as a number), true for 1, a Unix time for a timestamp, a
missing schema_version, a value outside its unit's physical range: each is a DecodeError.
"""

from __future__ import annotations

import re
from typing import Any

import jiter
import orjson
from pydantic import TypeAdapter, ValidationError

from contracts.errors import ContractError
from contracts.messages import (
    CycleRecord,
    EdgeStatus,
    JobRecord,
    Message,
    StateChange,
    TelemetryBatch,
)
from contracts.signals import ANY_RANGE, CYCLE_PARAMETERS, SIGNALS, UNIT_RANGES, signal_range

AnyMessage = TelemetryBatch | CycleRecord | StateChange | EdgeStatus | JobRecord

_ADAPTER: TypeAdapter[AnyMessage] = TypeAdapter(Message)


class DecodeError(ContractError):
    """A payload that is not a valid moldlab message; the text says why."""


def encode(message: AnyMessage) -> bytes:
    """The JSON bytes of `message` (UTC timestamps with a Z)."""
    return orjson.dumps(message.model_dump(), option=orjson.OPT_UTC_Z)


def decode(payload: bytes | str) -> AnyMessage:
    """Parse and validate one message, or raise DecodeError saying what is wrong."""
    return _validate(_parse(payload))


def _parse(payload: bytes | str) -> Any:
    """The JSON value of `payload`: duplicate keys, NaN and Infinity refused."""
    data = payload.encode() if isinstance(payload, str) else payload
    try:
        raw = jiter.from_json(data, allow_inf_nan=False, catch_duplicate_keys=True)
    except ValueError as exc:  # jiter's only error: bad JSON, bad UTF-8, too deep
        raise DecodeError(f"invalid JSON: {_clip(str(exc))}") from exc
    return raw


def _validate(raw: Any) -> AnyMessage:
    # The models default schema_version for Python code; on the wire it is required.
    missing = "missing schema_version" if type(raw) is dict and "schema_version" not in raw else ""
    try:
        message = _ADAPTER.validate_python(raw)
    except ValidationError as exc:
        raise DecodeError(_clip("; ".join(filter(None, (missing, _summarise(exc)))))) from exc
    if missing:
        raise DecodeError(missing)
    return message


Sample = tuple[str, int, float]  # a reading as (signal, offset_ms, value)

_SIGNAL_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.]{0,63}")  # SignalName, whole string
# Signal names already checked, with their physical range (bounded below).
_NAMES_SEEN: dict[str, tuple[float, float]] = {s.name: UNIT_RANGES[s.unit] for s in SIGNALS}
_MAX_OFFSET_MS = 3_600_000
_MAX_READINGS = 100_000


def decode_samples(payload: bytes | str) -> tuple[AnyMessage, list[Sample] | None]:
    """`decode`, faster for telemetry batches: their readings come back as samples.

    A plain loop checks readings of the usual shape and pydantic checks the rest of the
    message; a batch with any reading the loop cannot vouch for is validated whole by
    pydantic, so this accepts and refuses exactly what `decode` does. The returned message
    of a fast-checked batch carries only its first reading; use the samples.
    """
    data = payload.encode() if isinstance(payload, str) else payload
    fast = _plain_telemetry(data)
    if fast is not None:
        return fast
    raw = _parse(data)
    if isinstance(raw, dict) and raw.get("kind") == "telemetry":
        readings = raw.get("readings")
        samples = _plain_samples(readings)
        if samples is not None:
            assert isinstance(readings, list)  # _plain_samples checked it
            return _validate({**raw, "readings": readings[:1]}), samples
    return _validate(raw), None


def _plain_telemetry(data: bytes) -> tuple[AnyMessage, list[Sample]] | None:
    """The hot path of ingest: a telemetry batch of the usual shape, parsed by orjson.

    orjson keeps the last of duplicate keys silently, so it is trusted only with bytes that
    are exactly what it writes for what it read (as moldlab's publishers send them): those
    hold no key twice. Anything else is None, and goes the way of decode (jiter refuses
    duplicates).
    """
    if b'"telemetry"' not in data:
        return None
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if type(raw) is not dict or raw.get("kind") != "telemetry":
        return None
    readings = raw.get("readings")
    samples = _plain_samples(readings)
    if samples is None or orjson.dumps(raw) != data:
        return None
    assert isinstance(readings, list)  # _plain_samples checked it
    return _validate({**raw, "readings": readings[:1]}), samples


def _plain_samples(readings: object) -> list[Sample] | None:
    """The readings as samples, or None if any is not of the plain, certainly valid shape."""
    if type(readings) is not list or not 1 <= len(readings) <= _MAX_READINGS:
        return None
    seen = _NAMES_SEEN
    out: list[Sample] = []
    for r in readings:
        if type(r) is not dict or len(r) != 3:
            return None
        name, offset, value = r.get("signal"), r.get("offset_ms"), r.get("value")
        if type(name) is not str:
            return None
        bounds = seen.get(name)
        if bounds is None:
            if not _SIGNAL_NAME.fullmatch(name):
                return None
            bounds = signal_range(name)
            if len(seen) < 10_000:
                seen[name] = bounds
        if type(offset) is not int or not 0 <= offset <= _MAX_OFFSET_MS:
            return None
        if type(value) is int:
            try:
                value = float(value)
            except OverflowError:
                return None
        elif type(value) is not float:
            return None
        if not bounds[0] <= value <= bounds[1]:  # also refuses NaN and infinities
            return None
        out.append((name, offset, value))
    return out


_MAX_REASON = 300  # characters of a refusal's text: it is logged and stored


def _clip(text: str, limit: int = _MAX_REASON) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _summarise(exc: ValidationError) -> str:
    """The errors in one bounded line: missing fields together, then up to three others."""
    missing: dict[str, list[str]] = {}
    parts: list[str] = []
    for err in exc.errors(include_url=False, include_input=False):
        where = [str(p) for p in err["loc"]]
        if err["type"] == "missing" and where:
            missing.setdefault(".".join(where[:-1]) or "message", []).append(where[-1])
        elif len(parts) < 3:
            parts.append(f"{_clip('.'.join(where) or 'message', 80)}: {_clip(err['msg'], 160)}")
    shown = [f"{at}: missing {', '.join(names)}" for at, names in missing.items()] + parts
    more = exc.error_count() - sum(map(len, missing.values())) - len(parts)
    return _clip("; ".join(shown) + (f" (+{more} more)" if more > 0 else ""))


def _value_within(bounds: tuple[float, float], signal: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema rule: a reading whose signal matches `signal` has its value in `bounds`."""
    low, high = bounds
    return {
        "if": {"properties": {"signal": signal}},
        "then": {"properties": {"value": {"minimum": low, "maximum": high}}},
    }


def json_schema() -> dict[str, Any]:
    """The JSON Schema of every message kind, as checked in at contracts/schema.json.

    It says all that decode() checks: schema_version and kind required, the timestamp's
    form, each signal's and cycle parameter's physical range, the known cycle parameters,
    what only schema versions 2 and 3 carry, a defect only on a bad cycle.
    """
    schema = _ADAPTER.json_schema()
    schema["title"] = "moldlab message"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    defs = schema["$defs"]
    for name in ("TelemetryBatch", "CycleRecord", "StateChange", "EdgeStatus", "JobRecord"):
        defs[name]["required"] = ["schema_version", "kind", *defs[name]["required"]]
    # A cycle that claims version 1 has no job (CycleRecord._job_since_version_2); one that
    # claims version 1 or 2, or whose parts are not bad, no defect (CycleRecord._defect_...).
    no_defect = {"properties": {"defect": {"type": "null"}}}
    defs["CycleRecord"]["allOf"] = [
        {
            "if": {"properties": {"schema_version": {"const": 1}}},
            "then": {"properties": {"job": {"type": "null"}}},
        },
        {"if": {"properties": {"schema_version": {"enum": [1, 2]}}}, "then": no_defect},
        {"if": {"properties": {"quality": {"const": "bad"}}}, "else": no_defect},
    ]
    # A status lists machines only as a version 2 birth (EdgeStatus._machines_in_a_...).
    no_machines = {"properties": {"machines": {"type": "null"}}}
    defs["EdgeStatus"]["allOf"] = [
        {"if": {"properties": {"schema_version": {"const": 1}}}, "then": no_machines},
        {"if": {"properties": {"online": {"const": False}}}, "then": no_machines},
    ]
    known = [spec.name for spec in SIGNALS]
    defs["Reading"]["allOf"] = [
        *(_value_within(UNIT_RANGES[spec.unit], {"const": spec.name}) for spec in SIGNALS),
        _value_within(ANY_RANGE, {"not": {"enum": known}}),
    ]
    parameters = defs["CycleRecord"]["properties"]["parameters"]
    del parameters["additionalProperties"]
    parameters["properties"] = {
        name: {"type": "number", "minimum": UNIT_RANGES[unit][0], "maximum": UNIT_RANGES[unit][1]}
        for name, unit in CYCLE_PARAMETERS.items()
    }
    parameters["additionalProperties"] = False
    parameters["required"] = ["CycleTime"]
    return schema
