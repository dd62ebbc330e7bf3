"""The edge agent end to end: a simulated Modbus machine, the agent, a real mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Protocol, TypeVar

import aiomqtt
import pytest
import yaml
from gateway_config import broker_only_config as gateway_config
from pymodbus.transaction import TransactionManager
from watch import until, watch

from contracts import (
    BrokerUrl,
    CycleRecord,
    EdgeStatus,
    MachineState,
    PartQuality,
    StateChange,
    TelemetryBatch,
    decode,
    encode,
)
from contracts.codec import AnyMessage
from edge import GatewayConfig, run_edge
from moldlab.servers import LocalMosquitto
from moldlab.servers.cable import Cable
from simulators.modbus import ModbusMachineServer, load_register_map
from simulators.model import CycleDone

pytestmark = pytest.mark.infra

T = TypeVar("T")


class Broker(Protocol):  # the own_broker fixture
    url: str

    def start(self) -> None: ...
    def stop(self) -> None: ...


def _of(kind: type[T], received: list[tuple[str, AnyMessage]]) -> list[T]:
    return [m for _, m in received if isinstance(m, kind)]


async def test_telemetry_and_state_reach_the_broker(
    mqtt_url: str, machine: ModbusMachineServer, sample: dict[str, float], tmp_path: Path
) -> None:
    config = gateway_config(mqtt_url, machine.port, tmp_path)
    stop = asyncio.Event()
    async with watch(mqtt_url, f"moldlab/v1/{config.site}/#") as received:
        agent = asyncio.create_task(run_edge(config, stop))
        await until(lambda: len(_of(TelemetryBatch, received)) >= 3)
        stop.set()
        await asyncio.wait_for(agent, 10)
        await until(lambda: any(not s.online for s in _of(EdgeStatus, received)))

    prefix = f"moldlab/v1/{config.site}/hall-a/line-1"
    topics = {type(m).__name__: topic for topic, m in received}
    assert topics == {
        "EdgeStatus": f"{prefix}/pi-test/status",
        "StateChange": f"{prefix}/imm-01/state",
        "TelemetryBatch": f"{prefix}/imm-01/telemetry",
    }
    assert [s.online for s in _of(EdgeStatus, received)] == [True, False]
    assert [s.state for s in _of(StateChange, received)] == [MachineState.RUNNING]
    batch = _of(TelemetryBatch, received)[0]
    assert {r.signal: r.value for r in batch.readings} == sample
    assert len({r.offset_ms for r in batch.readings}) > 1  # several polls per batch
    # Each machine is a source of its own, numbered without gap or duplicate; the gateway's
    # birth and death are its own source.
    assert {m.source for _, m in received} == {"pi-test", "pi-test:imm-01"}
    seqs = [m.seq for _, m in received if m.source == "pi-test:imm-01"]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))

    async with watch(mqtt_url, f"moldlab/v1/{config.site}/#") as retained:
        await until(lambda: bool(retained))
    assert [(type(m), getattr(m, "online", None)) for _, m in retained] == [(EdgeStatus, False)]


async def test_a_bad_cycle_of_a_modbus_machine_reaches_the_broker_with_its_defect_cause(
    mqtt_url: str,
    machine: ModbusMachineServer,
    sample: dict[str, float],
    last_cycle: CycleDone,
    tmp_path: Path,
) -> None:
    config = gateway_config(mqtt_url, machine.port, tmp_path)
    stop = asyncio.Event()
    cycles = [
        dataclasses.replace(last_cycle, shot=1201, defect="flash"),
        dataclasses.replace(last_cycle, shot=1202, quality=PartQuality.GOOD, defect=None),
    ]
    async with watch(mqtt_url, f"moldlab/v1/{config.site}/#") as received:
        agent = asyncio.create_task(run_edge(config, stop))
        await until(lambda: bool(_of(TelemetryBatch, received)))  # the counter is known
        for cycle in cycles:
            shown = len(_of(CycleRecord, received))
            machine.update(
                {**sample, "CounterShots": float(cycle.shot)}, MachineState.RUNNING,
                last_cycle=cycle,
            )  # fmt: skip
            await until(lambda n=shown: len(_of(CycleRecord, received)) > n)
        stop.set()
        await asyncio.wait_for(agent, 10)
    records = _of(CycleRecord, received)
    assert [(r.shot, r.quality, r.defect) for r in records] == [
        (1201, PartQuality.BAD, "flash"),
        (1202, PartQuality.GOOD, None),
    ]
    assert {r.schema_version for r in records} == {3}


async def test_a_machine_that_goes_away_is_reported_once_and_back_once(
    mqtt_url: str, machine: ModbusMachineServer, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.INFO, logger="edge")
    config = gateway_config(mqtt_url, machine.port, tmp_path)
    stop = asyncio.Event()
    async with watch(mqtt_url, f"moldlab/v1/{config.site}/#") as received:
        agent = asyncio.create_task(run_edge(config, stop))
        await until(lambda: len(_of(TelemetryBatch, received)) >= 1)
        await machine.stop()
        await until(lambda: len(_of(StateChange, received)) == 2)
        await asyncio.sleep(2.0)  # several failed polls meanwhile
        await machine.start()
        await until(lambda: len(_of(StateChange, received)) == 3)
        stop.set()
        await asyncio.wait_for(agent, 10)

    states = [s.state for s in _of(StateChange, received)]
    assert states == [MachineState.RUNNING, MachineState.OFFLINE, MachineState.RUNNING]
    logged = [r.getMessage() for r in caplog.records if r.name == "edge.modbus"]
    assert sum("offline" in line for line in logged) == 1
    assert sum(" back " in line for line in logged) == 1


async def test_a_machine_outage_is_one_line_in_the_agent_process_log(
    mqtt_url: str, machine: ModbusMachineServer, tmp_path: Path
) -> None:
    # Issue 16: `moldlab edge` logged every failed reconnect (pymodbus.logging: Failed to
    # connect), 28 lines in one outage: its logging set pymodbus to WARNING, which the agent
    # took for a choice of the operator's.
    config = gateway_config(mqtt_url, machine.port, tmp_path)
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    log_path = tmp_path / "agent.log"
    with log_path.open("ab") as log:
        async with watch(mqtt_url, f"moldlab/v1/{config.site}/#") as received:
            agent = await _agent_process(path, log)
            await until(lambda: len(_of(TelemetryBatch, received)) >= 1, 20)
            await machine.stop()
            await until(lambda: len(_of(StateChange, received)) == 2)
            await asyncio.sleep(4.0)  # failed reconnects meanwhile, at about 1, 2 and 4 s
            await machine.start()
            await until(lambda: len(_of(StateChange, received)) == 3, 15)
            agent.terminate()
            assert await asyncio.wait_for(agent.wait(), 15) == 0
    lines = log_path.read_text().splitlines()
    assert not [line for line in lines if "pymodbus" in line]
    assert sum("machine imm-01 offline" in line for line in lines) == 1


# --- store and forward ----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _subscribed(mqtt_url: str, site: str) -> AsyncIterator[list[tuple[float, AnyMessage]]]:
    """(arrival time, message) of everything under `site`, across broker restarts.

    A persistent session at QoS 1: the broker keeps what comes while this subscriber is
    away, on disk when it restarts, as the plant's ingest does.
    """
    broker = BrokerUrl.parse(mqtt_url)
    received: list[tuple[float, AnyMessage]] = []
    subscribed = asyncio.Event()
    identifier = f"test-{uuid.uuid4().hex[:8]}"

    async def collect() -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    broker.host, broker.port, identifier=identifier, clean_session=False
                ) as client:
                    await client.subscribe(f"moldlab/v1/{site}/#", qos=1)
                    subscribed.set()
                    async for message in client.messages:
                        assert isinstance(message.payload, bytes)
                        received.append((time.monotonic(), decode(message.payload)))
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)

    task = asyncio.create_task(collect())
    await asyncio.wait_for(subscribed.wait(), 10)
    try:
        yield received
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _seqs(received: list[tuple[float, AnyMessage]], source: str) -> list[int]:
    """`source`'s sequence numbers in the order they arrived, repeats left out."""
    seen: dict[int, None] = {}
    for _, message in received:
        if message.source == source:
            seen.setdefault(message.seq)
    return list(seen)


