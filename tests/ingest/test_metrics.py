"""Ingest's Prometheus metrics: reasons classed, and counters scraped over HTTP from a run."""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import aiomqtt
import httpx
import pytest
from ingest_child import wait_until
from prometheus_client.parser import text_string_to_metric_families

from contracts import (
    BrokerUrl,
    CycleRecord,
    MachineState,
    MessageKind,
    PartQuality,
    Reading,
    StateChange,
    TelemetryBatch,
    Topic,
    encode,
)
from ingest import IngestSettings, run_ingest
from ingest.metrics import KINDS, REJECT_REASONS, reject_reason
from ingest.validation import Inbound, Limits, RejectedMessage, validate
from moldlab.servers.process import free_port

NOW = datetime.now(UTC)


def _telemetry(machine: str, seq: int, readings: int = 10, ts: datetime | None = None) -> bytes:
    msg = TelemetryBatch(
        machine_id=machine, ts=ts or datetime.now(UTC), source=f"src-{machine}", seq=seq,
        readings=[Reading(signal="TempZone1", offset_ms=i, value=200.0) for i in range(readings)],
    )  # fmt: skip
    return encode(msg)


def _cycle(machine: str, seq: int) -> bytes:
    msg = CycleRecord(
        machine_id=machine, ts=datetime.now(UTC), source=f"src-{machine}", seq=seq, shot=seq,
        quality=PartQuality.GOOD, parameters={"CycleTime": 15.0},
    )  # fmt: skip
    return encode(msg)


def _state(machine: str, seq: int) -> bytes:
    msg = StateChange(
        machine_id=machine, ts=datetime.now(UTC), source=f"src-{machine}", seq=seq,
        state=MachineState.RUNNING,
    )  # fmt: skip
    return encode(msg)


def _reason(topic: str, payload: bytes, limits: Limits | None = None) -> str:
    with pytest.raises(RejectedMessage) as caught:
        validate(Inbound(topic, payload, NOW), limits or Limits())
    return str(caught.value)


def test_every_rejection_reason_has_its_class() -> None:
    topic = str(Topic("s", "a", "l", "imm-01", MessageKind.TELEMETRY))
    good = _telemetry("imm-01", 1)
    reasons = {
        "too_large": _reason(topic, good, Limits(max_payload_bytes=100)),
        "topic": _reason("moldlab/v1/s/a/l/imm-01/bogus", good),
        "json": _reason(topic, b"{not json"),
        "schema_version": _reason(
            topic, good.replace(b'"schema_version":3', b'"schema_version":9')
        ),
        "contract": _reason(topic, good.replace(b'"seq":1', b'"seq":"one"')),
        "mismatch": _reason(str(Topic("s", "a", "l", "imm-02", MessageKind.TELEMETRY)), good),
        "future": _reason(topic, _telemetry("imm-01", 1, ts=NOW + timedelta(hours=1))),
        "too_old": _reason(topic, _telemetry("imm-01", 1, ts=NOW - timedelta(days=400))),
        "range": _reason(topic, good.replace(b'"value":200.0', b'"value":1e308')),
        "limit": "limit: machine imm-01 has 256 signals (MOLDLAB_INGEST_MAX_SIGNALS_PER_MACHINE)",
        "database": "database refused it: new row violates check constraint",
    }
    assert set(reasons) == set(REJECT_REASONS)
    assert {cls: reject_reason(text) for cls, text in reasons.items()} == {
        cls: cls for cls in reasons
    }, reasons


