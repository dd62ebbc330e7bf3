"""The one wire schema of moldlab: messages, topics, signals and the codec. No I/O.

Exceptions::

    ContractError            (ValueError)
    ├── TopicError           a topic that is not moldlab/v1/{site}/{area}/{line}/{machine}/{kind}
    └── DecodeError          a payload that is not a valid message of the kind it claims
"""

from contracts.broker import BrokerUrl
from contracts.codec import DecodeError, decode, encode
from contracts.errors import ContractError
from contracts.messages import (
    ID_PATTERN,
    PLACE_PATTERN,
    SCHEMA_VERSION,
    SCHEMA_VERSIONS,
    SIGNAL_PATTERN,
    CycleRecord,
    EdgeStatus,
    Job,
    JobRecord,
    JobStatus,
    Message,
    MessageKind,
    PartQuality,
    Reading,
    StateChange,
    TelemetryBatch,
)
from contracts.signals import (
    ALARM_BITS,
    CYCLE_PARAMETERS,
    DEFECT_CAUSES,
    SIGNALS,
    STANDSTILL_REASONS,
    MachineState,
    SignalSpec,
    signal_spec,
)
from contracts.topics import Place, Topic, TopicError

__all__ = [
    "ALARM_BITS",
    "CYCLE_PARAMETERS",
    "DEFECT_CAUSES",
    "ID_PATTERN",
    "PLACE_PATTERN",
    "SCHEMA_VERSION",
    "SCHEMA_VERSIONS",
    "SIGNALS",
    "SIGNAL_PATTERN",
    "STANDSTILL_REASONS",
    "BrokerUrl",
    "ContractError",
    "CycleRecord",
    "DecodeError",
    "EdgeStatus",
    "Job",
    "JobRecord",
    "JobStatus",
    "MachineState",
    "Message",
    "MessageKind",
    "PartQuality",
    "Place",
    "Reading",
    "SignalSpec",
    "StateChange",
    "TelemetryBatch",
    "Topic",
    "TopicError",
    "decode",
    "encode",
    "signal_spec",
]
