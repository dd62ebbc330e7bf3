"""The four message kinds on the wire: telemetry batches, cycle records, state changes, status.

Every message carries the schema version, the machine id, a timezone-aware UTC timestamp,
the id of the source that published it and that source's next sequence number: ingest
uses (source, seq) to drop redeliveries and to see gaps.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    field_validator,
    model_validator,
)

from contracts.signals import CYCLE_PARAMETERS, MachineState, parameter_range, signal_range

SCHEMA_VERSION: Final = 1

# Every timestamp on the wire lies in this range (UTC): wide enough for any clock a gateway
# can have (a Raspberry Pi without NTP boots in 1970), narrow enough that no conversion or
# sum of offsets overflows. Ingest narrows it further (a year old, minutes ahead).
TS_MIN: Final = datetime(1970, 1, 1, tzinfo=UTC)
TS_MAX: Final = datetime(2100, 1, 1, tzinfo=UTC)
# RFC 3339 with a mandatory offset: no Unix time, no local time, no lower-case T or Z.
TS_PATTERN: Final = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})$"
)
_TS = re.compile(TS_PATTERN)
# The same in the JSON Schema, with the years of the range (decode says "out of range" instead).
_TS_SCHEMA_PATTERN: Final = TS_PATTERN.replace("^[0-9]{4}", "^(19[7-9][0-9]|20[0-9][0-9])")

ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
SIGNAL_PATTERN: Final = r"^[A-Za-z][A-Za-z0-9_.]{0,63}$"
MachineId = Annotated[str, Field(pattern=ID_PATTERN, description="machine id, as in the topic")]
SourceId = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$",
        description="the publisher whose sequence numbers these are (edge gateway, simulator)",
    ),
]
SignalName = Annotated[str, Field(pattern=SIGNAL_PATTERN)]
# Free text (a reason, a detail): printable, so that every log and database takes it whole.
_TEXT_PATTERN: Final = r"^[^\x00-\x1f\x7f]*$"


def _utc_timestamp(value: Any) -> datetime:
    """An RFC 3339 string (or, from Python code, an aware datetime) as UTC within range."""
    if isinstance(value, str):
        if not _TS.match(value):
            raise ValueError("must be an RFC 3339 timestamp with an offset: 2026-01-05T08:00:00Z")
        value = datetime.fromisoformat(value)  # ValueError for a 30th of February
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValueError("must be a timezone-aware timestamp")
    try:
        utc = value.astimezone(UTC)
    except OverflowError:  # year 1 east of UTC, year 9999 west of it
        raise ValueError(f"must lie between {TS_MIN:%Y-%m-%d} and {TS_MAX:%Y-%m-%d}") from None
    if not TS_MIN <= utc < TS_MAX:
        raise ValueError(f"must lie between {TS_MIN:%Y-%m-%d} and {TS_MAX:%Y-%m-%d}")
    return utc


def _exactly_int(value: Any) -> Any:
    """JSON's 1 only: not true, 1.0 or "1" (which lax validation would take for 1)."""
    if type(value) is not int:
        raise ValueError("must be the integer 1")
    return value


def _check_range(name: str, value: float, bounds: tuple[float, float]) -> None:
    low, high = bounds
    if not low <= value <= high:
        raise ValueError(f"{name} = {value:.6g} is outside its physical range [{low:g}, {high:g}]")


Timestamp = Annotated[
    AwareDatetime,
    BeforeValidator(_utc_timestamp),
    Field(json_schema_extra={"pattern": _TS_SCHEMA_PATTERN}),
]


class MessageKind(StrEnum):
    TELEMETRY = "telemetry"
    CYCLE = "cycle"
    STATE = "state"
    STATUS = "status"


class PartQuality(StrEnum):
    GOOD = "good"
    BAD = "bad"
    TEST = "test"  # a test sample taken out for inspection


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    # Required on the wire (contracts.codec.decode); the default serves Python code.
    schema_version: Annotated[Literal[1], BeforeValidator(_exactly_int)] = Field(
        default=SCHEMA_VERSION, description="the wire schema version"
    )
    machine_id: MachineId
    ts: Timestamp = Field(
        description="when it happened: RFC 3339 with an offset, 1970-2099 (stored in UTC)"
    )
    source: SourceId
    seq: StrictInt = Field(
        ge=0, lt=2**63, description="the source's monotonically increasing number"
    )


class Reading(BaseModel):
    """One sample of one signal, `offset_ms` after the batch timestamp."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    signal: SignalName
    offset_ms: StrictInt = Field(ge=0, le=3_600_000)
    value: StrictFloat = Field(
        description="in the signal's unit, within its physical range (contracts.UNIT_RANGES)"
    )

    @model_validator(mode="after")
    def _in_range(self) -> Reading:
        _check_range(self.signal, self.value, signal_range(self.signal))
        return self


class TelemetryBatch(_Message):
    """Many readings of many signals of one machine: a batch per second per machine is the norm."""

    kind: Literal[MessageKind.TELEMETRY] = MessageKind.TELEMETRY
    readings: list[Reading] = Field(min_length=1, max_length=100_000)


class CycleRecord(_Message):
    """One moulding cycle: EUROMAP 77 cycle parameters and the quality of its parts."""

    kind: Literal[MessageKind.CYCLE] = MessageKind.CYCLE
    shot: StrictInt = Field(
        ge=0, lt=2**63, description="the machine's shot counter after this cycle"
    )
    quality: PartQuality
    parts: StrictInt = Field(default=1, ge=0, le=1024, description="parts made (active cavities)")
    parameters: dict[str, StrictFloat] = Field(
        description="EUROMAP 77 cycle parameters, e.g. CycleTime in s"
    )

    @field_validator("parameters")
    @classmethod
    def _known_parameters(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(CYCLE_PARAMETERS))
        if unknown:
            raise ValueError(
                f"unknown cycle parameters {unknown}; known: {sorted(CYCLE_PARAMETERS)}"
            )
        if "CycleTime" not in value:
            raise ValueError("CycleTime is required")
        for name, number in value.items():
            _check_range(name, number, parameter_range(name))
        return value


class StateChange(_Message):
    """The machine entered `state` at `ts`, for `reason` (a standstill reason code)."""

    kind: Literal[MessageKind.STATE] = MessageKind.STATE
    state: MachineState
    reason: str | None = Field(default=None, max_length=64, pattern=_TEXT_PATTERN)


class EdgeStatus(_Message):
    """Birth and death of a publisher (retained, and its MQTT last will); machine_id is its id."""

    kind: Literal[MessageKind.STATUS] = MessageKind.STATUS
    online: StrictBool
    detail: str | None = Field(default=None, max_length=256, pattern=_TEXT_PATTERN)


Message = Annotated[
    TelemetryBatch | CycleRecord | StateChange | EdgeStatus, Field(discriminator="kind")
]
