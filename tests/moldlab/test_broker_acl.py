"""The plant broker locked down by `moldlab broker acl`, tried as an intruder on the plant
network would (issue 16), against a real mosquitto with the files the command wrote."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import pytest
import yaml
from aiomqtt.exceptions import MqttCodeError

from contracts import EdgeStatus, MessageKind, Topic, encode
from contracts.commits import commit_topic, encode_commits
from moldlab.brokerauth import INGEST_USER, hash_password
from moldlab.servers import LocalMosquitto
from moldlab.servers.process import accepts_tcp, free_port

pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parents[2]
LINE_A = ("demo", "hall-a", "line-1")
LINE_B = ("demo", "hall-a", "line-2")


def _plant(path: Path) -> Path:
    data = yaml.safe_load((ROOT / "simulators/scenarios/demo-plant.yaml").read_text())
    data["gateways"] = [
        {"id": "pi-a", "site": "demo", "area": "hall-a", "line": "line-1"},
        {"id": "pi-b", "site": "demo", "area": "hall-a", "line": "line-2"},
    ]
    path.write_text(yaml.safe_dump(data))
    return path


def _acl(plant: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "moldlab", "broker", "acl", str(plant), "--out", str(out), *extra],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.fixture
def locked(scratch_dir: Path, tmp_path: Path) -> Iterator[tuple[LocalMosquitto, Path]]:
    """A mosquitto with the password and ACL files `moldlab broker acl` made; their dir."""
    out = tmp_path / "broker"
    made = _acl(_plant(tmp_path / "plant.yaml"), out)
    assert made.returncode == 0, made.stderr
    broker = LocalMosquitto(
        Path(tempfile.mkdtemp(dir=scratch_dir)) / "mosquitto", auth=(out / "passwd", out / "acl")
    )
    broker.start()
    yield broker, out
    broker.stop()


def _client(
    broker: LocalMosquitto, out: Path | None, user: str | None, **kw: object
) -> aiomqtt.Client:
    password = (
        None if out is None or user is None else (out / "credentials" / user).read_text().strip()
    )
    return aiomqtt.Client(
        "127.0.0.1",
        broker.port,
        username=user,
        password=password,
        **kw,  # type: ignore[arg-type]
    )


@contextlib.asynccontextmanager
async def _reading(
    broker: LocalMosquitto, out: Path, user: str, *topics: str
) -> AsyncIterator[list[tuple[str, bytes]]]:
    """What `user` receives, subscribed to `topics` (those the ACL refuses bring nothing)."""
    got: list[tuple[str, bytes]] = []
    async with _client(broker, out, user) as client:
        for topic in topics:
            await client.subscribe(topic, qos=1)

        async def collect() -> None:
            async for m in client.messages:
                assert isinstance(m.payload, bytes)
                got.append((str(m.topic), m.payload))

        task = asyncio.create_task(collect())
        try:
            yield got
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _until(condition: object) -> None:
    assert callable(condition)
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0.02)


def _status(gateway: str, line: tuple[str, str, str], *, online: bool) -> tuple[str, bytes]:
    topic = str(Topic(*line, gateway, MessageKind.STATUS))
    message = EdgeStatus(
        machine_id=gateway, ts=datetime.now(UTC), source=gateway, seq=1, online=online
    )
    return topic, encode(message)


def test_the_password_file_is_mosquittos_own_format() -> None:
    # As mosquitto_passwd writes it: $7$, 101 rounds of PBKDF2-HMAC-SHA512, base64 salt$hash.
    salt = bytes.fromhex("63a6990305b2b422a4c98e2b")
    assert hash_password("s3cret-pass", salt) == (
        "$7$101$Y6aZAwWytCKkyY4r$TwHXbxAGmxOonMRI08wEbsD2aCSkid8NbEzW1yF7XRW7MeQpj87n4FcTKuReGUWN"
        "MhLYVrfcTvBbc7rxdcEYdA=="
    )


def test_a_second_run_keeps_passwords_adds_and_removes_users(tmp_path: Path) -> None:
    plant, out = _plant(tmp_path / "plant.yaml"), tmp_path / "broker"
    first = _acl(plant, out)
    assert first.returncode == 0, first.stderr
    assert "pi-a: new" in first.stdout
    password = (out / "credentials" / "pi-a").read_text()
    assert oct((out / "credentials" / "pi-a").stat().st_mode & 0o777) == "0o600"
    data = yaml.safe_load(plant.read_text())
    data["gateways"] = [data["gateways"][0], {**data["gateways"][1], "id": "pi-c"}]
    plant.write_text(yaml.safe_dump(data))
    second = _acl(plant, out, "--sim")
    assert second.returncode == 0, second.stderr
    assert "pi-a: kept" in second.stdout
    assert "pi-c: new" in second.stdout
    assert "moldlab-sim: new" in second.stdout
    assert "pi-b: removed" in second.stdout
    assert (out / "credentials" / "pi-a").read_text() == password
    users = [line.split(":")[0] for line in (out / "passwd").read_text().splitlines()]
    assert users == [INGEST_USER, "moldlab-monitor", "moldlab-sim", "pi-a", "pi-c"]
    data["gateways"].append({**data["gateways"][0], "id": INGEST_USER})
    plant.write_text(yaml.safe_dump(data))
    refused = _acl(plant, out)
    assert refused.returncode == 2
    assert "is the broker user of a moldlab service" in refused.stderr


async def test_nobody_gets_in_without_a_password_of_the_file(
    locked: tuple[LocalMosquitto, Path],
) -> None:
    broker, _out = locked
    # An anonymous client, even one that says it is ingest (it took ingest's session and
    # its queued messages before), and a gateway with a wrong password.
    for client in (
        _client(broker, None, None, identifier="moldlab-ingest"),
        aiomqtt.Client("127.0.0.1", broker.port, username="pi-a", password="changeme"),
    ):
        with pytest.raises(MqttCodeError, match=r"[Nn]ot authori[sz]ed"):
            async with client:
                pass


async def test_a_gateway_publishes_under_its_own_line_only_and_reads_nothing_else(
    locked: tuple[LocalMosquitto, Path],
) -> None:
    broker, out = locked
    own_a, own_b = commit_topic(*LINE_A, "pi-a"), commit_topic(*LINE_B, "pi-b")
    async with (
        _reading(broker, out, INGEST_USER, f"$share/g/{Topic.subscription()}") as ingest,
        _reading(broker, out, "pi-a", own_a) as pi_a,
        # pi-b reading everything, and pi-a's confirmations.
        _reading(broker, out, "pi-b", "#", own_a, own_b) as pi_b_got,
        _client(broker, out, "pi-b") as pi_b,
        _client(broker, out, "pi-a") as pi_a_client,
        _client(broker, out, INGEST_USER) as ingest_client,
    ):
        # pi-b forges pi-a's death (a running machine offline on the kiosk) and a commit
        # confirmation of pi-a's messages (pi-a would delete what is not written); pi-a
        # forges one of pi-b's.
        forged_status = _status("pi-a", LINE_A, online=False)
        await pi_b.publish(*forged_status, qos=1)
        await pi_b.publish(own_a, encode_commits({"pi-a:imm-01": range(1, 99)}), qos=1)
        await pi_a_client.publish(own_b, encode_commits({"pi-b:imm-01": [1]}), qos=1)
        # Then what may happen: pi-a on its line, ingest confirming to pi-a and pi-b.
        real = _status("pi-a", LINE_A, online=True)
        await pi_a_client.publish(*real, qos=1)
        to_a, to_b = encode_commits({"pi-a:imm-01": [7]}), encode_commits({"pi-b:imm-02": [2]})
        await ingest_client.publish(own_a, to_a, qos=1)
        await ingest_client.publish(own_b, to_b, qos=1)
        await _until(lambda: real in ingest and (own_a, to_a) in pi_a and (own_b, to_b) in pi_b_got)
        assert ingest == [real]  # not the forged death
        assert pi_a == [(own_a, to_a)]  # not pi-b's forged confirmation
        assert pi_b_got == [(own_b, to_b)]  # nothing of pi-a's, not pi-a's forgery


@pytest.fixture
def deployed(tmp_path: Path) -> Iterator[tuple[int, int, Path, Path]]:
    """mosquitto 2 with deploy/mosquitto/mosquitto.conf as shipped (its paths and port made
    this test's), the files `moldlab broker acl` and make-certs.sh wrote: (TLS port, the
    exporter's inside port, auth, certs)."""
    auth, certs, data = tmp_path / "broker", tmp_path / "tls", tmp_path / "data"
    made = _acl(_plant(tmp_path / "plant.yaml"), auth)
    assert made.returncode == 0, made.stderr
    subprocess.run(
        [str(ROOT / "deploy/tls/make-certs.sh"), str(certs), "localhost"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    data.mkdir()
    port, inside = free_port(), free_port()
    conf = (ROOT / "deploy/mosquitto/mosquitto.conf").read_text()
    assert "listener 8883\n" in conf
    assert "listener 1884\n" in conf
    conf = (
        conf.replace("listener 8883\n", f"listener {port} 127.0.0.1\n")
        .replace("listener 1884\n", f"listener {inside} 127.0.0.1\n")
        .replace("/mosquitto/certs/", f"{certs}/")
        .replace("/mosquitto/auth/", f"{auth}/")
        .replace("/mosquitto/data/", f"{data}/")
    ) + f"user {pwd.getpwuid(os.geteuid()).pw_name}\n"  # as root it would become 'mosquitto'
    (tmp_path / "mosquitto.conf").write_text(conf)
    with (tmp_path / "mosquitto.log").open("wb") as log:
        process = subprocess.Popen(
            ["mosquitto", "-c", str(tmp_path / "mosquitto.conf")], stdout=log, stderr=log
        )
    try:
        deadline = time.monotonic() + 10
        while not accepts_tcp(port):
            assert process.poll() is None, (tmp_path / "mosquitto.log").read_text()
            assert time.monotonic() < deadline, "mosquitto did not listen"
            time.sleep(0.05)
        yield port, inside, auth, certs
    finally:
        process.terminate()
        process.wait(10)


async def test_the_shipped_broker_config_takes_tls_users_only_and_bounds_a_message(
    deployed: tuple[int, int, Path, Path],
) -> None:
    port, inside, auth, certs = deployed
    trusted = ssl.create_default_context(cafile=str(certs / "ca.crt"))

    def client(user: str | None) -> aiomqtt.Client:
        password = None if user is None else (auth / "credentials" / user).read_text().strip()
        return aiomqtt.Client(
            "localhost", port, username=user, password=password, tls_context=trusted
        )

    with pytest.raises(MqttCodeError, match=r"[Nn]ot authori[sz]ed"):
        async with client(None):
            pass
    with pytest.raises(aiomqtt.MqttError):  # no TLS, no talk
        async with aiomqtt.Client("127.0.0.1", port, timeout=3):
            pass
    topic = str(Topic(*LINE_A, "imm-01", MessageKind.TELEMETRY))
    async with client(INGEST_USER) as ingest, client("pi-a") as pi_a:
        await ingest.subscribe(f"$share/g/{Topic.subscription()}", qos=1)
        await pi_a.publish(topic, b"x" * (1_048_576 + 1), qos=1)  # over message_size_limit
        await pi_a.publish(topic, b"small", qos=1)
        async with asyncio.timeout(10):
            async for message in ingest.messages:
                assert message.payload == b"small"
                break
    # The exporter's plain listener: its user reads the broker's statistics, and only those.
    monitor = (auth / "credentials" / "moldlab-monitor").read_text().strip()
    async with aiomqtt.Client(
        "127.0.0.1", inside, username="moldlab-monitor", password=monitor
    ) as exporter:
        await exporter.subscribe("$SYS/broker/uptime", qos=0)
        await exporter.subscribe("moldlab/#", qos=1)
        async with client("pi-a") as pi_a:
            await pi_a.publish(topic, b"not for the exporter", qos=1)
        async with asyncio.timeout(20):  # mosquitto publishes $SYS every 10 s
            async for message in exporter.messages:
                assert str(message.topic) == "$SYS/broker/uptime"
                break
    with pytest.raises(MqttCodeError, match=r"[Nn]ot authori[sz]ed"):
        async with aiomqtt.Client("127.0.0.1", inside):
            pass