def _complete(seqs: list[int]) -> bool:
    return bool(seqs) and sorted(seqs) == list(range(min(seqs), max(seqs) + 1))


def _caught_up(
    received: list[tuple[float, AnyMessage]], sources: list[str], since: datetime
) -> bool:
    """Every number of `sources` has arrived, and something of theirs made after `since`."""
    return all(_complete(_seqs(received, s)) for s in sources) and any(
        m.ts > since for _, m in received if m.source in sources
    )


def _two_ordered_lanes(seqs: list[int], after: int) -> bool:
    """Whether `seqs` beyond `after` (the last one before an outage) are the backlog (all below
    some number) and live data, each in order. (Each session has its two lanes, so the order
    is judged for the one session after the outage.)"""
    seqs = [s for s in seqs if s > after]

    def ordered(lane: list[int]) -> bool:
        return lane == sorted(lane)

    return any(
        ordered([s for s in seqs if s < cut]) and ordered([s for s in seqs if s >= cut])
        for cut in seqs
    )


async def test_a_30_s_broker_outage_loses_nothing(
    own_broker: Broker,
    machine: ModbusMachineServer,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.INFO, logger="edge")
    config = gateway_config(own_broker.url, machine.port, tmp_path)
    source = "pi-test:imm-01"
    stop = asyncio.Event()
    own_broker.start()
    async with _subscribed(own_broker.url, config.site) as received:
        agent = asyncio.create_task(run_edge(config, stop))
        await until(lambda: len(_seqs(received, source)) >= 3)
        own_broker.stop()
        went_down = datetime.now(UTC)
        last_before = max(_seqs(received, source))
        await asyncio.sleep(30)
        came_back = datetime.now(UTC)
        own_broker.start()
        await until(lambda: _caught_up(received, [source], came_back), timeout_s=30)
        stop.set()
        await asyncio.wait_for(agent, 15)
        await until(lambda: any(not s.online for s in _of_arrived(EdgeStatus, received)))

    seqs = _seqs(received, source)
    assert _complete(seqs), "a sequence number is missing"
    assert _two_ordered_lanes(seqs, after=last_before)
    # 30 s of 2 batches a second were polled while the broker was away, and all arrived.
    during = [m for m in _of_arrived(TelemetryBatch, received) if went_down < m.ts < came_back]
    assert len(during) >= 50
    logged = [r.getMessage() for r in caplog.records if r.name == "edge.mqtt"]
    assert sum(line.startswith("connected to broker") for line in logged) == 2
    assert sum(line.startswith("disconnected from broker") for line in logged) == 2


