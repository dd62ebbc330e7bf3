"""Several ingest workers in one MQTT v5 shared group, as processes against real mosquitto and
PostgreSQL: the load split between them, a worker killed or retired, every message once.

Sources publish telemetry with consecutive sequence numbers; what arrived is counted by seq
in message_log and, through each reading's value (its message's seq), in telemetry.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import httpx
import psycopg
import pytest
from aiomqtt.exceptions import MqttCodeError
from ingest_child import IngestChild, wait_until
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode
from prometheus_client.parser import text_string_to_metric_families

from contracts import BrokerUrl, MessageKind, Reading, TelemetryBatch, Topic, encode
from ingest import IngestSettings, run_ingest
from ingest.errors import IngestError
from ingest.session import check_granted, taken_over
from moldlab.servers import LocalPythonBroker
from moldlab.servers.process import free_port

_READINGS = 10  # per message


def _source(site: str, machine: str) -> str:
    return f"src-{site}-{machine}"


def _payload(site: str, machine: str, seq: int) -> bytes:
    readings = [
        Reading(signal="CounterShots", offset_ms=i * 50, value=float(seq)) for i in range(_READINGS)
    ]
    msg = TelemetryBatch(
        machine_id=machine, ts=datetime.now(UTC), source=_source(site, machine), seq=seq,
        readings=readings,
    )  # fmt: skip
    return encode(msg)


async def _publish(
    mqtt_url: str, site: str, machines: Iterable[str], seqs: range, rate_hz: float
) -> None:
    """Each machine publishes `seqs` in order at QoS 1, `rate_hz` messages a second each."""
    machines = list(machines)
    async with aiomqtt.Client(**BrokerUrl.parse(mqtt_url).client_options()) as client:
        started = time.monotonic()
        for n, seq in enumerate(seqs, 1):
            await asyncio.sleep(max(0.0, started + n / rate_hz - time.monotonic()))
            for machine in machines:
                topic = str(Topic(site, "hall", "l1", machine, MessageKind.TELEMETRY))
                await client.publish(topic, _payload(site, machine, seq), qos=1)


class _Worker(IngestChild):
    """`python -m moldlab ingest --shared-group ... --worker NAME` as a child process."""

    def __init__(
        self, database_url: str, mqtt_url: str, site: str, group: str, name: str, log_dir: Path
    ) -> None:
        self.client_id = f"ingest-{site}-{name}"
        self.metrics_url = f"http://127.0.0.1:{free_port()}/metrics"
        env = {
            **os.environ,
            "MOLDLAB_DATABASE_URL": database_url,
            "MOLDLAB_MQTT_URL": mqtt_url,
            "MOLDLAB_INGEST_CLIENT_ID": f"ingest-{site}",
            "MOLDLAB_INGEST_SITE": site,
            "MOLDLAB_INGEST_SHARED_GROUP": group,
            "MOLDLAB_INGEST_WORKER": name,
            "MOLDLAB_INGEST_METRICS_PORT": self.metrics_url.split(":")[2].split("/")[0],
        }
        super().__init__(env, log_dir / f"ingest-{site}-{name}.log", name)

    async def leave(self) -> str:
        """Run `moldlab ingest --leave` as this worker; its output.

        Its batches wait 2.5 s for more, longer than the 2 s of quiet after which a leaving
        worker deems its session empty: what it holds then must still be written first, and
        the broker sends the rest of the session only after those acks.
        """
        env = self.env | {"MOLDLAB_INGEST_BATCH_MAX_WAIT_S": "2.5"}
        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "moldlab", "ingest", "--leave"],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result.stderr

    async def messages(self) -> float:
        """Messages this worker has acknowledged since it started, from its metrics."""
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(self.metrics_url)
        response.raise_for_status()
        return sum(
            sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
            if sample.name == "moldlab_ingest_messages_total"
        )


@pytest.fixture
async def workers(
    database_url: str, mqtt_url: str, scratch_dir: Path
) -> AsyncIterator[Callable[[str, str, str], _Worker]]:
    made: list[_Worker] = []

    def make(site: str, group: str, name: str) -> _Worker:
        worker = _Worker(database_url, mqtt_url, site, group, name, scratch_dir)
        made.append(worker)
        return worker

    yield make
    for worker in made:
        await worker.stop()
    options = BrokerUrl.parse(mqtt_url).client_options()
    for worker in made:  # discard the sessions and whatever they still hold
        async with aiomqtt.Client(**options, identifier=worker.client_id, clean_session=True):
            pass


def _seqs(database_url: str, site: str, machine: str) -> list[int]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT seq FROM message_log WHERE source = %s ORDER BY seq",
            (_source(site, machine),),
        ).fetchall()
    return [int(seq) for (seq,) in rows]


async def _wait_for_all(
    database_url: str, site: str, machines: list[str], last: int, workers: list[_Worker]
) -> None:
    async def complete() -> bool:
        counts = [len(await asyncio.to_thread(_seqs, database_url, site, m)) for m in machines]
        return min(counts) >= last

    try:
        await wait_until(complete, 30, f"seq 1..{last} of every source committed")
    except AssertionError as exc:
        logs = "\n".join(f"--- worker {w.name}:\n{w.tail()}" for w in workers)
        raise AssertionError(f"{exc}\n{logs}") from None


def _assert_exactly_once(database_url: str, site: str, machine: str, last: int) -> None:
    """seq 1..last once each in message_log and _READINGS times each in telemetry."""
    expected = list(range(1, last + 1))
    seqs = _seqs(database_url, site, machine)
    assert seqs == expected, f"{machine}: missing {sorted(set(expected) - set(seqs))[:20]}"
    with psycopg.connect(database_url) as conn:
        per_seq = conn.execute(
            "SELECT t.value::bigint, count(*) FROM telemetry t"
            " JOIN machine m ON m.id = t.machine_id WHERE m.machine_key = %s"
            " GROUP BY 1 ORDER BY 1",
            (machine,),
        ).fetchall()
    counts = {int(seq): int(n) for seq, n in per_seq}
    assert sorted(counts) == expected, f"{machine}: telemetry lacks some seqs"
    wrong = {seq: n for seq, n in counts.items() if n != _READINGS}
    assert not wrong, f"{machine}: seq -> rows, expected {_READINGS} each: {wrong}"


@pytest.mark.infra
@pytest.mark.slow
async def test_two_workers_share_the_load_and_a_killed_one_loses_nothing(
    database_url: str, mqtt_url: str, workers: Callable[[str, str, str], _Worker]
) -> None:
    site = f"share-{uuid.uuid4().hex[:6]}"
    group = f"g{uuid.uuid4().hex[:6]}"
    machines = [f"imm-{site[-6:]}-{i}" for i in (1, 2, 3)]
    a, b = workers(site, group, "a"), workers(site, group, "b")
    await asyncio.gather(a.start(), b.start())
    assert b"shared group" in a.log_path.read_bytes()
    # 1. Both write a share of the load; then `a` is killed mid-stream.
    publisher = asyncio.create_task(_publish(mqtt_url, site, machines, range(1, 301), rate_hz=60))
    try:
        await asyncio.sleep(2)
        a_wrote, b_wrote = await a.messages(), await b.messages()
        assert a_wrote > 0, f"worker a wrote nothing:\n{a.tail()}"
        assert b_wrote > 0, f"worker b wrote nothing:\n{b.tail()}"
        await a.kill()
        b_wrote = await b.messages()
        assert not publisher.done(), "publishing ended before the kill"
        await publisher
    finally:
        publisher.cancel()
    # `b` goes on writing its share meanwhile. (mosquitto keeps routing a's turn to a's
    # session, which holds those messages until a is back.)
    await wait_until(lambda: _more(b, b_wrote), 10, "worker b writing on after a was killed")
    # 2. Both down while the sources go on: the sessions persist and hold the messages.
    await b.stop()
    await _publish(mqtt_url, site, machines, range(301, 351), rate_hz=200)
    # 3. Back (as systemd would restart them): every message once.
    await asyncio.gather(a.start(), b.start())
    await _wait_for_all(database_url, site, machines, 350, [a, b])
    for machine in machines:
        _assert_exactly_once(database_url, site, machine, 350)


async def _more(worker: _Worker, than: float) -> bool:
    return await worker.messages() > than


@pytest.mark.infra
@pytest.mark.slow
async def test_a_worker_that_leaves_hands_its_share_to_the_others(
    database_url: str, mqtt_url: str, workers: Callable[[str, str, str], _Worker]
) -> None:
    site = f"leave-{uuid.uuid4().hex[:6]}"
    group = f"g{uuid.uuid4().hex[:6]}"
    machines = [f"imm-{site[-6:]}-{i}" for i in (1, 2)]
    a, b = workers(site, group, "a"), workers(site, group, "b")
    await asyncio.gather(a.start(), b.start())
    last = 900  # 15 s of publishing: `a` leaves in the middle
    publisher = asyncio.create_task(
        _publish(mqtt_url, site, machines, range(1, last + 1), rate_hz=60)
    )
    try:
        await asyncio.sleep(1.5)
        await a.stop()  # its session goes on collecting its turn of the messages
        await asyncio.sleep(1)
        left = await a.leave()
        assert not publisher.done(), f"publishing ended before `a` left:\n{left}"
        await publisher
    finally:
        publisher.cancel()
    assert "leaving: unsubscribed from $share/" in left
    held = re.search(
        r"left: wrote the (\d+) messages the session still held; session (\S+) ended", left
    )
    assert held, left
    assert int(held[1]) > 0, "a's session held nothing: it cannot have been persistent"
    assert held[2] == a.client_id
    # Without `a` ever coming back, `b` has everything published after `a` left, and `a`'s
    # leaving wrote what its session held.
    await _wait_for_all(database_url, site, machines, last, [a, b])
    for machine in machines:
        _assert_exactly_once(database_url, site, machine, last)


def test_a_shared_group_needs_a_worker_name() -> None:
    env = {
        **os.environ,
        "MOLDLAB_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
        "MOLDLAB_INGEST_SHARED_GROUP": "plant",
    }
    env.pop("MOLDLAB_INGEST_WORKER", None)
    result = subprocess.run(
        [sys.executable, "-m", "moldlab", "ingest"], env=env, capture_output=True, text=True,
        timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "MOLDLAB_INGEST_WORKER" in result.stderr
    assert "worker name" in result.stderr


def test_a_worker_session_is_its_own_client_id() -> None:
    settings = IngestSettings(
        database_url="postgresql://x", ingest_shared_group="plant", ingest_worker="w2"
    )
    assert settings.mqtt_client_id == "moldlab-ingest-w2"
    assert IngestSettings(database_url="postgresql://x").mqtt_client_id == "moldlab-ingest"
    with pytest.raises(ValueError, match="for a shared group"):
        IngestSettings(database_url="postgresql://x", ingest_worker="w2")
    with pytest.raises(ValueError, match="should match pattern"):
        IngestSettings(database_url="postgresql://x", ingest_shared_group="a/b", ingest_worker="w")


@pytest.mark.infra
@pytest.mark.slow
async def test_a_broker_without_mqtt_v5_is_a_clear_error(
    scratch_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with LocalPythonBroker(scratch_dir / f"amqtt-{uuid.uuid4().hex[:6]}") as broker:
        settings = IngestSettings(
            database_url="postgresql://nobody@127.0.0.1:1/none", mqtt_url=broker.url,
            ingest_shared_group="plant", ingest_worker="w1", ingest_metrics_port=0,
        )  # fmt: skip
        stop = asyncio.Event()
        task = asyncio.create_task(run_ingest(settings, stop))

        async def refused() -> bool:
            if task.done():
                return True
            return "a shared group needs an MQTT v5 broker" in caplog.text

        try:
            await wait_until(refused, 30, "a clear error")
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
    assert "a shared group needs an MQTT v5 broker" in caplog.text


@pytest.mark.infra
@pytest.mark.slow
async def test_two_workers_with_one_name_are_told_so(
    database_url: str, mqtt_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    site = f"twins-{uuid.uuid4().hex[:6]}"
    settings = IngestSettings(
        database_url=database_url, mqtt_url=mqtt_url, ingest_site=site,
        ingest_client_id=f"ingest-{site}", ingest_shared_group="plant", ingest_worker="w1",
        ingest_metrics_port=0,
    )  # fmt: skip
    stop = asyncio.Event()
    twins = [asyncio.create_task(run_ingest(settings, stop)) for _ in range(2)]

    async def told() -> bool:
        return "needs a client id of its own" in caplog.text

    try:
        await wait_until(told, 15, "the session takeover logged")
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*twins), 15)
        async with aiomqtt.Client(
            **BrokerUrl.parse(mqtt_url).client_options(), identifier=settings.mqtt_client_id,
            clean_session=True,
        ):  # fmt: skip
            pass
    assert f"is another process connected as ingest-{site}-w1?" in caplog.text


def test_a_session_taken_over_is_recognised() -> None:
    # As aiomqtt raises it when a broker (EMQX, say) sends DISCONNECT 0x8E.
    cause = MqttCodeError(ReasonCode(PacketTypes.DISCONNECT, identifier=0x8E), "Unexpected")
    with pytest.raises(aiomqtt.MqttError) as caught:
        raise aiomqtt.MqttError("Disconnected during message iteration") from cause
    assert taken_over(caught.value)
    assert not taken_over(aiomqtt.MqttError("Operation timed out"))


def test_a_refused_subscription_is_an_error() -> None:
    check_granted([ReasonCode(PacketTypes.SUBACK, identifier=1)], "$share/g/t")
    check_granted((1,), "t")
    refused = ReasonCode(PacketTypes.SUBACK, identifier=0x9E)  # shared subs not supported
    with pytest.raises(IngestError, match=r"refused the subscription \$share/g/t: .*0x9E"):
        check_granted([refused], "$share/g/t")
    with pytest.raises(IngestError, match="0x80"):
        check_granted((0x80,), "t")  # MQTT 3.1.1's failure
