"""Local MQTT brokers run as child processes: mosquitto, or amqtt when it is missing."""

from __future__ import annotations

import os
import pwd
import shutil
import sys
from pathlib import Path

from moldlab.servers.errors import ServerError
from moldlab.servers.process import ChildServer, accepts_tcp

# Logged by moldlab.servers.pybroker once it listens; that module imports amqtt, this one must not.
PYBROKER_READY = b"amqtt broker ready"


def _mosquitto_path() -> str | None:
    # Debian installs it in /usr/sbin, which is not on an ordinary user's PATH.
    return shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")


class _Broker(ChildServer):
    @property
    def url(self) -> str:
        """The broker's URL."""
        return f"mqtt://127.0.0.1:{self.port}"


class LocalMosquitto(_Broker):
    """A mosquitto broker on 127.0.0.1 whose sessions persist in `data_dir`."""

    label = "mosquitto"
    log_name = "mosquitto.log"
    pid_name = "mosquitto.pid"

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        log_path: Path | None = None,
        max_inflight_messages: int = 100,
        tls: tuple[Path, Path] | None = None,
        persistence: bool = True,
        auth: tuple[Path, Path] | None = None,
    ) -> None:
        super().__init__(data_dir, port=port, log_path=log_path)
        # False: a restart forgets every session and queued message (tests of a broker that
        # loses what it acknowledged).
        self.persistence = persistence
        self.auth = auth  # (password file, ACL file): no anonymous clients, each user its ACL
        # Unacknowledged messages per client; ingest's batches can be no larger (production: 1000).
        self.max_inflight_messages = max_inflight_messages
        self.tls = tls  # (certificate, key): the listener speaks TLS only

    @property
    def url(self) -> str:
        """The broker's URL (mqtts:// with TLS)."""
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0) -> None:
        """Write mosquitto.conf, launch mosquitto and wait until it accepts connections."""
        if self.pid is not None:
            return
        binary = _mosquitto_path()
        if binary is None:
            raise ServerError("mosquitto not found (apt-get install mosquitto)")
        if any(c.isspace() for c in str(self.data_dir)):
            raise ServerError(f"mosquitto.conf cannot hold a path with spaces: {self.data_dir}")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = self.data_dir / "mosquitto.conf"
        tls = f"certfile {self.tls[0]}\nkeyfile {self.tls[1]}\n" if self.tls else ""
        access = (
            f"allow_anonymous false\npassword_file {self.auth[0]}\nacl_file {self.auth[1]}\n"
            if self.auth
            else "allow_anonymous true\n"
        )
        conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            f"{tls}"
            f"{access}"
            f"persistence {'true' if self.persistence else 'false'}\n"
            f"persistence_location {self.data_dir}/\n"
            "autosave_interval 10\n"
            # Ingest may be down for a while; the broker holds the backlog for it.
            "max_queued_messages 1000000\n"
            f"max_inflight_messages {self.max_inflight_messages}\n"
            "log_dest stdout\n"
            # Stay as whoever started us; as root it would otherwise switch to 'mosquitto'.
            f"user {pwd.getpwuid(os.geteuid()).pw_name}\n"
        )
        self._spawn([binary, "-c", str(conf)])
        self._wait_ready(lambda: accepts_tcp(self.port), timeout_s)


class LocalPythonBroker(_Broker):
    """The pure-Python amqtt broker on 127.0.0.1; sessions live in memory only."""

    label = "amqtt (in-process Python broker)"
    log_name = "amqtt.log"
    pid_name = "amqtt.pid"

    def start(self, timeout_s: float = 20.0) -> None:
        """Launch `python -m moldlab.servers.pybroker` and wait until it accepts connections."""
        if self.pid is not None:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # The child must import moldlab even when it is run from a source checkout.
        root = str(Path(__file__).resolve().parents[2])
        path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
        argv = [sys.executable, "-m", "moldlab.servers.pybroker", "--port", str(self.port)]
        self._spawn(argv, env={**os.environ, "PYTHONPATH": path}, cwd=self.data_dir)
        # Its ready line, not a probe connection, which amqtt would log as an error.
        self._wait_ready(lambda: self._logged(PYBROKER_READY), timeout_s)


def local_broker(data_dir: Path, port: int | None = None) -> LocalMosquitto | LocalPythonBroker:
    """Return mosquitto if it is installed, else the Python broker; not yet started."""
    if _mosquitto_path():
        return LocalMosquitto(data_dir, port=port)
    return LocalPythonBroker(data_dir, port=port)
