"""Bytes on the wire to and from messages: orjson for speed, pydantic for validation."""

from __future__ import annotations

import math
import re
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from contracts.errors import ContractError
from contracts.messages import CycleRecord, EdgeStatus, Message, StateChange, TelemetryBatch

AnyMessage = TelemetryBatch | CycleRecord | StateChange | EdgeStatus

_ADAPTER: TypeAdapter[AnyMessage] = TypeAdapter(Message)


class DecodeError(ContractError):
    """A payload that is not a valid moldlab message; the text says why."""


def encode(message: AnyMessage) -> bytes:
    """The JSON bytes of `message` (UTC timestamps with a Z)."""
    return orjson.dumps(message.model_dump(), option=orjson.OPT_UTC_Z)


def decode(payload: bytes | str) -> AnyMessage:
    """Parse and validate one message, or raise DecodeError saying what is wrong."""
    try:
        raw: Any = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"invalid JSON: {exc}") from exc
    try:
        return _ADAPTER.validate_python(raw)
    except ValidationError as exc:
        raise DecodeError(_summarise(exc)) from exc


Sample = tuple[str, int, float]  # a reading as (signal, offset_ms, value)

_SIGNAL_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.]{0,63}")  # SignalName, whole string
_NAMES_SEEN: set[str] = set()  # signal names already checked (bounded below)
_MAX_OFFSET_MS = 3_600_000
_MAX_READINGS = 100_000


def decode_samples(payload: bytes | str) -> tuple[AnyMessage, list[Sample] | None]:
    """`decode`, faster for telemetry batches: their readings come back as samples.

    A plain loop checks readings of the usual shape and pydantic checks the rest of the
    message; a batch with any reading the loop cannot vouch for is validated whole by
    pydantic, so this accepts and refuses exactly what `decode` does. The returned message
    of a fast-checked batch carries only its first reading; use the samples.
    """
    try:
        raw: Any = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"invalid JSON: {exc}") from exc
    if isinstance(raw, dict) and raw.get("kind") == "telemetry":
        readings = raw.get("readings")
        samples = _plain_samples(readings)
        if samples is not None:
            assert isinstance(readings, list)  # _plain_samples checked it
            try:
                return _ADAPTER.validate_python({**raw, "readings": readings[:1]}), samples
            except ValidationError as exc:
                raise DecodeError(_summarise(exc)) from exc
    try:
        return _ADAPTER.validate_python(raw), None
    except ValidationError as exc:
        raise DecodeError(_summarise(exc)) from exc


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
        if name not in seen:
            if not _SIGNAL_NAME.fullmatch(name):
                return None
            if len(seen) < 10_000:
                seen.add(name)
        if type(offset) is not int or not 0 <= offset <= _MAX_OFFSET_MS:
            return None
        if type(value) is int:
            try:
                value = float(value)
            except OverflowError:
                return None
        elif type(value) is not float:
            return None
        if not math.isfinite(value):
            return None
        out.append((name, offset, value))
    return out


def _summarise(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "message"
        parts.append(f"{where}: {err['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def json_schema() -> dict[str, Any]:
    """The JSON Schema of every message kind, as checked in at contracts/schema.json."""
    schema = _ADAPTER.json_schema()
    schema["title"] = "moldlab message"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