def _of_arrived(kind: type[T], received: list[tuple[float, AnyMessage]]) -> list[T]:
    return [m for _, m in received if isinstance(m, kind)]


async def test_a_backlog_drains_at_its_rate_while_live_data_flows(
    own_broker: Broker, machine: ModbusMachineServer, tmp_path: Path
) -> None:
    rate_per_s = 10
    config = gateway_config(
        own_broker.url,
        machine.port,
        tmp_path,
        telemetry_interval_s=0.2,
        outbox={"path": str(tmp_path / "outbox.sqlite"), "drain_rate_per_s": rate_per_s},
    )
    source = "pi-test:imm-01"
    stop = asyncio.Event()
    own_broker.start()
    async with _subscribed(own_broker.url, config.site) as received:
        agent = asyncio.create_task(run_edge(config, stop))
        await until(lambda: len(_seqs(received, source)) >= 3)
        own_broker.stop()
        await asyncio.sleep(6)  # about 30 batches wait in the outbox
        last_before = max(_seqs(received, source))
        own_broker.start()
        await until(lambda: len([s for s in _of_arrived(EdgeStatus, received) if s.online]) >= 2)
        reconnected = [s for s in _of_arrived(EdgeStatus, received) if s.online][-1].ts
        await until(
            lambda: _caught_up(received, [source], reconnected + timedelta(seconds=1)),
            timeout_s=30,
        )
        stop.set()
        await asyncio.wait_for(agent, 15)

    arrived: dict[int, tuple[float, AnyMessage]] = {}
    for at, m in received:
        if m.source == source:
            arrived.setdefault(m.seq, (at, m))
    backlog = sorted(at for at, m in arrived.values() if m.seq > last_before and m.ts < reconnected)
    live = sorted(at for at, m in arrived.values() if m.ts > reconnected + timedelta(seconds=0.5))
    assert len(backlog) >= 25
    # The backlog went at its rate, not at once...
    assert backlog[-1] - backlog[0] >= (len(backlog) - 1) / rate_per_s * 0.8
    # ...while live data made after the reconnection arrived before the backlog was done.
    assert live
    assert live[0] < backlog[-1]
    assert _two_ordered_lanes(_seqs(received, source), after=last_before)


