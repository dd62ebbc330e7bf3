"""The four message kinds on the wire: telemetry batches, cycle records, state changes, status.

Every message carries the schema version, the machine id, a timezone-aware UTC timestamp,
the id of the source that published it and that source's next sequence number: ingest
uses (source, seq) to drop redeliveries and to see gaps.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from contracts.signals import CYCLE_PARAMETERS, MachineState

SCHEMA_VERSION: Final = 1

_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
MachineId = Annotated[str, Field(pattern=_ID_PATTERN, description="machine id, as in the topic")]
SourceId = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$",
        description="the publisher whose sequence numbers these are (edge gateway, simulator)",
    ),
]
SignalName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_.]{0,63}$")]


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

    schema_version: Literal[1] = Field(
        default=SCHEMA_VERSION, description="the wire schema version"
    )
    machine_id: MachineId
    ts: AwareDatetime = Field(description="when it happened, timezone-aware (stored in UTC)")
    source: SourceId
    seq: int = Field(ge=0, lt=2**63, description="the source's monotonically increasing number")

    @field_validator("ts")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)


class Reading(BaseModel):
    """One sample of one signal, `offset_ms` after the batch timestamp."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    signal: SignalName
    offset_ms: int = Field(ge=0, le=3_600_000)
    value: float


class TelemetryBatch(_Message):
    """Many readings of many signals of one machine: a batch per second per machine is the norm."""

    kind: Literal[MessageKind.TELEMETRY] = MessageKind.TELEMETRY
    readings: list[Reading] = Field(min_length=1, max_length=100_000)


class CycleRecord(_Message):
    """One moulding cycle: EUROMAP 77 cycle parameters and the quality of its parts."""

    kind: Literal[MessageKind.CYCLE] = MessageKind.CYCLE
    shot: int = Field(ge=0, lt=2**63, description="the machine's shot counter after this cycle")
    quality: PartQuality
    parts: int = Field(default=1, ge=0, le=1024, description="parts made (active cavities)")
    parameters: dict[str, float] = Field(
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
        return value


class StateChange(_Message):
    """The machine entered `state` at `ts`, for `reason` (a standstill reason code)."""

    kind: Literal[MessageKind.STATE] = MessageKind.STATE
    state: MachineState
    reason: str | None = Field(default=None, max_length=64)


class EdgeStatus(_Message):
    """Birth and death of a publisher (retained, and its MQTT last will); machine_id is its id."""

    kind: Literal[MessageKind.STATUS] = MessageKind.STATUS
    online: bool
    detail: str | None = Field(default=None, max_length=256)


Message = Annotated[
    TelemetryBatch | CycleRecord | StateChange | EdgeStatus, Field(discriminator="kind")
]
