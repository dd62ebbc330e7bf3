"""`moldlab demo` as a newcomer runs it: from a 0700 directory, live values, SIGTERM, a restart."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from logins import login_headers

from moldlab.servers.postgres import CLUSTER_RECORD, SHARED_CLUSTERS
from moldlab.servers.process import descendants, free_port

from .conftest import Browser, Page

pytestmark = [pytest.mark.infra, pytest.mark.slow]


@pytest.fixture
def home() -> Iterator[Path]:
    """The demo's working directory, mode 0700 like /root: the `postgres` user cannot enter it."""
    path = Path(tempfile.mkdtemp(dir="/tmp", prefix="moldlab-demo-"))
    assert path.stat().st_mode & 0o777 == 0o700
    yield path
    record = path / ".moldlab" / CLUSTER_RECORD
    if record.is_file():  # as root, the cluster went to /var/lib/moldlab/<id>/postgres
        cluster_home = Path(record.read_text().strip()).parent
        if cluster_home.parent == SHARED_CLUSTERS:
            shutil.rmtree(cluster_home, ignore_errors=True)
    shutil.rmtree(path, ignore_errors=True)


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


def _commands(pids: set[int]) -> list[str]:
    """What each of `pids` runs, for a failure's message."""
    commands = []
    for pid in sorted(pids):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        commands.append(f"{pid}: {cmdline.decode(errors='replace')[:160]}")
    return commands


class _Demo:
    """`moldlab demo` started in `cwd` with no option but --port, as a newcomer runs it."""

    def __init__(self, cwd: Path, port: int, run: str) -> None:
        self.port = port
        self.log = cwd / f"{run}.log"  # a file, to read while it runs
        env = {k: v for k, v in os.environ.items() if not k.startswith("MOLDLAB_")}
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "moldlab", "demo", "--port", str(port)],
                cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def started(self) -> dict[str, int]:
        """The children the demo said it started, by name."""
        found = re.findall(r"started (\S+) \(pid (\d+)\)", self.output())
        return {name: int(pid) for name, pid in found}

    def database_url(self) -> str:
        """The URL the demo's log gives for other commands (`moldlab plant show`)."""
        found = re.search(
            r"database ready on port (\d+).* MOLDLAB_DATABASE_URL=(\S+) ", self.output()
        )
        assert found, self.output()
        assert found.group(2) == f"postgresql://postgres@127.0.0.1:{found.group(1)}/moldlab"
        return found.group(2)

    def stop(self, signum: signal.Signals = signal.SIGTERM) -> tuple[int, float]:
        started = time.monotonic()
        self.proc.send_signal(signum)
        self.proc.wait(timeout=20)
        return self.proc.returncode, time.monotonic() - started


def _machines(demo: _Demo, timeout_s: float, want: Any) -> Any:
    """The machines as an engineer sees them (GET /api/v1/machines), once `want` them."""
    deadline = time.monotonic() + timeout_s
    headers: dict[str, str] = {}
    while True:
        assert demo.proc.poll() is None, demo.output()
        try:
            if not headers and "database ready" in demo.output():
                headers = login_headers(demo.database_url())
            url = f"http://127.0.0.1:{demo.port}/api/v1/machines"
            answer = httpx.get(url, timeout=2, headers=headers)
            if answer.status_code == 200 and want(answer.json()["machines"]):
                return answer.json()["machines"]
        except (httpx.HTTPError, psycopg.OperationalError):
            pass  # not up yet
        assert time.monotonic() < deadline, (
            f"demo did not serve what was expected in time:\n{demo.output()[-3000:]}"
        )
        time.sleep(0.5)