def _gateway_of_two(
    config: GatewayConfig, second_port: int, path: Path, **outbox: object
) -> list[str]:
    """Write `config` with a second machine (and `outbox` settings) to `path`; its sources."""
    data = config.model_dump(mode="json")
    data["machines"].append(
        {
            "machine_id": "imm-02",
            "modbus": {"host": "127.0.0.1", "port": second_port, "poll_interval_s": 0.1},
        }
    )
    data["outbox"].update(outbox)
    path.write_text(yaml.safe_dump(data))
    return [f"{config.gateway_id}:{m['machine_id']}" for m in data["machines"]]


async def _agent_process(path: Path, log: IO[bytes]) -> asyncio.subprocess.Process:
    """`moldlab edge` as it runs on the Pi: a process of its own, which a power cut kills."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "moldlab", "edge", "--config", str(path),
        cwd=path.parent, stdout=log, stderr=log,
    )  # fmt: skip


async def test_sigkill_during_an_outage_loses_nothing(
    own_broker: Broker, machine: ModbusMachineServer, sample: dict[str, float], tmp_path: Path
) -> None:
    path = tmp_path / "gateway.yaml"
    async with ModbusMachineServer(load_register_map(), port=0) as second:
        second.update(sample, MachineState.UNPLANNED_STOP, "material_shortage")
        config = gateway_config(own_broker.url, machine.port, tmp_path)
        sources = _gateway_of_two(config, second.port, path)
        own_broker.start()
        with (tmp_path / "agent.log").open("ab") as log:
            async with _subscribed(own_broker.url, config.site) as received:
                agent = await _agent_process(path, log)
                await until(lambda: all(len(_seqs(received, s)) >= 3 for s in sources))
                own_broker.stop()
                went_down = datetime.now(UTC)
                last_before = {s: max(_seqs(received, s)) for s in sources}
                await asyncio.sleep(3)
                agent.kill()  # SIGKILL, in the middle of the outage
                await agent.wait()
                killed = datetime.now(UTC)
                agent = await _agent_process(path, log)
                await asyncio.sleep(3)
                own_broker.start()
                came_back = datetime.now(UTC)
                await until(
                    lambda: _caught_up(received, sources, came_back + timedelta(seconds=1)),
                    timeout_s=30,
                )
                agent.terminate()
                assert await asyncio.wait_for(agent.wait(), 15) == 0

    for source in sources:
        seqs = _seqs(received, source)
        assert _complete(seqs), f"{source}: a sequence number is missing"
        assert _two_ordered_lanes(seqs, after=last_before[source])
    # What the killed agent polled during the outage arrived, from its outbox.
    made_by_the_killed = [
        m for m in _of_arrived(TelemetryBatch, received) if went_down < m.ts < killed
    ]
    assert len(made_by_the_killed) >= 2 * 4


async def test_sigkill_while_a_backlog_drains_loses_nothing(
    own_broker: Broker, machine: ModbusMachineServer, sample: dict[str, float], tmp_path: Path
) -> None:
    path = tmp_path / "gateway.yaml"
    async with ModbusMachineServer(load_register_map(), port=0) as second:
        second.update(sample, MachineState.IDLE, "starved")
        config = gateway_config(own_broker.url, machine.port, tmp_path)
        sources = _gateway_of_two(config, second.port, path, drain_rate_per_s=10)
        own_broker.start()
        with (tmp_path / "agent.log").open("ab") as log:
            async with _subscribed(own_broker.url, config.site) as received:
                agent = await _agent_process(path, log)
                await until(lambda: all(len(_seqs(received, s)) >= 3 for s in sources))
                own_broker.stop()
                await asyncio.sleep(4)  # some 40 messages wait, 4 s of draining at 10/s
                own_broker.start()
                await until(lambda: len([s for _, s in received if _is_birth(s)]) >= 2)
                await asyncio.sleep(1.5)
                agent.kill()  # in the middle of the drain
                await agent.wait()
                agent = await _agent_process(path, log)
                await until(lambda: all(_complete(_seqs(received, s)) for s in sources), 30)
                await asyncio.sleep(1)
                agent.terminate()
                assert await asyncio.wait_for(agent.wait(), 15) == 0

    for source in sources:
        assert _complete(_seqs(received, source)), f"{source}: a sequence number is missing"
    # What was in flight when it died may come twice; ingest keeps one by (source, seq).
    data = [(m.source, m.seq) for _, m in received if m.source in sources]
    assert len(data) - len(set(data)) <= 20


def _is_birth(message: AnyMessage) -> bool:
    return isinstance(message, EdgeStatus) and message.online


async def _scrape(port: int) -> dict[str, float]:
    """The agent's metrics endpoint, as `name{labels}` -> value; {} while it is not up."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return {}
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: pi\r\n\r\n")
    raw = await reader.read()  # one request per connection
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"text/plain; version=0.0.4" in head
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in body.decode().splitlines()
        if line and not line.startswith("#")
    }


