"""`moldlab demo`: the whole stack on one machine, started and stopped in order."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
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
from typing import Protocol, TypeVar
from urllib.parse import urlsplit

import psycopg

from moldlab.demo_floor import FloorPart, floor_parts
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
from moldlab.servers.process import free_port

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


# Ctrl-C, `kill`, and a closed terminal or SSH session: each stops the whole demo in order.
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _Stop(Exception):
    """SIGINT, SIGTERM or SIGHUP arrived."""


class _Signals:
    """Notes the first SIGINT/SIGTERM/SIGHUP and ignores the rest; `check()` acts on it."""

    def __init__(self) -> None:
        self.received: str | None = None
        for signum in _STOP_SIGNALS:
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, _frame: object) -> None:
        # No exception from here: it could land between a spawn and its bookkeeping.
        self.received = signal.Signals(signum).name
        self.ignore_more()

    @staticmethod
    def ignore_more() -> None:
        """Ignore further signals: a second Ctrl-C must not leave half the stack running."""
        for signum in _STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)

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


def _claim(data_dir: Path) -> int | None:
    """Lock `data_dir` for this demo (an open file descriptor, closed by the caller), or None
    when another demo runs on it: this one would otherwise stop that one's servers as left
    over. The lock goes with the process, however it ends."""
    fd = os.open(data_dir / "demo.pid", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _holder(data_dir: Path) -> str:
    with contextlib.suppress(OSError):
        return f" (pid {(data_dir / 'demo.pid').read_text().strip()})"
    return ""


def _ingest() -> tuple[FloorPart, int]:
    """Ingest, and the port of its metrics: a free one, as the edge's (another demo, or an
    ingest, on this host may hold the default 9109)."""
    metrics = free_port()
    part = FloorPart(
        "ingest",
        ["ingest", "--metrics-port", str(metrics)],
        f"broker to database; metrics at http://127.0.0.1:{metrics}/metrics",
    )
    return part, metrics


def _services(data_dir: Path) -> list[FloorPart]:
    """The maintenance scorer and the API, beside the floor."""
    # With no model in the data dir yet, the scorer first trains one (minutes, logged): the
    # rest of the demo runs meanwhile, and predictions appear once it scores.
    models = data_dir / "models"
    pdm = FloorPart(
        "pdm",
        ["pdm", "score", "--models-dir", str(models), "--interval-s", "30",
         "--train-if-missing", str(data_dir / "pdm-export")],
        f"maintenance predictions and alerts, model from {models}",
    )  # fmt: skip
    return [pdm, FloorPart("api", ["api"], "")]


# Children whose end the demo outlives: without maintenance predictions it is still a demo.
_OPTIONAL = ("pdm",)


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


def _wait_for(
    url: str, ready: bytes, children: list[Child], signals: _Signals, timeout_s: float
) -> bool:
    """Until `url` answers 200 with `ready` in its body (True), a child dies (ServerError),
    a signal comes, or `timeout_s` passes (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        signals.check()
        for child in children:
            if child.exit_code() is not None:
                raise ServerError(f"{child.name} exited with code {child.exit_code()}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as resp:
            if resp.status == 200 and ready in resp.read():
                return True
        time.sleep(0.2)
    return False


def _wait_for_ingest(
    metrics: int, children: list[Child], signals: _Signals, timeout_s: float = 60.0
) -> None:
    """Until ingest has subscribed: what the machines send before would reach nobody (a
    fresh broker keeps no messages for a subscriber it has not met yet)."""
    url = f"http://127.0.0.1:{metrics}/metrics"
    if not _wait_for(url, b"\nmoldlab_ingest_broker_connected 1.0", children, signals, timeout_s):
        raise ServerError(f"ingest did not subscribe to the broker within {timeout_s:.0f} s")


def _wait_for_api(
    port: int, children: list[Child], signals: _Signals, timeout_s: float = 60.0
) -> None:
    url = f"http://127.0.0.1:{port}/api/v1/health"
    if not _wait_for(url, b"", children, signals, timeout_s):
        raise ServerError(f"the API did not answer at {url} within {timeout_s:.0f} s")


def run_demo(data_dir: Path, *, port: int = 8000, machines: int | None = None) -> int:
    """Run everything until SIGINT/SIGTERM/SIGHUP or a part dies; returns the exit code.

    The machines are the packaged `demo` scenario's three, or `machines` of the demo floor;
    those of one line are read over Modbus TCP by an edge gateway (see moldlab.demo_floor).
    Everything is kept in `data_dir`, except, as root, a PostgreSQL cluster that the
    `postgres` user could not reach there (see moldlab.servers.cluster_dir). One demo runs on
    a data dir at a time; servers an earlier one left running there (it was killed) are
    stopped before they start afresh.
    """
    if not _port_free(port):
        print(f"moldlab demo: port {port} is in use; choose another with --port", file=sys.stderr)
        return 2
    data_dir = data_dir.absolute()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        cluster, where = cluster_dir(data_dir)
        lock = _claim(data_dir)
    except (OSError, ServerError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        print(f"moldlab demo: data directory {data_dir}: {reason}", file=sys.stderr)
        print("choose another with --data-dir (MOLDLAB_DATA_DIR)", file=sys.stderr)
        return 2
    if lock is None:
        print(
            f"moldlab demo: another demo{_holder(data_dir)} runs on data directory {data_dir}; "
            "stop it, or choose another --data-dir (MOLDLAB_DATA_DIR)",
            file=sys.stderr,
        )
        return 2
    try:
        return _run(data_dir, cluster, where, port, machines)
    finally:
        os.close(lock)


def _run(data_dir: Path, cluster: Path, where: str, port: int, machines: int | None) -> int:
    signals = _Signals()
    # Its log beside the others in the data dir, wherever the cluster is.
    postgres = LocalPostgres(cluster, log_path=data_dir / "postgres.log")
    broker = local_broker(data_dir / "mqtt")
    children: list[Child] = []
    gateways: list[str] = []
    database_url = ""
    code = 0
    try:
        bin_dir, origin = find_postgres_bin_dir()
        log.info("starting PostgreSQL (%s, %s); cluster %s, %s", origin, bin_dir, cluster, where)
        postgres.start()
        signals.check()
        database_url = _ensure_database(postgres.url, "moldlab")
        from store import upgrade

        backend = upgrade(database_url)
        log.info(
            "database ready on port %d (storage: %s); other commands reach it with "
            "MOLDLAB_DATABASE_URL=%s (e.g. moldlab plant show; moldlab user add NAME --role admin "
            "for the engineer workspace)",
            postgres.port, backend, database_url,
        )  # fmt: skip
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
        # Ingest first: the machines' first messages (their state) go to nobody before it
        # subscribes.
        ingest, metrics = _ingest()
        children.append(Child(ingest.name, ingest.args, env, ingest.role))
        _wait_for_ingest(metrics, children, signals)
        for part in [*floor_parts(machines, data_dir / "edge", broker.url), *_services(data_dir)]:
            children.append(Child(part.name, part.args, env, part.role))
            gateways += [part.gateway] if part.gateway else []
            signals.check()
        _wait_for_api(port, children, signals)
        print(f"\nmoldlab demo is running: open http://127.0.0.1:{port} (the visitor kiosk)",
              flush=True)  # fmt: skip
        print(f"engineers: http://127.0.0.1:{port}/engineer, after `moldlab user add NAME "
              "--role admin` with the MOLDLAB_DATABASE_URL above; API docs at /docs; Ctrl-C "
              "stops everything\n", flush=True)  # fmt: skip
        while True:
            signals.check()
            for child in list(children):
                if (exit_code := child.exit_code()) is None:
                    continue
                if child.name not in _OPTIONAL:
                    raise ServerError(f"{child.name} exited with code {exit_code}")
                log.warning(
                    "%s exited with code %d (see its lines above); the demo goes on without it",
                    child.name, exit_code,
                )  # fmt: skip
                children.remove(child)
            time.sleep(0.5)
    except _Stop as stop:
        log.info("%s received: stopping", stop)
    except ServerError as exc:
        log.error("%s; stopping", exc)
        code = 1
    finally:
        signals.ignore_more()
        _shutdown(children, broker, postgres, database_url, gateways)
    return code


# The children in the order they stop, by name prefix, and how long each group may take. The
# machines first, so that nothing new comes in, and the maintenance scorer; then the gateway,
# which forwards what it holds and publishes its goodbye (its death status); ingest once that
# is written (it acknowledges only after a commit); the API last. With the broker's and the
# database's budgets below, the whole stop takes less than 10 s.
_STOP_ORDER: tuple[tuple[str | tuple[str, ...], float], ...] = (
    (("sim-", "pdm"), 1.0),
    ("edge", 2.5),
    ("ingest", 2.0),
    ("api", 1.0),
)
_GOODBYE_WAIT_S = 1.0  # for ingest to write the gateways' goodbyes
_BROKER_STOP_S, _POSTGRES_STOP_S = 0.5, 1.5


class _Named(Protocol):
    @property
    def name(self) -> str: ...


_Part = TypeVar("_Part", bound=_Named)


def _stop_groups(children: list[_Part]) -> list[tuple[list[_Part], float]]:
    """`children` in groups as they stop (see _STOP_ORDER), with each group's budget."""
    groups: list[tuple[list[_Part], float]] = []
    rest = list(children)
    for prefix, budget_s in _STOP_ORDER:
        groups.append(([c for c in rest if c.name.startswith(prefix)], budget_s))
        rest = [c for c in rest if not c.name.startswith(prefix)]
    groups[-1][0].extend(rest)  # none, unless a new kind of child is not in the table yet
    return groups


def _shutdown(
    children: list[Child],
    broker: LocalMosquitto | LocalPythonBroker,
    postgres: LocalPostgres,
    database_url: str,
    gateways: list[str],
) -> None:
    """Machines, the gateway, ingest and the API in turn, then broker and database (< 10 s)."""
    started = time.monotonic()
    for group, budget_s in _stop_groups(children):
        deadline = time.monotonic() + budget_s
        for child in group:
            child.terminate()
        for child in group:
            child.wait(deadline)
        if gateways and any(child.name == "edge" for child in group):
            _wait_for_goodbyes(database_url, gateways, time.monotonic() + _GOODBYE_WAIT_S)
    broker.stop(_BROKER_STOP_S)
    postgres.stop(_POSTGRES_STOP_S)
    log.info("demo stopped in %.1f s", time.monotonic() - started)


def _wait_for_goodbyes(database_url: str, gateways: list[str], deadline: float) -> None:
    """Until ingest has written each gateway's last status, offline (or until `deadline`).

    Written by ingest in this run, not at its next start, where it would tell of a gateway
    lost in a run long over.
    """
    query = (
        "SELECT count(*) FROM unnest(%s::text[]) AS g(key) WHERE (SELECT online FROM edge_status"
        " WHERE edge_key = g.key ORDER BY received_at DESC LIMIT 1)"
    )
    try:
        with psycopg.connect(database_url, autocommit=True, connect_timeout=1) as conn:
            while time.monotonic() < deadline:
                row = conn.execute(query, (gateways,)).fetchone()
                if row is None or row[0] == 0:
                    return
                time.sleep(0.05)
    except psycopg.Error as exc:
        log.warning("cannot see whether ingest wrote the gateways' goodbyes: %s", exc)
        return
    log.warning("ingest did not write the goodbye of gateway %s in time", ", ".join(gateways))
