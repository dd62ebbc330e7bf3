"""A dead gateway's machines go offline, once, and come back: today's dead Raspberry Pi.

A real `moldlab edge` process polls two simulated Modbus machines and forwards to a real
mosquitto; ingest writes; the API and its live socket show. The gateway dies, the broker
publishes its last will, and both machines show offline with the reason "gateway lost",
sent once on the live socket; the gateway comes back and so do they. It dies two ways:
killed (SIGKILL: its connection closes, the will goes out at once; it is started again), and
frozen (SIGSTOP: a power cut or a cut cable, the connection stays open and silent; the will
goes out after 1.5 x keepalive_s; SIGCONT, and it reconnects by itself).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from places import all_machines, live_frames, serve_api
from watch import eventually

from contracts import MachineState
from dashboard_api import ApiSettings
from ingest import IngestSettings, run_ingest
from simulators.modbus import ModbusMachineServer, load_register_map

pytestmark = [pytest.mark.infra, pytest.mark.slow]

SAMPLE = {"TempNozzle": 229.8, "TempMould": 45.5, "TempOil": 42.1, "CounterShots": 1200.0}


class Gateway:
    """`moldlab edge` as it runs on the Pi: a process of its own, which a power cut kills."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "moldlab", "edge", "--config", str(self.config),
                cwd=self.config.parent, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
            )  # fmt: skip

    async def die(self, how: str) -> None:
        assert self.proc is not None
        if how == "killed":
            self.proc.send_signal(signal.SIGKILL)
            assert await self.proc.wait() == -signal.SIGKILL
        else:
            self.proc.send_signal(signal.SIGSTOP)

    async def come_back(self, how: str) -> None:
        if how == "killed":
            await self.start()
        else:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGCONT)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGCONT)  # a frozen one must run to stop
            self.proc.terminate()
            await asyncio.wait_for(self.proc.wait(), 20)


@pytest.fixture
async def machines() -> AsyncIterator[list[ModbusMachineServer]]:
    """Two simulated Modbus machines, running."""
    async with (
        ModbusMachineServer(load_register_map(), port=0) as one,
        ModbusMachineServer(load_register_map(), port=0) as two,
    ):
        for machine in (one, two):
            machine.update(SAMPLE, MachineState.RUNNING)
        yield [one, two]


@pytest.mark.parametrize("how", ["killed", "frozen"])
async def test_a_dead_gateways_machines_go_offline_once_and_come_back(
    how: str,
    database_url: str,
    mqtt_url: str,
    machines: list[ModbusMachineServer],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    engineer_headers: dict[str, str],
) -> None:
    site = f"gw-{uuid.uuid4().hex[:8]}"
    config = tmp_path / "gateway.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "gateway_id": "pi-lost", "site": site, "area": "hall", "line": "line-1",
                "broker": {"url": mqtt_url, "keepalive_s": 2},
                "machines": [
                    {"machine_id": f"imm-0{i}",
                     "modbus": {"host": "127.0.0.1", "port": m.port, "poll_interval_s": 0.2}}
                    for i, m in enumerate(machines, 1)
                ],
                "telemetry_interval_s": 0.5,
                "outbox": {"path": str(tmp_path / "outbox.sqlite")},
                "metrics": {"enabled": False},
            }
        )
    )  # fmt: skip
    places = [f"{site}/hall/line-1/imm-0{i}" for i in (1, 2)]
    gateway = Gateway(config, tmp_path / "edge.log")
    ingest = IngestSettings(
        database_url=database_url, mqtt_url=mqtt_url, ingest_site=site,
        ingest_client_id=f"ingest-{site}",
    )  # fmt: skip
    api = ApiSettings(database_url=database_url, live_interval_s=0.2, live_max_machines=10_000)
    caplog.set_level(logging.WARNING, logger="ingest.gateways")
    caplog.set_level(logging.INFO, logger="ingest.service")
    stop = asyncio.Event()
    async with (
        asyncio.TaskGroup() as tg,
        serve_api(api) as api_url,
        httpx.AsyncClient(base_url=api_url, timeout=10, headers=engineer_headers) as http,
    ):
        tg.create_task(run_ingest(ingest, stop))

        async def ours() -> dict[str, dict[str, Any]]:
            return {m["place"]: m for m in await all_machines(http) if m["site"] == site}

        async def shown(state: str, reason: str | None) -> bool:
            now = await ours()
            return set(now) == set(places) and all(
                (m["state"], m["state_reason"]) == (state, reason) for m in now.values()
            )

        try:
            async with live_frames(api_url, engineer_headers) as updates:
                await eventually(lambda: _subscribed(caplog, site), "ingest subscribed")
                await gateway.start()
                await eventually(lambda: shown("running", None), "both machines running")

                killed = datetime.now(UTC)
                await gateway.die(how)
                await eventually(lambda: shown("offline", "gateway lost"), "both machines lost")
                lost_since = {p: m["state_since"] for p, m in (await ours()).items()}
                assert all(datetime.fromisoformat(t) >= killed for t in lost_since.values())
                lost = [r.getMessage() for r in caplog.records if r.name == "ingest.gateways"]
                assert lost == [f"gateway pi-lost at {site}/hall/line-1 lost: 2 machines offline"]

                await gateway.come_back(how)
                await eventually(lambda: shown("running", None), "both machines back")
                back = await ours()
                assert all(back[p]["state_since"] != lost_since[p] for p in places)

                # The socket said each change once, though it polled many times meanwhile.
                def states_of(place: str) -> list[str]:
                    return [u["state"] for u in updates if u["place"] == place and "state" in u]

                async def socket_back() -> bool:
                    return all(states_of(p)[-1:] == ["running"] for p in places)

                await eventually(socket_back, "both machines back on the live socket")
                mine = [u for u in updates if u["place"] in places]
                for place in places:
                    states = states_of(place)
                    assert states[-2:] == ["offline", "running"], states
                    assert states.count("offline") == 1, states
                    reasons = [u["state_reason"] for u in mine if u["place"] == place
                               and "state_reason" in u]  # fmt: skip
                    assert reasons.count("gateway lost") == 1, reasons
        finally:
            await gateway.stop()
            stop.set()


async def _subscribed(caplog: pytest.LogCaptureFixture, site: str) -> bool:
    return any("subscribed to" in r.getMessage() and site in r.getMessage() for r in caplog.records)
