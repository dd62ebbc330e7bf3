"""A real headless Chromium, driven over the DevTools protocol, to look at pages as people do."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect


class Page:
    """One browser tab; `evaluate` runs JavaScript in it and returns the JSON value."""

    def __init__(self, ws: ClientConnection, session_id: str, ids: Iterator[int]) -> None:
        self._ws = ws
        self._session = session_id
        self._ids = ids

    def evaluate(self, expression: str) -> Any:
        reply = _call(self._ws, self._ids, "Runtime.evaluate", self._session,
                      expression=expression, returnByValue=True)  # fmt: skip
        if "exceptionDetails" in reply:
            raise AssertionError(f"page script failed: {reply['exceptionDetails']}")
        return reply["result"].get("value")


class Browser:
    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._ids = itertools.count(1)

    def open(self, url: str) -> Page:
        target = _call(self._ws, self._ids, "Target.createTarget", None, url=url)
        attached = _call(self._ws, self._ids, "Target.attachToTarget", None,
                         targetId=target["targetId"], flatten=True)  # fmt: skip
        return Page(self._ws, attached["sessionId"], self._ids)


def _call(
    ws: ClientConnection, ids: Iterator[int], method: str, session: str | None, **params: Any
) -> dict[str, Any]:
    call_id = next(ids)
    message: dict[str, Any] = {"id": call_id, "method": method, "params": params}
    if session:
        message["sessionId"] = session
    ws.send(json.dumps(message))
    while True:  # events arrive in between; the reply carries our id
        reply = json.loads(ws.recv(timeout=30))
        if reply.get("id") == call_id:
            if "error" in reply:
                raise AssertionError(f"{method} failed: {reply['error']}")
            result: dict[str, Any] = reply["result"]
            return result


@pytest.fixture
def browser() -> Iterator[Browser]:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("chromium is not installed: apt-get install -y chromium")
    profile = Path(tempfile.mkdtemp(prefix="moldlab-chromium-"))
    log = profile / "stderr.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not (found := re.search(r"DevTools listening on (ws://\S+)", log.read_text())):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "chromium did not start"
            time.sleep(0.1)
        with connect(found.group(1), max_size=None) as ws:
            yield Browser(ws)
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(profile, ignore_errors=True)


MoldlabCli = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture
def moldlab_cli() -> MoldlabCli:
    """Run `python -m moldlab ARGS` with no MOLDLAB_* settings from the test's environment."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("MOLDLAB_")}
        return subprocess.run(
            [sys.executable, "-m", "moldlab", *args],
            capture_output=True, text=True, timeout=120, env=clean,
        )  # fmt: skip

    return run
