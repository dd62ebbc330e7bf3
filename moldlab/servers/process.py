"""A server run as a child process that the caller owns, with readiness and shutdown."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, NoReturn, Self

from moldlab.servers.errors import ServerError

log = logging.getLogger("moldlab.servers")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def free_ports(count: int) -> int:
    """Return the first of `count` consecutive TCP ports on 127.0.0.1 that are free right now."""
    for _ in range(100):
        base = free_port()
        if base + count <= 65536 and all(_bindable(base + i) for i in range(1, count)):
            return base
    raise ServerError(f"found no {count} consecutive free TCP ports on 127.0.0.1")


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def accepts_tcp(port: int) -> bool:
    """Return whether 127.0.0.1:port accepts a TCP connection."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (children, PostgreSQL's workers, ...), from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents[int(stat.parent.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie (Linux /proc)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _wait_gone(pids: set[int], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while any(alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def stop_leftover(pid: int, label: str, data_dir: Path, stop_signal: signal.Signals) -> None:
    """Stop a server that an earlier run left running on `data_dir` (killed before it could
    stop it: its parent is gone, so it is not our child): its stop signal, SIGKILL after 10 s."""
    log.info("stopping %s (pid %d) left running on %s by an earlier run", label, pid, data_dir)
    group = descendants(pid) | {pid}  # now: once it is gone, its workers are no longer below it
    try:
        os.kill(pid, stop_signal)
    except ProcessLookupError:
        return
    except PermissionError as exc:
        raise ServerError(
            f"{label} (pid {pid}) still runs on {data_dir} and may not be stopped by this "
            "user; stop it, then start again"
        ) from exc
    if not _wait_gone({pid}, 10.0):
        for other in group:
            with contextlib.suppress(OSError):
                os.kill(other, signal.SIGKILL)
        if not _wait_gone(group, 5.0):
            raise ServerError(f"{label} (pid {pid}) left running on {data_dir} does not stop")


def log_tail(path: Path, lines: int = 20) -> str:
    """Return the last lines of a log file, or a note that there is none."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


class ChildServer:
    """Base for servers launched with Popen: subclasses build argv and say when they are ready."""

    label: ClassVar[str]
    log_name: ClassVar[str]
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM
    # In data_dir while the child runs: its pid and argv, so that a later start stops one an
    # earlier run left behind (killed before it could stop it). None: the server keeps its own.
    pid_name: ClassVar[str | None] = None

    def __init__(
        self, data_dir: Path, *, port: int | None = None, log_path: Path | None = None
    ) -> None:
        self.data_dir = data_dir.absolute()
        # Chosen once, so clients keep the same URL across stop()/start().
        self._port = port or free_port()
        self.log_path = log_path or self.data_dir.parent / self.log_name
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        return self._port

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        return self._proc.pid if self._proc and self._proc.poll() is None else None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start the server and return once it accepts connections."""
        raise NotImplementedError

    def _spawn(self, argv: Sequence[str], **popen: Any) -> None:
        self._stop_recorded_leftover()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._log_offset = log.tell()
            # A session of its own: a terminal Ctrl-C reaches only the caller, which then
            # stops its servers in order (writers flush before the database goes away).
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **popen,
            )
        if self.pid_name:
            record = {"pid": self._proc.pid, "argv": [str(arg) for arg in argv]}
            (self.data_dir / self.pid_name).write_text(json.dumps(record) + "\n")

    def _stop_recorded_leftover(self) -> None:
        """Stop the child an earlier run recorded in the pid file and left running."""
        if not self.pid_name:
            return
        record = self.data_dir / self.pid_name
        try:
            recorded = json.loads(record.read_text())
            pid, argv = int(recorded["pid"]), list(recorded["argv"])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        except (OSError, ValueError, KeyError, TypeError):
            return  # no record, or its process is gone
        # Its argv names this data dir (the config file, the port): not a reused pid.
        if [os.fsdecode(arg) for arg in cmdline] == argv and alive(pid):
            stop_leftover(pid, self.label, self.data_dir, self.stop_signal)
        record.unlink(missing_ok=True)

    def _logged(self, marker: bytes) -> bool:
        """Whether this run of the server has written marker to its log."""
        with self.log_path.open("rb") as log:
            log.seek(self._log_offset)
            return marker in log.read()

    def _wait_ready(self, ready: Callable[[], bool], timeout_s: float) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout_s
        # Exit first: another server on a reused port must not pass for ours.
        while (code := self._proc.poll()) is None:
            if ready():
                return
            if time.monotonic() > deadline:
                self.stop()
                self._fail(f"not ready after {timeout_s:.0f} s")
            time.sleep(0.1)
        self._proc = None
        self._fail(f"exited with code {code} while starting")

    def _fail(self, what: str) -> NoReturn:
        tail = log_tail(self.log_path)
        raise ServerError(f"{self.label} {what}; last lines of {self.log_path}:\n{tail}")

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the server to shut down cleanly, kill it after timeout_s; idempotent."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(self.stop_signal)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                # Its whole process group, so no orphaned worker keeps the data dir locked.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if self.pid_name:
            (self.data_dir / self.pid_name).unlink(missing_ok=True)
