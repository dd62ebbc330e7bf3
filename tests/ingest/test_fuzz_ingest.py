"""A running `moldlab ingest` under hypothesis: generated and mutated messages over mosquitto.

Each example publishes valid messages of three machines mixed with mutated ones (wrong types,
missing and extra keys, duplicate keys, timestamps out of range, values past their physical
range, cut-short and byte-flipped payloads, contradicting topics) and checks: ingest is still
running, every valid message is in message_log once with each of its readings once, and every
refused payload is in rejected_message once with a reason. What is valid is what
ingest.validation says; that the decoder says exactly what contracts/schema.json says is
tests/contracts/test_fuzz_decoder.py's job. Derandomized, so CI repeats the same examples.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as paho
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ingest_child import IngestChild
from mutations import mutate, valid_message

from contracts import BrokerUrl, TelemetryBatch
from ingest import Inbound, Limits, RejectedMessage
from ingest.validation import validate

pytestmark = [pytest.mark.infra, pytest.mark.slow]

SITE = f"fuzz-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
async def ingest(
    database_url: str, mqtt_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[IngestChild]:
    env = {
        **os.environ,
        "MOLDLAB_DATABASE_URL": database_url,
        "MOLDLAB_MQTT_URL": mqtt_url,
        "MOLDLAB_INGEST_SITE": SITE,
        "MOLDLAB_INGEST_CLIENT_ID": f"ingest-{SITE}",
        "MOLDLAB_INGEST_METRICS_PORT": "0",
    }
    child = IngestChild(env, tmp_path_factory.mktemp("fuzz") / "ingest.log")
    await child.start()
    yield child
    await child.stop()


def _publish(mqtt_url: str, messages: list[tuple[str, bytes]]) -> None:
    broker = BrokerUrl.parse(mqtt_url)  # the test broker: plain MQTT, no credentials
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"fuzz-{uuid.uuid4().hex[:8]}")
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(10)
            assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


def _corpus(rng: random.Random, valid: int, broken: int) -> tuple[str, list[tuple[str, bytes]]]:
    """`valid` messages of three new machines and `broken` mutations of such messages, and
    the prefix of their sources."""
    uid = uuid.uuid4().hex[:8]
    machines = [f"fz{uid}-{i}" for i in range(3)]
    now = datetime.now(UTC)

    def topic(machine: str, kind: str) -> str:
        return f"moldlab/v1/{SITE}/hall/line-1/{machine}/{kind}"

    corpus = []
    for n in range(valid + broken):
        machine = rng.choice(machines)
        message = valid_message(rng, machine=machine, source=f"fz-{uid}:{machine}", seq=n, now=now)
        kind = message["kind"]
        if n < valid:
            corpus.append((topic(machine, kind), json.dumps(message).encode()))
            continue
        roll = rng.random()
        if roll < 0.05:  # another machine's topic, or another kind's
            corpus.append((topic(rng.choice(machines), "state"), json.dumps(message).encode()))
        elif roll < 0.08:
            corpus.append((topic(machine, "bogus"), json.dumps(message).encode()))
        else:
            corpus.append((topic(machine, kind), mutate(message, rng)))
    rng.shuffle(corpus)
    return f"fz-{uid}:", corpus


def _digest(topic: str, payload: bytes) -> bytes:
    return hashlib.sha256(topic.encode() + b"\0" + payload).digest()


@settings(
    max_examples=12,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seed=st.integers(0, 2**32 - 1))
def test_ingest_writes_every_valid_reading_once_and_refuses_the_rest_with_a_reason(
    ingest: IngestChild, database_url: str, mqtt_url: str, seed: int
) -> None:
    # A seed per example, not st.randoms(): hypothesis' randoms shrink towards the first
    # choice every time, and a corpus needs every kind of mistake.
    prefix, corpus = _corpus(random.Random(seed), valid=40, broken=60)
    # What ingest must make of each: the valid by (source, seq), the refused by digest.
    written: dict[tuple[str, int], int] = {}  # -> readings
    refused: set[bytes] = set()
    kept = []
    now = datetime.now(UTC)
    for topic, payload in corpus:
        try:
            _, message, samples = validate(Inbound(topic, payload, now), Limits())
        except RejectedMessage:
            refused.add(_digest(topic, payload))
            kept.append((topic, payload))
            continue
        key = (message.source, message.seq)
        if key in written or not message.source.startswith(prefix):
            # A mutation made seq another valid number, or source another valid id (another
            # example's, or "NaN"): not sent, so that each example's outcome is its own.
            continue
        readings = len(samples) if samples is not None else 0
        if isinstance(message, TelemetryBatch) and samples is None:
            readings = len(message.readings)
        written[key] = readings
        kept.append((topic, payload))
    _publish(mqtt_url, kept)

    sources = sorted({source for source, _ in written})
    deadline = time.monotonic() + 30
    with psycopg.connect(database_url) as conn:
        while True:
            logged = conn.execute(
                "SELECT source, seq FROM message_log WHERE source = ANY(%s)", (sources,)
            ).fetchall()
            rejected = conn.execute(
                "SELECT digest, reason FROM rejected_message WHERE digest = ANY(%s)",
                (list(refused),),
            ).fetchall()
            if len(logged) >= len(written) and len(rejected) >= len(refused):
                break
            assert ingest.alive, ingest.tail()
            if time.monotonic() > deadline:
                missing = set(written) - {(str(s), int(q)) for s, q in logged}
                others = conn.execute(
                    "SELECT reason FROM rejected_message WHERE topic LIKE %s",
                    (f"moldlab/v1/{SITE}/%",),
                ).fetchall()
                raise AssertionError(
                    f"after 30 s: {len(logged)}/{len(written)} written, {len(rejected)}/"
                    f"{len(refused)} refused; missing {sorted(missing)[:5]}; "
                    f"{len(others)} rejections on the site\n{ingest.tail(60)}"
                )
            time.sleep(0.1)
        assert sorted((str(s), int(q)) for s, q in logged) == sorted(written)
        assert {bytes(d) for d, _ in rejected} == refused
        assert all(reason for _, reason in rejected)
        rows = conn.execute(
            "SELECT count(*) FROM telemetry t JOIN machine m ON m.id = t.machine_id"
            " WHERE m.site = %s AND m.machine_key = ANY(%s)",
            (SITE, sorted({s.split(":", 1)[1] for s in sources})),
        ).fetchone()
    assert rows is not None
    assert rows[0] == sum(written.values())
    assert ingest.alive, ingest.tail()


def test_the_fuzzed_ingest_logged_no_traceback(ingest: IngestChild) -> None:
    log = Path(ingest.log_path).read_text(errors="replace")
    assert "Traceback" not in log
    lines = log.splitlines()
    assert max(map(len, lines), default=0) < 1000, "log lines stay bounded"
