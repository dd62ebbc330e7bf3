"""A real headless Chromium, driven over the DevTools protocol, to look at pages as people do."""

from __future__ import annotations

import base64
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


class _Cdp:
    """The DevTools connection: calls, and the URLs each tab asked for (from its events)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self.requested: dict[str, list[str]] = {}  # session id -> URLs, in order

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        message: dict[str, Any] = {"id": call_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        while True:  # events arrive in between; the reply carries our id
            reply = json.loads(self.ws.recv(timeout=30))
            event = reply.get("method")
            if event in ("Network.requestWillBeSent", "Network.webSocketCreated"):
                asked = reply["params"].get("request", reply["params"])
                self.requested.setdefault(reply.get("sessionId", ""), []).append(asked["url"])
            if reply.get("id") == call_id:
                if "error" in reply:
                    raise AssertionError(f"{method} failed: {reply['error']}")
                result: dict[str, Any] = reply["result"]
                return result


class Page:
    """One browser tab; `evaluate` runs JavaScript in it and returns the JSON value."""

    def __init__(self, cdp: _Cdp, session_id: str) -> None:
        self._cdp = cdp
        self._session = session_id

    def evaluate(self, expression: str) -> Any:
        reply = self._cdp.call("Runtime.evaluate", self._session, expression=expression,
                               returnByValue=True, awaitPromise=True)  # fmt: skip
        if "exceptionDetails" in reply:
            raise AssertionError(f"page script failed: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def until(
        self, expression: str, ok: Callable[[Any], bool] = bool, timeout_s: float = 20
    ) -> Any:
        """The value of `expression` once `ok(value)`, tried every 0.2 s; the page may still be
        loading meanwhile (its script failing then is a try, not an error)."""
        deadline = time.monotonic() + timeout_s
        value = None
        while True:
            try:
                value = self.evaluate(expression)
            except AssertionError as exc:  # still loading
                value = f"(loading: {exc})"
            else:
                if ok(value):
                    return value
            assert time.monotonic() < deadline, f"{expression} -> {str(value)[:3000]}"
            time.sleep(0.2)

    def navigate(self, url: str) -> None:
        self._cdp.call("Page.navigate", self._session, url=url)

    def screenshot(self, path: Path, width: int = 1600, height: int = 900) -> Path:
        """A PNG of the page at `width` x `height` CSS pixels, written to `path`."""
        self._cdp.call("Emulation.setDeviceMetricsOverride", self._session, width=width,
                       height=height, deviceScaleFactor=1, mobile=width < 700)  # fmt: skip
        shot = self._cdp.call("Page.captureScreenshot", self._session, format="png")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def requests(self) -> list[str]:
        """Every URL the tab asked for (pages, scripts, fetches, sockets), in order."""
        self.evaluate("1")  # takes in the events sent so far
        return list(self._cdp.requested.get(self._session, []))


class Browser:
    def __init__(self, ws: ClientConnection) -> None:
        self._cdp = _Cdp(ws)

    def open(self, url: str) -> Page:
        """A new tab on `url`, its requests recorded from the first."""
        target = self._cdp.call("Target.createTarget", url="about:blank")
        attached = self._cdp.call("Target.attachToTarget", targetId=target["targetId"],
                                  flatten=True)  # fmt: skip
        page = Page(self._cdp, attached["sessionId"])
        self._cdp.call("Network.enable", attached["sessionId"])
        self._cdp.call("Page.enable", attached["sessionId"])
        page.navigate(url)
        return page

    def set_cookie(self, url: str, name: str, value: str) -> None:
        """A cookie for `url`'s site, as a login would have set it (HTTP-only)."""
        self._cdp.call("Storage.setCookies", cookies=[
            {"name": name, "value": value, "url": url, "httpOnly": True, "sameSite": "Strict"}
        ])  # fmt: skip


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


@pytest.fixture
def screenshots(request: pytest.FixtureRequest) -> Path:
    """The folder for this test's screenshots, for a person to look at: test-screenshots/TEST
    in the project (or under MOLDLAB_TEST_SCREENSHOTS), emptied first."""
    root = Path(
        os.environ.get("MOLDLAB_TEST_SCREENSHOTS") or request.config.rootpath / "test-screenshots"
    )
    folder = root / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


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
