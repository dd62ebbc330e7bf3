"""`moldlab demo`: the whole stack on one machine, started and stopped in order."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

from moldlab.servers import (
    LocalMosquitto,
    LocalPostgres,
    LocalPythonBroker,
    ServerError,
    create_database,
    find_postgres_bin_dir,
    local_broker,
)

log = logging.getLogger("moldlab.demo")

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the demo itself dies (even by SIGKILL)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Child:
    """A moldlab service run as `python -m moldlab ...`, logging to the demo's terminal."""

    def __init__(self, name: str, args: list[str], env: dict[str, str]) -> None:
        self.name = name
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "moldlab", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        log.info("started %s (pid %d)", name, self._proc.pid)

    @property
    def pid(self) -> int:
        return self._proc.pid

    def exit_code(self) -> int | None:
        return self._proc.poll()

    def terminate(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()

    def wait(self, deadline: float) -> None:
        """Wait until `deadline` (monotonic), then kill."""
        try:
            self._proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in time; killing it", self.name)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()


class _Stop(Exception):
    """SIGINT or SIGTERM arrived."""


def _ensure_database(server_url: str, name: str) -> str:
    with psycopg.connect(server_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    if exists:
        return urlsplit(server_url)._replace(path=f"/{name}").geturl()
    return create_database(server_url, name)


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        # As uvicorn binds: a port left in TIME_WAIT by a previous run is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_for_api(port: int, children: list[Child], timeout_s: float = 60.0) -> None:
    url = f"http://127.0.0.1:{port}/api/v1/health"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for child in children:
            if child.exit_code() is not None:
                raise ServerError(f"{child.name} exited with code {child.exit_code()}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as resp:
            if resp.status == 200:
                return
        time.sleep(0.3)
    raise ServerError(f"the API did not answer at {url} within {timeout_s:.0f} s")


def run_demo(data_dir: Path, *, port: int = 8000, machines: int = 3) -> int:
    """Run everything until SIGINT/SIGTERM or until a part dies; returns the exit code."""
    if not _port_free(port):
        print(f"moldlab demo: port {port} is in use; choose another with --port", file=sys.stderr)
        return 2
    data_dir = data_dir.absolute()
    data_dir.mkdir(parents=True, exist_ok=True)

    def _on_signal(signum: int, _frame: object) -> None:
        raise _Stop(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    postgres = LocalPostgres(data_dir / "postgres")
    broker = local_broker(data_dir / "mqtt")
    children: list[Child] = []
    code = 0
    try:
        bin_dir, origin = find_postgres_bin_dir()
        log.info("starting PostgreSQL (%s, %s) in %s", origin, bin_dir, postgres.data_dir)
        postgres.start()
        database_url = _ensure_database(postgres.url, "moldlab")
        from ingest import upgrade

        backend = upgrade(database_url)
        log.info("database ready on port %d (storage: %s)", postgres.port, backend)
        log.info("starting the MQTT broker: %s", broker.label)
        broker.start()
        env = {
            **os.environ,
            "MOLDLAB_DATABASE_URL": database_url,
            "MOLDLAB_MQTT_URL": broker.url,
            "MOLDLAB_API_HOST": "127.0.0.1",
            "MOLDLAB_API_PORT": str(port),
        }
        children.append(Child("ingest", ["ingest"], env))
        children.append(Child("api", ["api"], env))
        children.append(Child("sim", ["sim", "--machines", str(machines)], env))
        _wait_for_api(port, children)
        print(f"\nmoldlab demo is running: open http://127.0.0.1:{port}", flush=True)
        print("(API docs at /docs; Ctrl-C stops everything)\n", flush=True)
        while True:
            for child in children:
                if (exit_code := child.exit_code()) is not None:
                    raise ServerError(f"{child.name} exited with code {exit_code}")
            time.sleep(0.5)
    except _Stop as stop:
        log.info("%s received: stopping", stop)
    except ServerError as exc:
        log.error("%s; stopping", exc)
        code = 1
    finally:
        # Ignore further signals: a second Ctrl-C must not leave half the stack running.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _shutdown(children, broker, postgres)
    return code


def _shutdown(
    children: list[Child], broker: LocalMosquitto | LocalPythonBroker, postgres: LocalPostgres
) -> None:
    """Machines first, then ingest flushes, then the API, the broker and the database."""
    started = time.monotonic()
    for child in children:
        child.terminate()
    for child in children:
        child.wait(started + 5.0)
    broker.stop(2.0)
    postgres.stop(3.0)
    log.info("demo stopped in %.1f s", time.monotonic() - started)