async def _scrapeduntil(
    port: int, condition: Callable[[dict[str, float]], bool], timeout_s: float = 20
) -> dict[str, float]:
    deadline = time.monotonic() + timeout_s
    while not condition(metrics := await _scrape(port)):
        assert time.monotonic() < deadline, f"timed out; metrics: {metrics}"
        await asyncio.sleep(0.2)
    return metrics


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_health_and_counters_are_served_and_the_birth_tells_of_drops(
    own_broker: Broker, machine: ModbusMachineServer, tmp_path: Path
) -> None:
    port = _free_port()
    config = gateway_config(
        own_broker.url,
        machine.port,
        tmp_path,
        outbox={"path": str(tmp_path / "outbox.sqlite"), "max_mb": 0.01},
        metrics={"port": port},
    )
    stop = asyncio.Event()
    agent = asyncio.create_task(run_edge(config, stop))  # the broker is not up yet
    labels = '{machine="imm-01"}'
    away = await _scrapeduntil(port, lambda m: m.get("moldlab_edge_messages_dropped_total", 0) > 0)
    assert away[f"moldlab_edge_polls_total{labels}"] > 10
    assert away[f"moldlab_edge_poll_errors_total{labels}"] == 0
    assert away["moldlab_edge_broker_connected"] == 0
    assert away["moldlab_edge_messages_sent_total"] == 0
    assert 0 < away["moldlab_edge_outbox_bytes"] <= 10_000
    assert away["moldlab_edge_outbox_messages"] > 0
    assert away["moldlab_edge_backlog_age_seconds"] > 0
    assert away["moldlab_edge_messages_queued_total"] == pytest.approx(
        away["moldlab_edge_outbox_messages"] + away["moldlab_edge_messages_dropped_total"], abs=2
    )

    own_broker.start()
    async with _subscribed(own_broker.url, config.site) as received:
        await _scrapeduntil(port, lambda m: m["moldlab_edge_broker_connected"] == 1, 40)
        await until(lambda: any(isinstance(m, EdgeStatus) for _, m in received))
        await _scrapeduntil(port, lambda m: m["moldlab_edge_messages_sent_total"] > 0)
        stop.set()
        await asyncio.wait_for(agent, 15)
    birth = next(m for m in _of_arrived(EdgeStatus, received) if m.online)
    assert birth.detail is not None
    assert re.search(
        r"outbox: \d+ messages waiting, the oldest \d+ s old; [1-9]\d* dropped", birth.detail
    )


