"""Bytes on the wire to and from messages: orjson for speed, pydantic for validation."""

from __future__ import annotations

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
