"""The message kinds on the wire: telemetry batches, cycle records, state changes, status, jobs.

Every message carries the schema version, the machine id, a timezone-aware UTC timestamp,
the id of the source that published it and that source's next sequence number: ingest
uses (source, seq) to drop redeliveries and to see gaps.

Schema versions, each read as it was written (decode takes every one in SCHEMA_VERSIONS):

1. telemetry, cycle, state and status messages.
2. added the `job` kind, the cycle's `job` and a gateway birth's `machines`.
3. added the cycle's `defect`: why the parts of a bad cycle are bad (contracts.DEFECT_CAUSES).

A message that claims a version and carries what only a later one has (a job message or a
cycle's job in version 1, a cycle's defect in version 1 or 2) is refused, as is a defect on
a cycle whose parts are not bad.
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

SCHEMA_VERSION: Final = 3
SCHEMA_VERSIONS: Final = (1, 2, 3)  # what decode reads: every version published so far

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
SOURCE_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
MachineId = Annotated[str, Field(pattern=ID_PATTERN, description="machine id, as in the topic")]
SourceId = Annotated[
    str,
    Field(
        pattern=SOURCE_PATTERN,
        description="the publisher whose sequence numbers these are (edge gateway, simulator)",
    ),
]
SignalName = Annotated[str, Field(pattern=SIGNAL_PATTERN)]
# A machine's place, site/area/line/machine: four ids (contracts.Place).
PLACE_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,63}){3}$"
PlaceText = Annotated[str, Field(pattern=PLACE_PATTERN, description="site/area/line/machine")]
MAX_GATEWAY_MACHINES: Final = 500  # machines one gateway's birth may list
# Free text (a reason, a detail): printable, so that every log and database takes it whole.
_TEXT_PATTERN: Final = r"^[^\x00-\x1f\x7f]*$"
# A name a person typed on a machine's panel or an MES sent (a job, a mould, a material):
# printable, without leading or trailing blanks, which a fixed-length register pads with.
NAME_PATTERN: Final = r"^[^\x00-\x20\x7f]([^\x00-\x1f\x7f]*[^\x00-\x20\x7f])?$"
NAME_MAX: Final = 64
Name = Annotated[str, Field(min_length=1, max_length=NAME_MAX, pattern=NAME_PATTERN)]


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
    """JSON's integers only: not true, 1.0 or "1" (which lax validation would take for 1)."""
    if type(value) is not int:
        raise ValueError(f"must be an integer: one of {', '.join(map(str, SCHEMA_VERSIONS))}")
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
    JOB = "job"


class PartQuality(StrEnum):
    GOOD = "good"
    BAD = "bad"
    TEST = "test"  # a test sample taken out for inspection


class JobStatus(StrEnum):
    """EUROMAP 77's JobStatus (OPC 40083 JobStatusEnumeration), its names in lower case.

    The Modbus register map gives each its EUROMAP number (contracts/registers.yaml).
    """

    OTHER = "other"  # none of the others applies
    TRANSFERRED_ASSIGNED = "transferred_assigned"  # sent to the machine, the current job
    SET_UP_ACTIVE = "set_up_active"  # the machine is being prepared for it (mould change)
    SET_UP_INTERRUPTED = "set_up_interrupted"
    SET_UP_FINISHED = "set_up_finished"
    START_UP_ACTIVE = "start_up_active"  # starting up: the first parts, until they are good
    JOB_IN_PRODUCTION = "job_in_production"
    JOB_INTERRUPTED = "job_interrupted"  # stopped before its nominal parts were made
    JOB_FINISHED = "job_finished"  # its nominal parts are made
    TEAR_DOWN_ACTIVE = "tear_down_active"
    TEAR_DOWN_INTERRUPTED = "tear_down_interrupted"
    TEAR_DOWN_FINISHED = "tear_down_finished"


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    # Required on the wire (contracts.codec.decode); the default serves Python code.
    schema_version: Annotated[Literal[1, 2, 3], BeforeValidator(_exactly_int)] = Field(
        default=SCHEMA_VERSION, description="the wire schema version (1, 2 or 3)"
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
    job: Name | None = Field(
        default=None,
        description="the JobName of the job this cycle made parts for (schema version 2)",
    )
    defect: Name | None = Field(
        default=None,
        description="why this bad cycle's parts are bad, e.g. short_shot (contracts."
        "DEFECT_CAUSES names the usual ones); only with quality bad (schema version 3)",
    )

    @model_validator(mode="after")
    def _job_since_version_2(self) -> CycleRecord:
        if self.job is not None and self.schema_version < 2:
            raise ValueError("job: a cycle's job needs schema_version 2")
        return self

    @model_validator(mode="after")
    def _defect_of_bad_parts_since_version_3(self) -> CycleRecord:
        if self.defect is None:
            return self
        if self.schema_version < 3:
            raise ValueError("defect: a cycle's defect needs schema_version 3")
        if self.quality is not PartQuality.BAD:
            raise ValueError(
                f"defect: only bad parts have a defect cause, not {self.quality.value} ones"
            )
        return self

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
    """Birth and death of a publisher (retained, and its MQTT last will); machine_id is its id.

    A gateway's birth lists the machines it serves (`machines`), so that its death (its
    will) tells which machines are lost with it.
    """

    kind: Literal[MessageKind.STATUS] = MessageKind.STATUS
    online: StrictBool
    detail: str | None = Field(default=None, max_length=256, pattern=_TEXT_PATTERN)
    machines: list[PlaceText] | None = Field(
        default=None,
        max_length=MAX_GATEWAY_MACHINES,
        description="the machines a gateway serves, each site/area/line/machine; in a birth"
        " (online: true) only (schema version 2)",
    )

    @model_validator(mode="after")
    def _machines_in_a_version_2_birth(self) -> EdgeStatus:
        if self.machines is not None and self.schema_version < 2:
            raise ValueError("machines: a status's machines need schema_version 2")
        if self.machines is not None and not self.online:
            raise ValueError("machines: only a birth (online: true) lists them")
        return self


class Job(BaseModel):
    """A machine's current job and mould in EUROMAP 77's terms: what a JobRecord tells."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job_name: Name = Field(description="EUROMAP 77 JobName")
    mould_id: Name = Field(description="EUROMAP 77 MouldId: the mould the job runs in")
    job_status: JobStatus = Field(description="EUROMAP 77 JobStatus")
    active_cavities: StrictInt = Field(
        ge=1, le=1024, description="EUROMAP 77 NumCavities: cavities in use, parts per shot"
    )
    nominal_parts: StrictInt = Field(
        ge=0,
        lt=2**53,
        description="EUROMAP 77 NominalParts: parts the job is to make (all cavities); 0: open",
    )
    material: Name | None = Field(default=None, description="EUROMAP 77 Material, if one")


class JobRecord(Job, _Message):
    """The machine's job or mould changed, or its JobStatus: sent retained (since version 2)."""

    kind: Literal[MessageKind.JOB] = MessageKind.JOB
    schema_version: Annotated[Literal[2, 3], BeforeValidator(_exactly_int)] = Field(
        default=SCHEMA_VERSION, description="the wire schema version: 2 (the first with jobs) or 3"
    )

    @property
    def job(self) -> Job:
        """The job alone, without the envelope."""
        return Job.model_validate(self.model_dump(include=set(Job.model_fields)))


Message = Annotated[
    TelemetryBatch | CycleRecord | StateChange | EdgeStatus | JobRecord,
    Field(discriminator="kind"),
]