async def test_a_network_cut_is_noticed_and_loses_nothing(
    mqtt_url: str, machine: ModbusMachineServer, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.INFO, logger="edge")
    source = "pi-test:imm-01"
    stop = asyncio.Event()
    async with Cable(BrokerUrl.parse(mqtt_url).port) as cable:
        config = gateway_config(cable.url, machine.port, tmp_path)
        async with _subscribed(mqtt_url, config.site) as received:
            agent = asyncio.create_task(run_edge(config, stop))
            await until(lambda: len(_seqs(received, source)) >= 3)
            cable.cut = True
            cut_at = datetime.now(UTC)
            await asyncio.sleep(15)
            cable.mend()
            mended_at = datetime.now(UTC)
            await until(lambda: _caught_up(received, [source], mended_at), timeout_s=60)
            stop.set()
            await asyncio.wait_for(agent, 15)

    seqs = _seqs(received, source)
    assert _complete(seqs), "a sequence number is missing"
    assert len([m for _, m in received if m.source == source and cut_at < m.ts < mended_at]) >= 25
    logged = [r.getMessage() for r in caplog.records if r.name == "edge.mqtt"]
    assert sum(line.startswith("disconnected from broker") for line in logged) == 2  # cut, stop


# --- stopping: within its 5 s grace and a little, whatever it is doing ----------------------

_STOP_WITHIN_S = 5.0 + 2.0 + 3.0  # the grace, the goodbye, slack for a loaded machine


async def _ended_within(agent: asyncio.Task[None], seconds: float) -> float:
    """How long `agent` took to end; cancelled and failed if it took longer than `seconds`."""
    began = time.monotonic()
    done, _ = await asyncio.wait([agent], timeout=seconds)
    agent.cancel()  # should it run on, lest it run into the next tests
    with contextlib.suppress(asyncio.CancelledError):
        await agent
    assert done, f"the agent did not stop in {seconds} s"
    return time.monotonic() - began