def _query(url: str, statement: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(statement).fetchall()


def _live(machines: list[dict[str, Any]]) -> bool:
    return len(machines) == 3 and all(len(m["signals"]) >= 5 for m in machines)


_KIOSK = """JSON.stringify({
  conn: document.getElementById("conn").className,
  marker: window.__moldlabTestMarker || null,
  asof: document.getElementById("asof").textContent,
  oee: document.getElementById("floor-oee").textContent,
  tiles: [...document.querySelectorAll("[data-machine]")].map(t => ({
    id: t.dataset.machine, state: t.dataset.state, oee: t.querySelector(".oee").textContent,
  })),
})"""


def _watch_the_kiosk(page: Page) -> None:
    """Three tiles, each moulding or otherwise known, and pictures that follow one another
    while the page stays loaded (no reload): the kiosk is live."""
    pictures: set[str] = set()
    deadline = time.monotonic() + 40
    marked = False
    while len(pictures) < 2:
        assert time.monotonic() < deadline, f"the kiosk did not change live: {pictures}"
        try:
            state = json.loads(page.evaluate(_KIOSK))
        except AssertionError:  # the page is still loading
            time.sleep(0.5)
            continue
        if marked:
            assert state["marker"] == "kept", "the page reloaded"
        tiles = state["tiles"]
        if "conn-live" in state["conn"] and len(tiles) == 3:
            assert {t["id"] for t in tiles} == {"imm-01", "imm-02", "imm-03"}
            if all(t["state"] != "no_data" for t in tiles) and state["oee"].endswith("%"):
                if not marked:
                    page.evaluate("window.__moldlabTestMarker = 'kept'")
                    marked = True
                pictures.add(json.dumps(tiles) + state["asof"] + state["oee"])
        time.sleep(0.5)


def test_demo_from_a_directory_postgres_cannot_enter_serves_mqtt_and_modbus_machines(
    home: Path, browser: Browser
) -> None:
    demo = _Demo(home, free_port(), "first")
    try:
        machines = _machines(demo, 90, _live)
        first = {m["machine_id"]: m["last_seen"] for m in machines}
        later = _machines(
            demo, 30,
            lambda ms: _live(ms) and all(m["last_seen"] > first[m["machine_id"]] for m in ms),
        )  # fmt: skip
        assert {m["machine_id"] for m in later} == {"imm-01", "imm-02", "imm-03"}
        # Both kinds reached the database: imm-02 publishing itself, line-1 through the gateway.
        database_url = demo.database_url()
        sources = {
            row[0] for row in _query(database_url, "SELECT DISTINCT source FROM message_log")
        }
        assert any(s.startswith("sim-") and "imm-02" in s for s in sources), sources
        for machine in ("imm-01", "imm-03"):
            assert any(s.startswith("edge-line-1:") and machine in s for s in sources), sources
        page = httpx.get(f"http://127.0.0.1:{demo.port}/", timeout=5)
        assert page.status_code == 200
        assert "http" not in page.text.replace("http-equiv", "")  # no CDN: works offline
        _watch_the_kiosk(browser.open(f"http://127.0.0.1:{demo.port}/"))
        rows_before = _query(database_url, "SELECT count(*) FROM telemetry")[0][0]
        assert rows_before >= 5
        started = demo.started()
        assert set(started) == {"sim-mqtt", "sim-modbus", "edge", "ingest", "pdm", "api"}
        children = descendants(demo.proc.pid)
        assert set(started.values()) <= children
        assert len(children) >= 7  # and postgres, the broker
    finally:
        code, took_s = demo.stop()
    output = demo.output()
    assert code == 0, output
    assert took_s < 10, output
    assert _alive(children) == set(), output
    assert f"open http://127.0.0.1:{demo.port}" in output
    # The gateway's goodbye is written in this run: it stops, then ingest, then the API.
    stopping = output.index("SIGTERM received: stopping")
    lines = [
        "edge gateway edge-line-1 stopped",
        "gateway edge-line-1 at demo/hall-a/line-1 lost: 2 machines offline",
        "moldlab ingest: SIGTERM received, stopping",
    ]
    at = [output.find(line, stopping) for line in lines]
    assert -1 not in at, output[stopping:]
    assert at == sorted(at), output[stopping:]
    assert re.search(r"moldlab sim: SIGTERM received, stopping \(pid \d+\)", output)
    assert "cannot serve metrics" not in output  # its own free port, not 9109
    # One line per child says which machines speak MQTT and which the gateway reads.
    assert "started sim-mqtt" in output
    assert "imm-02 (line-2): MQTT-native" in output
    assert "imm-01, imm-03 (line-1): Modbus TCP only" in output
    assert "gateway edge-line-1 reads imm-01, imm-03 over Modbus TCP" in output
    # A fresh database: the plant file holds from 1970, for data from before this start too.
    assert "in force from 1970-01-01T00:00:00+00:00: 9 added, 0 changed, 0 retired" in output
    data_dir = home / ".moldlab"  # the default, in the working directory
    assert (data_dir / "edge" / "outbox.sqlite").is_file()
    assert home.stat().st_mode & 0o777 == 0o700  # never chmod-ed
    if os.geteuid() == 0:
        cluster = Path((data_dir / CLUSTER_RECORD).read_text().strip())
        assert cluster.parent.parent == SHARED_CLUSTERS
        assert (cluster / "PG_VERSION").is_file()
        assert f"cannot reach {data_dir}" in output
    else:
        assert (data_dir / "postgres" / "PG_VERSION").is_file()

    # Restart in the same directory: what was written is still there.
    demo = _Demo(home, demo.port, "again")
    try:
        _machines(demo, 60, lambda ms: len(ms) == 3)
        rows = _query(demo.database_url(), "SELECT count(*) FROM telemetry")[0][0]
        assert rows >= rows_before
    finally:
        code, _took_s = demo.stop()
    assert code == 0, demo.output()
    # No gateway "lost" at the start for the run before, which said goodbye in time.
    output = demo.output()
    assert output.find(" lost: ") > output.index("SIGTERM received: stopping"), output
    assert "demo-plant.yaml: already in the database" in output  # a restart changes nothing
    if os.geteuid() == 0:
        assert f"{cluster}, as recorded in" in demo.output()


@pytest.mark.parametrize(
    ("after_s", "signum"),
    [(0.5, signal.SIGTERM), (2.5, signal.SIGTERM), (2.5, signal.SIGHUP)],  # HUP: SSH closed
)
def test_a_signal_during_start_up_stops_everything_started_so_far(
    home: Path, after_s: float, signum: signal.Signals
) -> None:
    demo = _Demo(home, free_port(), "start-up")
    seen: set[int] = set()
    deadline = time.monotonic() + after_s
    while time.monotonic() < deadline:
        seen |= descendants(demo.proc.pid)
        time.sleep(0.05)
    code, took_s = demo.stop(signum)
    output = demo.output()
    assert code == 0, output
    assert took_s < 10, output
    assert "Traceback" not in output
    assert _alive(seen) == set(), output


def test_a_demo_killed_outright_leaves_nothing_that_stops_the_next(home: Path) -> None:
    demo = _Demo(home, free_port(), "killed")
    try:
        _machines(demo, 90, lambda ms: len(ms) == 3)
        servers = descendants(demo.proc.pid)
    finally:
        demo.proc.kill()  # SIGKILL: no chance to stop PostgreSQL and the broker
        demo.proc.wait()
    assert _alive(servers), "PostgreSQL and mosquitto outlive it"

    demo = _Demo(home, demo.port, "after-kill")
    try:
        _machines(demo, 90, lambda ms: len(ms) == 3)
        # The old demo's own children end on their parent-death signal, each in its own time.
        deadline = time.monotonic() + 15
        while _alive(servers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _alive(servers) == set(), _commands(_alive(servers))
    finally:
        code, _took_s = demo.stop()
    output = demo.output()
    assert code == 0, output
    assert re.search(r"stopping postgres \(pid \d+\) left running on \S+ by an earlier run", output)
    if shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists():
        assert "stopping mosquitto (pid " in output
