"""Checks an inbound MQTT message against the contract; what fails is rejected with a reason."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from contracts import ContractError, EdgeStatus, TelemetryBatch, Topic
from contracts.codec import AnyMessage, Sample, decode_samples


class RejectedMessage(ValueError):
    """An inbound message ingest will not write; the text is the reason stored with it."""


@dataclass(frozen=True, slots=True)
class Inbound:
    """One message as it came off the broker."""

    topic: str
    payload: bytes
    received_at: datetime


@dataclass(frozen=True, slots=True)
class Limits:
    """What ingest accepts: sizes, how far from now a reading may be, how much a plant has."""

    max_payload_bytes: int = 1_048_576
    max_future: timedelta = timedelta(minutes=5)
    max_age: timedelta = timedelta(days=365)
    max_machines: int = 1000
    max_machines_per_site: int = 500
    max_signals: int = 2000  # distinct signal names
    max_signals_per_machine: int = 256


def validate(inbound: Inbound, limits: Limits) -> tuple[Topic, AnyMessage, list[Sample] | None]:
    """The topic, message and (telemetry) samples of `inbound`, or RejectedMessage saying why.

    Every reading's time (the batch's ts plus its offset) must lie within the limits, not
    only the batch's.

    A telemetry batch comes with its readings as samples, and then its message carries only
    the first reading (contracts.codec.decode_samples).
    """
    size = len(inbound.payload)
    if size > limits.max_payload_bytes:
        raise RejectedMessage(f"payload of {size} bytes exceeds {limits.max_payload_bytes}")
    try:
        topic = Topic.parse(inbound.topic)
        message, samples = decode_samples(inbound.payload)
    except ContractError as exc:
        raise RejectedMessage(str(exc)) from exc
    if message.machine_id != topic.machine:
        raise RejectedMessage(
            f"machine_id {message.machine_id!r} contradicts topic machine {topic.machine!r}"
        )
    if message.kind != topic.kind:
        raise RejectedMessage(f"kind {message.kind.value!r} contradicts topic {topic.kind.value!r}")
    if isinstance(message, EdgeStatus) and message.machines:
        # A gateway serves the machines of its own line (edge.config): one that names others
        # would take them offline with its death.
        line = f"{topic.site}/{topic.area}/{topic.line}"
        foreign = next((m for m in message.machines if not m.startswith(f"{line}/")), None)
        if foreign is not None:
            raise RejectedMessage(
                f"machines: {foreign!r} contradicts topic line {line!r}"
                " (a gateway serves the machines of its own line)"
            )
    newest = newest_time(message, samples)
    if newest > inbound.received_at + limits.max_future:
        raise RejectedMessage(f"timestamp {newest.isoformat()} is in the future")
    if message.ts < inbound.received_at - limits.max_age:
        raise RejectedMessage(f"timestamp {message.ts.isoformat()} is older than {limits.max_age}")
    return topic, message, samples


def newest_time(message: AnyMessage, samples: list[Sample] | None) -> datetime:
    """The time of the message's newest reading (its ts but for telemetry)."""
    return message.ts + timedelta(milliseconds=_last_offset_ms(message, samples))


def _last_offset_ms(message: AnyMessage, samples: list[Sample] | None) -> int:
    """How far after the message's ts its last reading lies (0 but for telemetry)."""
    if samples is not None:
        return max(offset for _, offset, _ in samples)
    if isinstance(message, TelemetryBatch):
        return max(r.offset_ms for r in message.readings)
    return 0
