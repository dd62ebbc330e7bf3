"""`moldlab demo` as a newcomer runs it: a subprocess, live values, a clean SIGTERM, a restart."""

from __future__ import annotations

import json
import os
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
import pytest

from moldlab.servers.process import descendants, free_port

from .conftest import Browser, Page

pytestmark = [pytest.mark.infra, pytest.mark.slow]


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(dir="/tmp", prefix="moldlab-demo-"))
    path.chmod(0o755)
    yield path / "data"
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


def _start(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOLDLAB_")}
    return subprocess.Popen(
        [sys.executable, "-m", "moldlab", "demo", "--data-dir", str(data_dir), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _machines(port: int, proc: subprocess.Popen[bytes], timeout_s: float, want: Any) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        try:
            body = httpx.get(f"http://127.0.0.1:{port}/api/v1/machines", timeout=2).json()
            if want(body["machines"]):
                return body["machines"]
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "demo did not serve what was expected in time"
        time.sleep(0.5)


def _stop(proc: subprocess.Popen[bytes]) -> tuple[int, float, str]:
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    return proc.returncode, time.monotonic() - started, out.decode()


def _samples(port: int) -> int:
    """How many TempNozzle samples of imm-01 the database holds (last 60 min)."""
    url = f"http://127.0.0.1:{port}/api/v1/machines/imm-01/signals/TempNozzle/history"
    points = httpx.get(url, params={"minutes": 60}, timeout=5).json()["points"]
    return sum(p["samples"] for p in points)


def _live(machines: list[dict[str, Any]]) -> bool:
    return len(machines) == 3 and all(len(m["signals"]) >= 5 for m in machines)


_TILES = """JSON.stringify({
  conn: (document.getElementById("conn") || {textContent: ""}).textContent.trim(),
  marker: window.__moldlabTestMarker || null,
  tiles: [...document.querySelectorAll("[data-machine-id]")].map(t => ({
    id: t.dataset.machineId,
    nozzle: (t.querySelector('[data-signal="TempNozzle"]') || {}).textContent || null,
  })),
})"""


def _watch_the_page(page: Page) -> None:
    """Three tiles whose values change while the page stays loaded (no reload)."""
    seen: dict[str, set[str]] = {}
    deadline = time.monotonic() + 30
    marked = False
    while not (len(seen) == 3 and all(len(v) >= 2 for v in seen.values())):
        assert time.monotonic() < deadline, f"values did not change live: {seen}"
        state = json.loads(page.evaluate(_TILES))
        if marked:
            assert state["marker"] == "kept", "the page reloaded"
        if state["conn"] == "live" and len(state["tiles"]) == 3:
            if not marked:
                page.evaluate("window.__moldlabTestMarker = 'kept'")
                marked = True
            for tile in state["tiles"]:
                if tile["nozzle"]:
                    seen.setdefault(tile["id"], set()).add(tile["nozzle"])
        time.sleep(0.5)
    assert set(seen) == {"imm-01", "imm-02", "imm-03"}


def test_demo_serves_three_live_machines_stops_cleanly_and_keeps_its_data(
    data_dir: Path, browser: Browser
) -> None:
    port = free_port()
    proc = _start(data_dir, port)
    try:
        machines = _machines(port, proc, 90, _live)
        first = {m["machine_id"]: m["last_seen"] for m in machines}
        later = _machines(
            port, proc, 30,
            lambda ms: _live(ms) and all(m["last_seen"] > first[m["machine_id"]] for m in ms),
        )  # fmt: skip
        assert {m["machine_id"] for m in later} == {"imm-01", "imm-02", "imm-03"}
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
        assert page.status_code == 200
        assert "http" not in page.text.replace("http-equiv", "")  # no CDN: works offline
        _watch_the_page(browser.open(f"http://127.0.0.1:{port}/"))
        deadline = time.monotonic() + 30
        while (samples_before := _samples(port)) < 5:
            assert time.monotonic() < deadline, "fewer than 5 samples in 30 s"
            time.sleep(0.5)
        children = descendants(proc.pid)
        assert len(children) >= 5  # postgres, broker, ingest, api, sim
    finally:
        code, took_s, output = _stop(proc)
    assert code == 0, output
    assert took_s < 10, output
    assert _alive(children) == set(), output
    assert f"open http://127.0.0.1:{port}" in output

    # Restart on the same data directory: what was written is still there.
    proc = _start(data_dir, port)
    try:
        _machines(port, proc, 60, lambda ms: len(ms) == 3)
        assert _samples(port) >= samples_before
    finally:
        code, _took_s, output = _stop(proc)
    assert code == 0, output


@pytest.mark.parametrize("after_s", [0.5, 2.5])
def test_a_signal_during_start_up_stops_everything_started_so_far(
    data_dir: Path, after_s: float
) -> None:
    proc = _start(data_dir, free_port())
    seen: set[int] = set()
    deadline = time.monotonic() + after_s
    while time.monotonic() < deadline:
        seen |= descendants(proc.pid)
        time.sleep(0.05)
    code, took_s, output = _stop(proc)
    assert code == 0, output
    assert took_s < 10, output
    assert "Traceback" not in output
    assert _alive(seen) == set(), output
