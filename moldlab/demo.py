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
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

from moldlab.demo_floor import floor_parts
from moldlab.servers import (
    LocalMosquitto,
    LocalPostgres,
    LocalPythonBroker,
    ServerError,
    cluster_dir,
    create_database,
    find_postgres_bin_dir,
    local_broker,
)

log = logging.getLogger("moldlab.demo")

_PR_SET_PDEATHSIG = 1


def _die_with(parent: int) -> Callable[[], None]:
    """For the child: get SIGTERM if the demo itself dies (even by SIGKILL)."""

    def preexec() -> None:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the demo died before prctl took effect
            os._exit(1)

    return preexec


class _Stop(Exception):
    """SIGINT or SIGTERM arrived."""


class _Signals:
    """Notes the first SIGINT/SIGTERM and ignores the rest; `check()` acts on it."""

    def __init__(self) -> None:
        self.received: str | None = None
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, _frame: object) -> None:
        # No exception from here: it could land between a spawn and its bookkeeping.
        self.received = signal.Signals(signum).name
        for other in (signal.SIGINT, signal.SIGTERM):
            signal.signal(other, signal.SIG_IGN)

    def check(self) -> None:
        if self.received:
            raise _Stop(self.received)


class Child:
    """A moldlab service run as `python -m moldlab ...`, logging to the demo's terminal."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], role: str = "") -> None:
        self.name = name
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "moldlab", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with(os.getpid()),
        )
        log.info("started %s (pid %d)%s", name, self._proc.pid, f": {role}" if role else "")

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


def _wait_for_api(
    port: int, children: list[Child], signals: _Signals, timeout_s: float = 60.0
) -> None:
    url = f"http://127.0.0.1:{port}/api/v1/health"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        signals.check()
        for child in children:
            if child.exit_code() is not None:
                raise ServerError(f"{child.name} exited with code {child.exit_code()}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as resp:
            if resp.status == 200:
                return
        time.sleep(0.3)
    raise ServerError(f"the API did not answer at {url} within {timeout_s:.0f} s")


def run_demo(data_dir: Path, *, port: int = 8000, machines: int | None = None) -> int:
    """Run everything until SIGINT/SIGTERM or until a part dies; returns the exit code.

    The machines are the packaged `demo` scenario's three, or `machines` of the demo floor;
    those of one line are read over Modbus TCP by an edge gateway (see moldlab.demo_floor).
    Everything is kept in `data_dir`, except, as root, a PostgreSQL cluster that the
    `postgres` user could not reach there (see moldlab.servers.cluster_dir).
    """
    if not _port_free(port):
        print(f"moldlab demo: port {port} is in use; choose another with --port", file=sys.stderr)
        return 2
    data_dir = data_dir.absolute()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        cluster, where = cluster_dir(data_dir)
    except (OSError, ServerError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        print(f"moldlab demo: data directory {data_dir}: {reason}", file=sys.stderr)
        print("choose another with --data-dir (MOLDLAB_DATA_DIR)", file=sys.stderr)
        return 2

    signals = _Signals()
    # Its log beside the others in the data dir, wherever the cluster is.
    postgres = LocalPostgres(cluster, log_path=data_dir / "postgres.log")
    broker = local_broker(data_dir / "mqtt")
    children: list[Child] = []
    code = 0
    try:
        bin_dir, origin = find_postgres_bin_dir()
        log.info("starting PostgreSQL (%s, %s); cluster %s, %s", origin, bin_dir, cluster, where)
        postgres.start()
        signals.check()
        database_url = _ensure_database(postgres.url, "moldlab")
        from store import upgrade

        backend = upgrade(database_url)
        log.info("database ready on port %d (storage: %s)", postgres.port, backend)
        from moldlab.plant_cli import load_demo_plant

        load_demo_plant(database_url)  # the calendar and moulds the simulated floor follows
        log.info("starting the MQTT broker: %s", broker.label)
        broker.start()
        signals.check()
        env = {
            **os.environ,
            "MOLDLAB_DATABASE_URL": database_url,
            "MOLDLAB_MQTT_URL": broker.url,
            "MOLDLAB_API_HOST": "127.0.0.1",
            "MOLDLAB_API_PORT": str(port),
        }
        for part in floor_parts(machines, data_dir / "edge", broker.url):
            children.append(Child(part.name, part.args, env, part.role))
            signals.check()
        children.append(Child("ingest", ["ingest"], env))
        children.append(Child("api", ["api"], env))
        _wait_for_api(port, children, signals)
        print(f"\nmoldlab demo is running: open http://127.0.0.1:{port}", flush=True)
        print("(API docs at /docs; Ctrl-C stops everything)\n", flush=True)
        while True:
            signals.check()
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
    """Machines first, then the gateway, ingest and the API, then broker and database (< 10 s)."""
    started = time.monotonic()
    machines = [c for c in children if c.name.startswith("sim")]
    services = [c for c in children if not c.name.startswith("sim")]
    for group, budget_s in ((machines, 1.5), (services, 4.0)):
        for child in group:
            child.terminate()
        for child in group:
            child.wait(started + budget_s)
    broker.stop(2.0)
    postgres.stop(2.0)
    log.info("demo stopped in %.1f s", time.monotonic() - started)
