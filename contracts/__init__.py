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
    SCHEMA_VERSION,
    SIGNAL_PATTERN,
    CycleRecord,
    EdgeStatus,
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
    SIGNALS,
    STANDSTILL_REASONS,
    MachineState,
    SignalSpec,
    signal_spec,
)
from contracts.topics import Topic, TopicError

__all__ = [
    "ALARM_BITS",
    "CYCLE_PARAMETERS",
    "ID_PATTERN",
    "SCHEMA_VERSION",
    "SIGNALS",
    "SIGNAL_PATTERN",
    "STANDSTILL_REASONS",
    "BrokerUrl",
    "ContractError",
    "CycleRecord",
    "DecodeError",
    "EdgeStatus",
    "MachineState",
    "Message",
    "MessageKind",
    "PartQuality",
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