async def test_a_stop_that_comes_with_a_modbus_answer_ends_the_agent(
    mqtt_url: str, machine: ModbusMachineServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # pymodbus awaits each answer with asyncio.wait_for, which on Python 3.11 drops a
    # cancellation that comes in the loop turn of the answer (CPython gh-86296). A SIGTERM
    # that came so left a poller polling on, and the agent waiting for it for ever.
    config = gateway_config(mqtt_url, machine.port, tmp_path)
    stop = asyncio.Event()
    answer = TransactionManager.callback_data
    answers = 0

    def stop_with_the_tenth_answer(
        protocol: TransactionManager, data: bytes, addr: tuple[str, int] | None = None
    ) -> int:
        nonlocal answers
        used = answer(protocol, data, addr)
        if not protocol.is_server and protocol.response_future.done():
            answers += 1
            if answers == 10:
                stop.set()  # as the SIGTERM handler does, in the loop turn of the answer
        return used

    monkeypatch.setattr(TransactionManager, "callback_data", stop_with_the_tenth_answer)
    async with watch(mqtt_url, f"moldlab/v1/{config.site}/#") as received:
        agent = asyncio.create_task(run_edge(config, stop))
        await asyncio.wait_for(stop.wait(), 10)
        await _ended_within(agent, _STOP_WITHIN_S)
        await until(lambda: any(not s.online for s in _of(EdgeStatus, received)))
    assert answers == 10  # no poll after the stop


def _answering(log_path: Path) -> int:
    """How many times the agents writing `log_path` found a machine answering."""
    return log_path.read_text().count(" answering at ")


async def _sigterm_while_polling(path: Path, log_path: Path, delay_s: float) -> int | None:
    """Start the agent, SIGTERM it `delay_s` after it polls its two machines: its exit code,
    or None if it did not end in _STOP_WITHIN_S (then it is killed)."""
    answering = _answering(log_path)
    with log_path.open("ab") as log:
        agent = await _agent_process(path, log)
    try:
        await until(lambda: _answering(log_path) == answering + 2)
        await asyncio.sleep(delay_s)  # a moment while it polls
        agent.terminate()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(agent.wait(), _STOP_WITHIN_S)
        return agent.returncode
    finally:
        if agent.returncode is None:
            agent.kill()
            await agent.wait()


async def test_a_sigterm_at_any_moment_ends_the_agent_process(
    mqtt_url: str, machine: ModbusMachineServer, sample: dict[str, float], tmp_path: Path
) -> None:
    # Two machines answering as often as they can, so that SIGTERMs at random moments meet
    # answers arriving: before the fix about one stop in six hung so, even on an idle machine.
    path, log_path = tmp_path / "gateway.yaml", tmp_path / "agent.log"
    log_path.touch()
    rng = random.Random(7)
    async with ModbusMachineServer(load_register_map(), port=0) as second:
        second.update(sample, MachineState.RUNNING)
        machines = [
            {"machine_id": m, "modbus": {"host": "127.0.0.1", "port": p, "poll_interval_s": 0.01}}
            for m, p in (("imm-01", machine.port), ("imm-02", second.port))
        ]
        config = gateway_config(mqtt_url, machine.port, tmp_path, machines=machines)
        path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
        for round_ in range(15):
            code = await _sigterm_while_polling(path, log_path, rng.uniform(0, 0.3))
            assert code == 0, f"round {round_}: exit code {code} (None: still running)"


def _waiting(outbox: Path, made_after: float) -> int:
    """Messages in the agent's outbox made after `made_after` (unix time)."""
    with contextlib.closing(sqlite3.connect(outbox)) as db:
        (count,) = db.execute(
            "SELECT count(*) FROM message WHERE made > ?", (made_after,)
        ).fetchone()
    return int(count)


async def test_a_broker_that_stops_answering_does_not_hold_up_a_stop(
    mqtt_url: str, machine: ModbusMachineServer, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.INFO, logger="edge")
    source = "pi-test:imm-01"
    stop = asyncio.Event()
    async with Cable(BrokerUrl.parse(mqtt_url).port) as cable:
        config = gateway_config(cable.url, machine.port, tmp_path)
        async with _subscribed(mqtt_url, config.site) as received:
            agent = asyncio.create_task(run_edge(config, stop))
            await until(lambda: len(_seqs(received, source)) >= 3)
            cable.cut = True  # what is in flight, what comes next, the goodbye: no answer
            cut_at = time.time()
            await until(lambda: _waiting(config.outbox.path, cut_at) >= 1)
            stop.set()
            took_s = await _ended_within(agent, _STOP_WITHIN_S)
    assert took_s >= 5.0 - 0.5  # it tried for its grace
    assert _waiting(config.outbox.path, cut_at) >= 1  # what was not acknowledged stays
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("edge")]
    assert any("stay in the outbox" in line for line in logged)
    assert any("stopping without a goodbye" in line for line in logged)