async def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the endpoint by (name, sorted labels)."""
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(url)
    response.raise_for_status()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


@pytest.mark.infra
async def test_metrics_count_what_ingest_wrote_and_rejected(
    database_url: str, mqtt_url: str
) -> None:
    site = f"metrics-{uuid.uuid4().hex[:6]}"
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    settings = IngestSettings(
        database_url=database_url, mqtt_url=mqtt_url, ingest_site=site,
        ingest_client_id=f"ingest-{site}",
        ingest_max_payload_bytes=4096, ingest_metrics_port=port,
    )  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(run_ingest(settings, stop))
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    def value(name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    async def sampled(condition: Callable[[], bool]) -> bool:
        nonlocal samples
        try:
            samples = await _scrape(url)
        except httpx.HTTPError:
            return False
        return condition()

    try:
        await wait_until(
            lambda: sampled(lambda: value("moldlab_ingest_broker_connected") == 1), 10, "subscribed"
        )
        # Every series exists from the start, at 0.
        assert all(value("moldlab_ingest_messages_total", kind=k) == 0 for k in KINDS)
        assert all(value("moldlab_ingest_rejected_total", reason=r) == 0 for r in REJECT_REASONS)

        # Machines (and so sources) of this test only: message_log is shared by the session.
        machine, other = f"imm-{site[-6:]}", f"imm-{site[-6:]}-x"
        telemetry = str(Topic(site, "hall", "l1", machine, MessageKind.TELEMETRY))
        cycle = str(Topic(site, "hall", "l1", machine, MessageKind.CYCLE))
        state = str(Topic(site, "hall", "l1", machine, MessageKind.STATE))
        published = [
            *((telemetry, _telemetry(machine, seq)) for seq in range(1, 6)),
            (cycle, _cycle(machine, 6)),
            (cycle, _cycle(machine, 7)),
            (state, _state(machine, 8)),
            (telemetry, b"{not json"),
            (telemetry, _telemetry(other, 9)),  # contradicts its topic
            (telemetry, _telemetry(machine, 10, ts=datetime.now(UTC) + timedelta(hours=1))),
            (telemetry, _telemetry(machine, 11, readings=200)),  # over 4096 bytes
        ]
        # Then a duplicate of a written message (in a batch of its own, so that the database
        # is what finds it out).
        duplicate = [(telemetry, _telemetry(machine, 1))]
        for phase in (published, duplicate):
            async with aiomqtt.Client(**BrokerUrl.parse(mqtt_url).client_options()) as publisher:
                for topic, payload in phase:
                    await publisher.publish(topic, payload, qos=1)
            want = len(published) + (phase is duplicate)

            def all_counted(want: int = want) -> bool:
                return sum(value("moldlab_ingest_messages_total", kind=k) for k in KINDS) >= want

            await wait_until(lambda: sampled(all_counted), 15, f"{want} messages counted")
        # The histograms and gauges settle with the counters: scrape once more to be sure.
        await asyncio.sleep(0.2)
        samples = await _scrape(url)
        assert value("moldlab_ingest_messages_total", kind="telemetry") == 10
        assert value("moldlab_ingest_messages_total", kind="cycle") == 2
        assert value("moldlab_ingest_messages_total", kind="state") == 1
        assert value("moldlab_ingest_messages_written_total") == 8
        assert value("moldlab_ingest_duplicates_total") == 1
        assert value("moldlab_ingest_readings_total") == 50
        rejected = {r: value("moldlab_ingest_rejected_total", reason=r) for r in REJECT_REASONS}
        assert {r: n for r, n in rejected.items() if n} == {
            "json": 1, "mismatch": 1, "future": 1, "too_large": 1,
        }  # fmt: skip
        batches = value("moldlab_ingest_batches_total")
        assert batches >= 1
        assert value("moldlab_ingest_commit_seconds_count") == batches
        assert 0 < value("moldlab_ingest_commit_seconds_sum") < 10 * batches
        # One lag per valid message (the duplicate too): from its timestamp to commit.
        assert value("moldlab_ingest_lag_seconds_count") == 9
        assert 0 < value("moldlab_ingest_lag_seconds_sum") < 9 * 10
        assert value("moldlab_ingest_lag_seconds_bucket", le="+Inf") == 9
        assert value("moldlab_ingest_inflight_batches") == 0
        assert value("moldlab_ingest_database_connected") == 1
        info = [k for k in samples if k[0] == "moldlab_ingest_info"]
        assert info
        assert ("client_id", f"ingest-{site}") in info[0][1]
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    with pytest.raises(httpx.ConnectError):
        await _scrape(url)  # the endpoint closes with ingest


@pytest.mark.infra
async def test_a_taken_metrics_port_is_logged_and_ingest_runs_on(
    database_url: str, mqtt_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    site = f"metrics-{uuid.uuid4().hex[:6]}"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = IngestSettings(
            database_url=database_url, mqtt_url=mqtt_url, ingest_site=site,
            ingest_client_id=f"ingest-{site}", ingest_metrics_port=taken.getsockname()[1],
        )  # fmt: skip
        stop = asyncio.Event()
        task = asyncio.create_task(run_ingest(settings, stop))

        async def subscribed() -> bool:
            return "subscribed to" in caplog.text

        try:
            await wait_until(subscribed, 10, "subscribed")
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
    assert "cannot serve metrics" in caplog.text
