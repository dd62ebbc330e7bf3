"""The broker side of ingest's session: its client, subscription, and how the broker said no.

A worker's session is persistent (QoS 1 messages wait in it while ingest is down): a plain
MQTT 3.1.1 session without clean_session, or, in a shared group, an MQTT v5 session that
never expires.
"""

from __future__ import annotations

import json

import aiomqtt
from aiomqtt.exceptions import MqttCodeError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from contracts import BrokerUrl, Topic
from ingest.errors import IngestError
from ingest.settings import IngestSettings

# MQTT v5 ends a session at disconnection unless told otherwise; this one outlives any
# disconnection, as a 3.1.1 session without clean_session does.
_SESSION_NEVER_EXPIRES = 0xFFFFFFFF
UNSUPPORTED_PROTOCOL = 0x84  # CONNACK reason code
_SESSION_TAKEN_OVER = 0x8E  # DISCONNECT reason code (EMQX sends it; mosquitto 2.0 just closes)


def subscription(settings: IngestSettings) -> str:
    plain = Topic.subscription(settings.ingest_site)
    if settings.ingest_shared_group is None:
        return plain
    return f"$share/{settings.ingest_shared_group}/{plain}"


def client(settings: IngestSettings, broker: BrokerUrl, *, clean: bool = False) -> aiomqtt.Client:
    """A client for this worker's session: persistent unless `clean` (then it ends it)."""
    if settings.ingest_shared_group is None:
        return aiomqtt.Client(
            **broker.client_options(), identifier=settings.mqtt_client_id, clean_session=clean
        )
    # aiomqtt's default clean_start (clean on each Client's first connection) and v5's
    # default expiry (none) would each throw the session away at every restart.
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho's is unannotated
    if not clean:
        properties.SessionExpiryInterval = _SESSION_NEVER_EXPIRES
    return aiomqtt.Client(
        **broker.client_options(),
        identifier=settings.mqtt_client_id,
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=clean,
        properties=properties,
    )


def hello(settings: IngestSettings) -> bytes:
    """What a worker publishes on contracts.commits.SUBSCRIBED_TOPIC once subscribed."""
    return json.dumps({"client_id": settings.mqtt_client_id}).encode()


def describe(settings: IngestSettings) -> str:
    if settings.ingest_shared_group is None:
        return f"plain subscription, MQTT 3.1.1, client id {settings.mqtt_client_id}"
    return (
        f"shared group {settings.ingest_shared_group} as worker {settings.ingest_worker}, "
        f"MQTT v5, client id {settings.mqtt_client_id}"
    )


async def end_session(settings: IngestSettings, broker: BrokerUrl) -> None:
    """Connect with a clean start and go: the broker discards the session."""
    try:
        async with client(settings, broker, clean=True):
            pass
    except aiomqtt.MqttError as exc:
        raise IngestError(
            f"the session is empty but could not be ended ({exc}); leave again to end it"
        ) from exc


def check_granted(codes: tuple[int, ...] | list[ReasonCode], subscription: str) -> None:
    """Raise IngestError if the broker refused `subscription` (a SUBACK failure code)."""
    for code in codes:
        value = code.value if isinstance(code, ReasonCode) else code
        if value >= 0x80:
            raise IngestError(
                f"the broker refused the subscription {subscription}: {code} (0x{value:02X})"
            )


def leaf(group: BaseExceptionGroup[aiomqtt.MqttError]) -> aiomqtt.MqttError:
    exc: aiomqtt.MqttError | BaseExceptionGroup[aiomqtt.MqttError] = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def taken_over(exc: BaseException) -> bool:
    """Whether the broker ended the connection because another client took the session."""
    return _SESSION_TAKEN_OVER in (reason(exc), reason(exc.__cause__))


def reason(exc: BaseException | None) -> int | None:
    """The MQTT reason code an aiomqtt error carries, if any."""
    if not isinstance(exc, MqttCodeError):
        return None
    rc = exc.rc
    return rc.value if isinstance(rc, ReasonCode) else rc