async def test_an_mqtt_native_machine_is_forwarded_as_the_gateways(
    mqtt_url: str, machine: ModbusMachineServer, tmp_path: Path
) -> None:
    # The machine publishes on the same broker as the plant's, and its topic filter would
    # match the gateway's own output too: each message must come out once.
    config = gateway_config(mqtt_url, machine.port, tmp_path)
    data = config.model_dump(mode="json")
    area = data["area"] = f"hall-{uuid.uuid4().hex[:6]}"  # no retained states of other tests
    data["machines"].append(
        {
            "machine_id": "imm-05",
            "mqtt": {"url": mqtt_url, "topic": f"moldlab/v1/+/{area}/+/+/state"},
        }
    )
    config = GatewayConfig.model_validate(data)
    stop = asyncio.Event()
    broker = BrokerUrl.parse(mqtt_url)
    async with watch(mqtt_url, f"moldlab/v1/{config.site}/#") as received:
        agent = asyncio.create_task(run_edge(config, stop))
        await until(lambda: len(_of(TelemetryBatch, received)) >= 1)
        async with aiomqtt.Client(broker.host, broker.port) as press:
            for seq, state in enumerate([MachineState.RUNNING, MachineState.SETUP]):
                change = StateChange(
                    machine_id="press-5", ts=datetime.now(UTC), source="press-5", seq=seq,
                    state=state, reason="mould_change" if state is MachineState.SETUP else None,
                )  # fmt: skip
                topic = f"moldlab/v1/press-site/{area}/l/press-5/state"
                await press.publish(topic, encode(change), qos=1)
        await until(lambda: len([m for _, m in received if m.machine_id == "imm-05"]) >= 2)
        await asyncio.sleep(1)  # time for a loop to show, if there were one
        stop.set()
        await asyncio.wait_for(agent, 10)

    forwarded = [(t, m) for t, m in received if m.machine_id == "imm-05"]
    assert [(t.rsplit("/", 2)[-2:], m.state, m.source) for t, m in forwarded] == [  # type: ignore[union-attr]
        (["imm-05", "state"], MachineState.RUNNING, "pi-test:imm-05"),
        (["imm-05", "state"], MachineState.SETUP, "pi-test:imm-05"),
    ]
    assert forwarded[1][1].seq == forwarded[0][1].seq + 1


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def tls_broker(scratch_dir: Path, tmp_path: Path) -> Iterator[tuple[LocalMosquitto, Path]]:
    """A mosquitto speaking TLS only, with a certificate from a private CA; and that CA."""
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=moldlab test plant CA",
        cwd=tmp_path,
    )
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "broker.key",
        "-out",
        "broker.csr",
        "-subj",
        "/CN=127.0.0.1",
        cwd=tmp_path,
    )
    (tmp_path / "san.cnf").write_text("subjectAltName = IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "broker.pem", "-days", "1", "-extfile", "san.cnf",
             cwd=tmp_path)  # fmt: skip
    (tmp_path / "broker.key").chmod(0o644)  # mosquitto may read it as another user
    broker = LocalMosquitto(
        Path(tempfile.mkdtemp(dir=scratch_dir)) / "mosquitto",
        tls=(tmp_path / "broker.pem", tmp_path / "broker.key"),
    )
    broker.start()
    yield broker, tmp_path / "ca.pem"
    broker.stop()


async def test_tls_to_a_broker_with_a_private_ca(
    tls_broker: tuple[LocalMosquitto, Path],
    machine: ModbusMachineServer,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    broker, ca_file = tls_broker
    assert broker.url.startswith("mqtts://")
    # Without the plant's CA the broker's certificate is refused, and said so once.
    caplog.set_level(logging.INFO, logger="edge")
    untrusted = gateway_config(broker.url, machine.port, tmp_path / "untrusted")
    stop = asyncio.Event()
    agent = asyncio.create_task(run_edge(untrusted, stop))
    await until(lambda: any("certificate verify failed" in r.getMessage() for r in caplog.records))
    stop.set()
    await asyncio.wait_for(agent, 10)

    config = gateway_config(
        broker.url,
        machine.port,
        tmp_path,
        broker={"url": broker.url, "tls": {"ca_file": str(ca_file)}},
    )
    assert config.broker.tls is not None
    context = config.broker.tls.context()
    host, port = "127.0.0.1", broker.port
    received: list[AnyMessage] = []
    stop = asyncio.Event()
    async with aiomqtt.Client(host, port, tls_context=context) as client:
        await client.subscribe(f"moldlab/v1/{config.site}/#", qos=1)
        agent = asyncio.create_task(run_edge(config, stop))

        async def collect() -> None:
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                received.append(decode(message.payload))

        collector = asyncio.create_task(collect())
        await until(lambda: any(isinstance(m, TelemetryBatch) for m in received))
        stop.set()
        await asyncio.wait_for(agent, 10)
        collector.cancel()
    assert any(isinstance(m, EdgeStatus) and m.online for m in received)
