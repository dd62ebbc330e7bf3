"""Checks an inbound MQTT message against the contract; what fails is rejected with a reason."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from contracts import ContractError, Topic
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
    max_payload_bytes: int = 1_048_576
    max_future: timedelta = timedelta(minutes=5)
    max_age: timedelta = timedelta(days=365)


def validate(inbound: Inbound, limits: Limits) -> tuple[Topic, AnyMessage, list[Sample] | None]:
    """The topic, message and (telemetry) samples of `inbound`, or RejectedMessage saying why.

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
    if message.ts > inbound.received_at + limits.max_future:
        raise RejectedMessage(f"timestamp {message.ts.isoformat()} is in the future")
    if message.ts < inbound.received_at - limits.max_age:
        raise RejectedMessage(f"timestamp {message.ts.isoformat()} is older than {limits.max_age}")
    return topic, message, samples
