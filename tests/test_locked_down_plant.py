"""The plant as deployed, locked down: mosquitto with TLS from the plant's private CA
(deploy/tls/make-certs.sh), no anonymous clients, and the users and ACL of
`moldlab broker acl`; a gateway and two ingest workers in a shared group each with their own
user. Data flows end to end, and the gateway's outbox empties as ingest confirms commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import aiomqtt
import pytest
import yaml
from aiomqtt.exceptions import MqttCodeError
from databases import logged_seqs
from gateway_config import gateway_config
from ingest_task import running_ingest

from contracts import SIGNALS, MachineState
from edge import run_edge
from ingest import IngestSettings
from moldlab.brokerauth import INGEST_USER, write_broker_files
from moldlab.servers import LocalMosquitto
from plant import load_plant
from simulators.modbus import ModbusMachineServer, load_register_map

pytestmark = [pytest.mark.infra, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]


def _certs(out: Path) -> Path:
    subprocess.run(
        [str(ROOT / "deploy/tls/make-certs.sh"), str(out), "localhost", "127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return out


def _plant(path: Path, site: str, gateway: str) -> Path:
    data = yaml.safe_load((ROOT / "simulators/scenarios/demo-plant.yaml").read_text())
    data["sites"][0]["id"] = site
    data["machines"] = []
    data["gateways"] = [{"id": gateway, "site": site, "area": "hall-a", "line": "line-1"}]
    path.write_text(yaml.safe_dump(data))
    return path


def _waiting(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return int(db.execute("SELECT count(*) FROM message").fetchone()[0])


async def _until(condition: object, timeout_s: float, what: str) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(condition):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout_s:.0f} s")
        await asyncio.sleep(0.2)


async def test_a_gateway_and_two_workers_through_a_broker_with_tls_users_and_acl(
    database_url: str, scratch_dir: Path, tmp_path: Path
) -> None:
    certs = _certs(tmp_path / "certs")
    machine = ModbusMachineServer(load_register_map(), port=0)
    await machine.start()
    machine.update({s.name: 1.0 for s in SIGNALS}, MachineState.RUNNING)
    config = gateway_config("mqtt://127.0.0.1", machine.port, tmp_path, gateway_id="pi-a")
    plant = load_plant(_plant(tmp_path / "plant.yaml", config.site, "pi-a"))
    made = write_broker_files(plant, tmp_path / "broker")
    assert made.created == [INGEST_USER, "moldlab-monitor", "pi-a"]
    password = {u: (tmp_path / "broker/credentials" / u).read_text().strip() for u in made.created}
    broker = LocalMosquitto(
        Path(tempfile.mkdtemp(dir=scratch_dir)) / "mosquitto",
        tls=(certs / "server.crt", certs / "server.key"),
        auth=(tmp_path / "broker/passwd", tmp_path / "broker/acl"),
    )
    broker.start()
    url = f"mqtts://localhost:{broker.port}"
    broker_config = {
        "url": url,
        "username": "pi-a",
        "password": password["pi-a"],
        "tls": {"ca_file": str(certs / "ca.crt")},
    }
    config = config.model_copy(update={"broker": config.broker.model_validate(broker_config)})
    ingest_url = f"mqtts://{INGEST_USER}:{password[INGEST_USER]}@localhost:{broker.port}"
    workers = [
        IngestSettings(
            database_url=database_url,
            mqtt_url=f"{ingest_url}?ca={certs / 'ca.crt'}",
            ingest_site=config.site,
            ingest_client_id=f"ingest-{config.site}",
            ingest_shared_group="plant",
            ingest_worker=name,
            ingest_metrics_port=0,
        )
        for name in ("1", "2")
    ]
    source = "pi-a:imm-01"
    stop = asyncio.Event()
    try:
        async with running_ingest(workers[0]), running_ingest(workers[1]):
            edge = asyncio.create_task(run_edge(config, stop))
            await _until(lambda: len(logged_seqs(database_url, source)) >= 10, 30, "data")
            await _until(lambda: _waiting(config.outbox.path) <= 3, 20, "commits confirmed")
            # An intruder on the plant network: no user, or no TLS, gets nothing.
            trusted = ssl.create_default_context(cafile=str(certs / "ca.crt"))
            with pytest.raises(MqttCodeError, match=r"[Nn]ot authori[sz]ed"):
                async with aiomqtt.Client("localhost", broker.port, tls_context=trusted):
                    pass
            with pytest.raises(aiomqtt.MqttError):
                async with aiomqtt.Client("127.0.0.1", broker.port, timeout=3):
                    pass
            stop.set()
            await asyncio.wait_for(edge, 20)
        seqs = logged_seqs(database_url, source)
        assert seqs == list(range(seqs[0], seqs[-1] + 1))
    finally:
        stop.set()
        broker.stop()
        await machine.stop()
