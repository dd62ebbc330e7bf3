"""`moldlab bench api`: the API under the lab's load, 1,000 kiosks at one picture a second.

A fresh database gets --machines presses of the demo plant over the last --days days (the
analytics benchmark's rows, ending now) and its OEE rollup; the API runs as its own process
(`moldlab api`, the kiosk's picture taken every second), so that its CPU and memory are its
own. Two windows of --window-s each, side by side in one run:

1. baseline: no WebSocket client; --rest-clients clients ask the cached REST answers
   (GET /api/v1/kiosk, and /api/v1/health) --rest-rate times a second together;
2. loaded: --clients WebSocket clients on /api/v1/kiosk/live, and the same REST load.

Figures: the REST latency (p50, p99) in both windows; the age of each picture when a client
received it (received - as_of, the picture's own time: its DB reads, its serialisation and the
fan-out; p50, p99) and the spread between the first and the last client to get a picture; the
API process's CPU (% of one core) and resident memory per connection (RSS with the clients
less RSS before them, over the clients). The clients run in this process, on the same machine:
their own CPU is reported beside.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import websockets

from analytics.rollup import refresh
from moldlab.bench import machine
from moldlab.bench_analytics import bench_database
from moldlab.bench_analytics_rows import DAY_S, demo_plant, load
from moldlab.progress import ProgressBar
from moldlab.servers.process import free_port

_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Options:
    clients: int
    rest_clients: int
    rest_rate: float
    window_s: float
    machines: int
    days: float
    seed: int
    as_json: bool


@dataclass(slots=True)
class Window:
    label: str
    ws_clients: int
    rest_requests: int
    rest_per_s: float
    rest_p50_ms: float
    rest_p99_ms: float
    rest_errors: int
    pictures: int  # frames received by all the clients
    picture_age_p50_ms: float | None
    picture_age_p99_ms: float | None
    fanout_spread_p50_ms: float | None  # first to last client, per picture
    fanout_spread_p99_ms: float | None
    api_cpu_pct: float  # of one core
    api_rss_mib: float
    bench_cpu_pct: float


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _ms(values: list[float], q: float) -> float | None:
    return round(1000 * _quantile(values, q), 1) if values else None


class _Api:
    """`moldlab api` as a child process; its CPU time and resident memory from /proc."""

    def __init__(self, url: str, log: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MOLDLAB_")}
        env |= {"MOLDLAB_DATABASE_URL": url, "MOLDLAB_KIOSK_REFRESH_S": "1",
                "MOLDLAB_LIVE_INTERVAL_S": "1"}  # fmt: skip
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "moldlab", "--log-level", "WARNING", "api",
                 "--port", str(self.port)],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.log = log

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    async def ready(self) -> None:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient(base_url=self.base, timeout=2) as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the API exited: {self.log.read_text()[-2000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/api/v1/kiosk")).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise RuntimeError("the API did not answer within 60 s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class _Kiosks:
    """WebSocket clients of /api/v1/kiosk/live; each records when each picture came."""

    def __init__(self, base: str) -> None:
        self.url = base.replace("http://", "ws://") + "/api/v1/kiosk/live"
        self.recording = False
        self.arrivals: dict[str, list[float]] = {}  # as_of -> receive times
        self.connected = 0
        self.failed = 0
        self.frame_bytes = 0
        self._tasks: list[asyncio.Task[None]] = []

    async def open(self, n: int, bar: ProgressBar) -> None:
        for i in range(n):
            self._tasks.append(asyncio.create_task(self._client()))
            if i % 50 == 49:  # in steps, as kiosks do not all start at once
                await asyncio.sleep(0.05)
                bar(self.connected, n)
        deadline = time.monotonic() + 60
        while self.connected + self.failed < n and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            bar(self.connected, n)
        bar.finish()

    async def _client(self) -> None:
        try:
            async with websockets.connect(
                self.url, compression=None, max_size=2**24, open_timeout=60, ping_interval=None
            ) as ws:
                self.connected += 1
                async for frame in ws:
                    if self.recording and isinstance(frame, str) and frame.startswith('{"as_of":"'):
                        as_of = frame[10 : frame.index('"', 10)]
                        self.frame_bytes = len(frame.encode())
                        self.arrivals.setdefault(as_of, []).append(time.time())
        except (OSError, websockets.WebSocketException):
            self.failed += 1

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def _rest(
    base: str, clients: int, rate: float, stop: asyncio.Event
) -> tuple[list[float], int]:
    """`clients` clients asking `rate` requests a second together, each at its own steady
    pace (a late one goes at once, never in a burst); latencies of the answers."""
    latencies: list[float] = []
    errors = 0
    every_s = clients / rate

    async def worker(http: httpx.AsyncClient, i: int) -> None:
        nonlocal errors
        path = "/api/v1/kiosk" if i % 4 else "/api/v1/health"
        due = time.perf_counter() + every_s * i / clients
        while not stop.is_set():
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            due = max(due + every_s, time.perf_counter())
            began = time.perf_counter()
            try:
                answer = await http.get(path)
                ok = answer.status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                latencies.append(time.perf_counter() - began)
            else:
                errors += 1

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=10, limits=limits) as http:
        await asyncio.gather(*(worker(http, i) for i in range(clients)))
    return latencies, errors


async def _window(label: str, api: _Api, kiosks: _Kiosks | None, o: Options) -> Window:
    stop = asyncio.Event()
    cpu0, wall0, own0 = api.cpu_s(), time.monotonic(), time.process_time()
    if kiosks is not None:
        kiosks.arrivals.clear()
        kiosks.recording = True
    rest = asyncio.create_task(_rest(api.base, o.rest_clients, o.rest_rate, stop))
    bar = ProgressBar(label, "s")
    for second in range(int(o.window_s)):
        await asyncio.sleep(1)
        bar(second + 1, o.window_s)
    stop.set()
    latencies, errors = await rest
    bar.finish()
    wall = time.monotonic() - wall0
    cpu = api.cpu_s() - cpu0
    own = time.process_time() - own0
    ages: list[float] = []
    spreads: list[float] = []
    pictures = 0
    if kiosks is not None:
        kiosks.recording = False
        for as_of, times in kiosks.arrivals.items():
            taken = datetime.fromisoformat(as_of).timestamp()
            ages += [t - taken for t in times]
            pictures += len(times)
            if len(times) >= kiosks.connected * 0.9:  # pictures the window saw whole
                spreads.append(max(times) - min(times))
    return Window(
        label=label,
        ws_clients=0 if kiosks is None else kiosks.connected,
        rest_requests=len(latencies),
        rest_per_s=round(len(latencies) / wall, 1),
        rest_p50_ms=_ms(latencies, 0.5) or 0.0,
        rest_p99_ms=_ms(latencies, 0.99) or 0.0,
        rest_errors=errors,
        pictures=pictures,
        picture_age_p50_ms=_ms(ages, 0.5),
        picture_age_p99_ms=_ms(ages, 0.99),
        fanout_spread_p50_ms=_ms(spreads, 0.5),
        fanout_spread_p99_ms=_ms(spreads, 0.99),
        api_cpu_pct=round(100 * cpu / wall, 1),
        api_rss_mib=round(api.rss_mib(), 1),
        bench_cpu_pct=round(100 * own / wall, 1),
    )


async def _run(url: str, o: Options, tmp: Path) -> dict[str, Any]:
    end = time.time()
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        bar = ProgressBar("loading", "machine-days")
        await load(conn, demo_plant(o.machines), end - o.days * DAY_S, end, o.seed, bar)
        bar.finish()
        await refresh(conn, micro_stop_s=300.0)
    api = _Api(url, tmp / "api.log")
    try:
        await api.ready()
        idle_rss = api.rss_mib()
        baseline = await _window("baseline (no WebSocket client)", api, None, o)
        kiosks = _Kiosks(api.base)
        before = api.rss_mib()
        await kiosks.open(o.clients, ProgressBar("connecting", "clients"))
        await asyncio.sleep(2)  # their first pictures
        with_clients = api.rss_mib()
        loaded = await _window(f"loaded ({kiosks.connected} WebSocket clients)", api, kiosks, o)
        await kiosks.close()
    finally:
        api.stop()
    per_connection_kib = 1024 * (with_clients - before) / max(1, kiosks.connected)
    return {
        "options": asdict(o),
        "api_rss_idle_mib": round(idle_rss, 1),
        "memory_per_connection_kib": round(per_connection_kib, 1),
        "clients_connected": kiosks.connected,
        "clients_failed": kiosks.failed,
        "picture_bytes": kiosks.frame_bytes,
        "windows": [asdict(baseline), asdict(loaded)],
    }


def run_api_bench(
    *, clients: int, rest_clients: int, rest_rate: float, window_s: float, machines: int,
    days: float, seed: int, database_url: str | None, as_json: bool,
) -> int:  # fmt: skip
    """`moldlab bench api`: print the figures (text or JSON); 2 for bad options."""
    command = (
        f"moldlab bench api --clients {clients} --rest-clients {rest_clients} --rest-rate "
        f"{rest_rate:g} --window-s "
        f"{window_s:g} --machines {machines} --days {days:g} --seed {seed}"
        + (" --database-url ..." if database_url else "")
        + (" --json" if as_json else "")
    )
    if min(clients, rest_clients, rest_rate, window_s, machines, days) <= 0:
        print("moldlab bench api: every number must be positive", file=sys.stderr)
        return 2
    if clients > 10_000 or machines > 200:
        print("moldlab bench api: at most 10,000 clients and 200 machines", file=sys.stderr)
        return 2
    o = Options(clients, rest_clients, rest_rate, window_s, machines, days, seed, as_json)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request otherwise
    host = machine()
    with bench_database(database_url, command, host, quiet=as_json) as (url, server, tmp):
        figures = asyncio.run(_run(url, o, tmp))
    figures |= {"command": command, "machine": asdict(host), "database": server.label}
    if as_json:
        print(json.dumps(figures, indent=1))
    else:
        _print(figures)
    return 0


def _print(f: dict[str, Any]) -> None:
    base, loaded = f["windows"]
    print(
        f"\n{f['clients_connected']} WebSocket clients connected ({f['clients_failed']} "
        f"failed); a picture is {f['picture_bytes']} bytes; the API's memory: "
        f"{f['api_rss_idle_mib']} MiB idle, {f['memory_per_connection_kib']} KiB per "
        "connection"
    )
    rows = [
        ("REST requests/s", "rest_per_s"), ("REST p50 (ms)", "rest_p50_ms"),
        ("REST p99 (ms)", "rest_p99_ms"), ("REST errors", "rest_errors"),
        ("pictures received", "pictures"), ("picture age p50 (ms)", "picture_age_p50_ms"),
        ("picture age p99 (ms)", "picture_age_p99_ms"),
        ("first-to-last client p50 (ms)", "fanout_spread_p50_ms"),
        ("first-to-last client p99 (ms)", "fanout_spread_p99_ms"),
        ("API CPU (% of a core)", "api_cpu_pct"), ("API RSS (MiB)", "api_rss_mib"),
        ("clients' CPU (this process)", "bench_cpu_pct"),
    ]  # fmt: skip
    print(f"\n{'':32}{'baseline':>14}{'loaded':>14}")
    print(f"{'WebSocket clients':32}{base['ws_clients']:>14}{loaded['ws_clients']:>14}")
    for label, key in rows:
        a, b = ("-" if v is None else v for v in (base[key], loaded[key]))
        print(f"{label:32}{a!s:>14}{b!s:>14}")
