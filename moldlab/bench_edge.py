"""`moldlab bench edge`: the edge agent's CPU and memory, polling 10 machines at 1 Hz.

Three kinds of child process, each measured (or not) from outside through /proc (Linux):
the simulated machines (`moldlab sim --modbus-port`, not measured), the agent under test
(`moldlab edge --config`, with its SQLite outbox and MQTT session, as deployed) and, after
it, a baseline: a bare pymodbus client making the same reads at the same rate with no MQTT
and no outbox, so that the agent's figures can be read as polling plus what the agent adds.

The baseline is this module run as a script (`python -m moldlab.bench_edge poll ...`), so
at the top it imports only the standard library: the baseline's memory is pymodbus's and
the interpreter's, not the benchmark's MQTT client and pydantic models.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

MACHINES = 10
POLL_INTERVAL_S = 1.0
REGISTERS_ASKED = 40  # per machine, by the issue
RSS_TARGET_MB = 60.0
CPU_TARGET_PCT = 10.0  # of one core
WARMUP_S = 2.0  # after the first round of polls: connections and the outbox settle
READY_TIMEOUT_S = 60.0
_SERVES = re.compile(rb"machine (\S+) serves Modbus TCP on \S+?:(\d+)")
_POLLING = b"polling"  # the baseline's line once every machine has answered


# Progress, a line per phase and window: with the figures, or on stderr under --json.
_Say = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class ProcessFigures:
    name: str
    command: str
    ready_s: float  # from its start until every machine was polled (and, for the agent, sent)
    windows: int
    window_s: float
    cpu_pct_median: float  # of one core
    cpu_pct_windows: list[float]
    rss_mb_windows: list[float]  # resident at the end of each window
    peak_rss_mb: float  # VmHWM: the most it was ever resident, start-up included
    messages_per_s: float | None  # delivered by the broker; None for the baseline
    messages_per_s_by_kind: dict[str, float]  # telemetry, cycle, state, status


@dataclass(frozen=True, slots=True)
class Floor:
    broker: str
    simulator_command: str
    machines: int
    registers_per_machine: int
    register_blocks: list[tuple[int, int]]  # (start, count) per read
    poll_interval_s: float
    telemetry_interval_s: float


@dataclass(frozen=True, slots=True)
class Target:
    target: float
    figure: float
    met: bool


# --- the baseline: a bare pymodbus poller (a child process) ------------------------------------


async def _poll(host: str, ports: Sequence[int], blocks: Sequence[tuple[int, int]],
                interval_s: float) -> None:  # fmt: skip
    """Read `blocks` from each machine every `interval_s` until cancelled; no decoding."""
    from pymodbus.client import AsyncModbusTcpClient

    answered: set[int] = set()

    async def poll(port: int) -> None:
        client = AsyncModbusTcpClient(host, port=port, timeout=3.0, retries=0, reconnect_delay=0)
        if not await client.connect():
            raise RuntimeError(f"{host}:{port}: cannot connect")
        due = time.monotonic()
        while True:
            for start, count in blocks:
                response = await client.read_holding_registers(start, count=count, device_id=1)
                if response.isError():
                    raise RuntimeError(f"{host}:{port}: exception {response.exception_code}")
            if port not in answered:
                answered.add(port)
                if len(answered) == len(ports):
                    print(f"polling {len(ports)} machines", flush=True)
            due = max(due + interval_s, time.monotonic())
            await asyncio.sleep(due - time.monotonic())

    async with asyncio.TaskGroup() as tasks:
        for port in ports:
            tasks.create_task(poll(port), name=f"poll {port}")


def _poll_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m moldlab.bench_edge poll")
    parser.add_argument("what", choices=["poll"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--ports", required=True, help="comma-separated")
    parser.add_argument("--blocks", required=True, help="start+count,... e.g. 0+40,100+28")
    parser.add_argument("--interval-s", type=float, default=POLL_INTERVAL_S)
    args = parser.parse_args(argv)
    ports = [int(p) for p in args.ports.split(",")]
    blocks = [(int(s), int(c)) for s, c in (b.split("+") for b in args.blocks.split(","))]
    with contextlib.suppress(KeyboardInterrupt):  # the benchmark's SIGINT: done
        asyncio.run(_poll(args.host, ports, blocks, args.interval_s))
    return 0


# --- the children --------------------------------------------------------------------------------


def _env() -> dict[str, str]:
    from moldlab.bench import _child_env

    # No MOLDLAB_* settings of the caller's leak into what is measured.
    return {k: v for k, v in _child_env().items() if not k.startswith("MOLDLAB_")}


@contextmanager
def _child(argv: list[str], log_path: Path, cwd: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A child with a session of its own (a terminal's Ctrl-C reaches only the benchmark)."""
    from moldlab.bench import _stop

    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=_env(), cwd=cwd, start_new_session=True,
        )  # fmt: skip
    try:
        yield proc
    finally:
        _stop(proc)


def _wait_for(
    what: str, ready: Callable[[], bool], proc: subprocess.Popen[bytes], log_path: Path
) -> float:
    """Seconds until `ready()`; BenchError if the child exits or it takes too long."""
    from moldlab.bench import BenchError
    from moldlab.servers.process import log_tail

    began = time.monotonic()
    while not ready():
        if proc.poll() is not None:
            raise BenchError(f"{what}: exited with {proc.returncode}:\n{log_tail(log_path)}")
        if time.monotonic() - began > READY_TIMEOUT_S:
            raise BenchError(f"{what}: not ready after {READY_TIMEOUT_S:g} s:\n"
                             f"{log_tail(log_path)}")  # fmt: skip
        time.sleep(0.1)
    return time.monotonic() - began


class _BrokerCount:
    """Every moldlab message the broker delivers, counted; which machines sent telemetry."""

    def __init__(self, url: str) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        from contracts import BrokerUrl

        self._kinds: dict[str, int] = {}
        self._telemetry_from: set[str] = set()
        self._lock = threading.Lock()
        self._broker = BrokerUrl.parse(url)
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"moldlab-bench-edge-{os.getpid()}"
        )
        self._client.on_connect = lambda client, *_: client.subscribe("moldlab/v1/#")
        self._client.on_message = self._on_message

    def _on_message(self, _client: object, _userdata: object, message: Any) -> None:
        parts = message.topic.split("/")
        kind = parts[6] if len(parts) == 7 else "other"
        with self._lock:
            self._kinds[kind] = self._kinds.get(kind, 0) + 1
            if kind == "telemetry":
                self._telemetry_from.add(parts[5])

    def telemetry_from(self) -> set[str]:
        """The machines whose telemetry has arrived."""
        with self._lock:
            return set(self._telemetry_from)

    def kinds(self) -> dict[str, int]:
        """Messages so far per kind (the topic's last segment)."""
        with self._lock:
            return dict(self._kinds)

    def __enter__(self) -> _BrokerCount:
        self._client.connect(self._broker.host, self._broker.port)
        self._client.loop_start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._client.disconnect()
        self._client.loop_stop()


# --- measuring -----------------------------------------------------------------------------------


def _rss_bytes(pid: int) -> int:
    """The process's resident set size now (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    from moldlab.bench import BenchError

    raise BenchError(f"no VmRSS in /proc/{pid}/status")


def _measure(
    name: str,
    command: str,
    ready_s: float,
    proc: subprocess.Popen[bytes],
    windows: int,
    window_s: float,
    say: _Say,
    count: _BrokerCount | None = None,
) -> ProcessFigures:
    """CPU % of one core per window, resident memory at each window's end, the peak."""
    from moldlab.bench import BenchError, cpu_seconds, peak_rss_bytes

    def received() -> dict[str, int]:
        return count.kinds() if count else {}

    cpu: list[float] = []
    rss: list[float] = []
    began, kinds0 = time.monotonic(), received()
    for i in range(windows):
        t0, c0, m0 = time.monotonic(), cpu_seconds(proc.pid), sum(received().values())
        time.sleep(window_s)
        c1, m1 = cpu_seconds(proc.pid), sum(received().values())
        elapsed = time.monotonic() - t0
        if proc.poll() is not None:
            raise BenchError(f"{name} exited with {proc.returncode} during window {i + 1}")
        cpu.append(100.0 * (c1 - c0) / elapsed)
        rss.append(_rss_bytes(proc.pid) / 1e6)
        rate = f", {(m1 - m0) / elapsed:.1f} messages/s from the broker" if count else ""
        say(f"  window {i + 1}/{windows}: cpu {cpu[-1]:.1f} % of one core, "
            f"rss {rss[-1]:.1f} MB{rate}")  # fmt: skip
    elapsed, kinds1 = time.monotonic() - began, received()
    by_kind = {k: round((n - kinds0.get(k, 0)) / elapsed, 2) for k, n in sorted(kinds1.items())}
    return ProcessFigures(
        name=name,
        command=command,
        ready_s=round(ready_s, 1),
        windows=windows,
        window_s=window_s,
        cpu_pct_median=round(statistics.median(cpu), 2),
        cpu_pct_windows=[round(c, 2) for c in cpu],
        rss_mb_windows=[round(r, 1) for r in rss],
        # The kernel updates VmHWM lazily: a sample taken above may be higher.
        peak_rss_mb=round(max(peak_rss_bytes(proc.pid) / 1e6, *rss), 1),
        messages_per_s=round(sum(by_kind.values()), 1) if count else None,
        messages_per_s_by_kind=by_kind,
    )


# --- the floor and the gateway -------------------------------------------------------------------


def _gateway_yaml(path: Path, broker_url: str, machines: dict[str, int], tmp: Path) -> None:
    """A gateway config for `machines` (id -> port on 127.0.0.1), checked as the agent will."""
    import yaml

    from edge import EdgeError, load_config
    from moldlab.bench import BenchError

    config = {
        "gateway_id": "bench-gw",
        "site": "bench",
        "area": "hall",
        "line": "line1",
        "broker": {"url": broker_url},
        "telemetry_interval_s": POLL_INTERVAL_S,
        # No ingest reads this broker to confirm commits: messages leave on the PUBACK.
        "outbox": {"path": str(tmp / "outbox.sqlite"), "keep_until": "acknowledged"},
        "metrics": {"port": 0},  # on, as deployed, on any free port
        "machines": [
            {"machine_id": machine_id,
             "modbus": {"host": "127.0.0.1", "port": port, "poll_interval_s": POLL_INTERVAL_S}}
            for machine_id, port in machines.items()
        ],
    }  # fmt: skip
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    try:
        load_config(path)
    except EdgeError as exc:
        raise BenchError(f"the benchmark's gateway config is refused: {exc}") from exc


def _served(log_path: Path) -> dict[str, int]:
    """Machine id -> port, from the simulator's log."""
    return {m[1].decode(): int(m[2]) for m in _SERVES.finditer(log_path.read_bytes())}


# --- the command ---------------------------------------------------------------------------------


def run_edge_bench(*, windows: int, window_s: float, as_json: bool) -> int:
    """`moldlab bench edge`: print the figures (text or JSON); 2 for bad options."""
    from moldlab.bench import BenchError, announce, machine

    command = f"moldlab bench edge --windows {windows} --window-s {window_s:g}" + (
        " --json" if as_json else ""
    )
    if windows < 1 or not window_s > 0:
        print("moldlab bench edge: --windows and --window-s must be positive", file=sys.stderr)
        return 2
    if not Path("/proc/self/stat").exists():
        print("moldlab bench edge: measuring CPU needs /proc (Linux)", file=sys.stderr)
        return 1
    host = machine()
    say: _Say = functools.partial(print, file=sys.stderr if as_json else sys.stdout, flush=True)
    if not as_json:
        announce(command, host)
    try:
        with tempfile.TemporaryDirectory(prefix="moldlab-bench-edge-") as tmp:
            floor, agent, baseline = _run(Path(tmp), windows, window_s, say)
    except BenchError as exc:
        print(f"moldlab bench edge: {exc}", file=sys.stderr)
        return 1
    targets = {
        "peak_rss_mb": Target(RSS_TARGET_MB, agent.peak_rss_mb, agent.peak_rss_mb < RSS_TARGET_MB),
        "cpu_pct_median": Target(
            CPU_TARGET_PCT, agent.cpu_pct_median, agent.cpu_pct_median < CPU_TARGET_PCT
        ),
    }
    if as_json:
        figures = {
            "command": command,
            "machine": asdict(host),
            "floor": asdict(floor),
            "agent": asdict(agent),
            "baseline": asdict(baseline),
            "targets": {k: asdict(v) for k, v in targets.items()},
        }
        print(json.dumps(figures, indent=2))
    else:
        _print_figures(floor, agent, baseline, targets)
    return 0


def _run(
    tmp: Path, windows: int, window_s: float, say: _Say
) -> tuple[Floor, ProcessFigures, ProcessFigures]:
    from edge.config import load_register_map
    from moldlab.servers import LocalMosquitto, ServerError

    python = sys.executable
    blocks = [(b.start, b.count) for b in load_register_map().blocks()]
    with ExitStack() as stack:
        try:
            broker = stack.enter_context(LocalMosquitto(tmp / "mosquitto"))
        except ServerError as exc:
            from moldlab.bench import BenchError

            raise BenchError(str(exc)) from exc
        say(f"broker: mosquitto on {broker.url}")

        sim_argv = [python, "-m", "moldlab", "sim", "--machines", str(MACHINES),
                    "--modbus-port", "0"]  # fmt: skip
        sim_log = tmp / "sim.log"
        sim = stack.enter_context(_child(sim_argv, sim_log, tmp))
        _wait_for("moldlab sim", lambda: len(_served(sim_log)) == MACHINES, sim, sim_log)
        served = _served(sim_log)
        floor = Floor(
            broker=f"mosquitto {broker.url}",
            simulator_command=shlex.join(sim_argv),
            machines=MACHINES,
            registers_per_machine=sum(count for _, count in blocks),
            register_blocks=blocks,
            poll_interval_s=POLL_INTERVAL_S,
            telemetry_interval_s=POLL_INTERVAL_S,
        )
        say(f"simulators: {MACHINES} Modbus TCP machines in one process: {floor.simulator_command}")

        config = tmp / "gateway.yaml"
        _gateway_yaml(config, broker.url, served, tmp)
        agent_argv = [python, "-m", "moldlab", "edge", "--config", str(config)]
        agent_log = tmp / "agent.log"
        say(f"agent: {shlex.join(agent_argv)}")
        with _BrokerCount(broker.url) as count, _child(agent_argv, agent_log, tmp) as proc:
            ready_s = _wait_for("moldlab edge", lambda: count.telemetry_from() >= set(served),
                                proc, agent_log)  # fmt: skip
            say(f"  every machine's telemetry at the broker after {ready_s:.1f} s; "
                f"warm-up {WARMUP_S:g} s")  # fmt: skip
            time.sleep(WARMUP_S)
            agent = _measure("agent", shlex.join(agent_argv), ready_s, proc, windows, window_s,
                             say, count)  # fmt: skip

        ports = ",".join(str(p) for p in served.values())
        spec = ",".join(f"{start}+{count}" for start, count in blocks)
        base_argv = [python, "-m", "moldlab.bench_edge", "poll", "--ports", ports,
                     "--blocks", spec, "--interval-s", f"{POLL_INTERVAL_S:g}"]  # fmt: skip
        base_log = tmp / "baseline.log"
        say(f"baseline: {shlex.join(base_argv)}")
        with _child(base_argv, base_log, tmp) as proc:
            ready_s = _wait_for("the baseline poller", lambda: _POLLING in base_log.read_bytes(),
                                proc, base_log)  # fmt: skip
            say(f"  every machine answered after {ready_s:.1f} s; warm-up {WARMUP_S:g} s")
            time.sleep(WARMUP_S)
            baseline = _measure("baseline", shlex.join(base_argv), ready_s, proc, windows,
                                window_s, say)  # fmt: skip
    return floor, agent, baseline


def _registers(floor: Floor) -> str:
    ranges = ", ".join(f"{start}-{start + count - 1}" for start, count in floor.register_blocks)
    enough = "at least" if floor.registers_per_machine >= REGISTERS_ASKED else "FEWER than"
    return (
        f"{floor.registers_per_machine} holding registers ({ranges}, the packaged map: "
        f"{enough} the {REGISTERS_ASKED} asked) polled every {floor.poll_interval_s:g} s"
    )


def _print_figures(
    floor: Floor, agent: ProcessFigures, baseline: ProcessFigures, targets: dict[str, Target]
) -> None:
    from moldlab.bench import _met

    print(f"\nedge agent, {floor.machines} machines x {_registers(floor)}, telemetry every "
          f"{floor.telemetry_interval_s:g} s, broker {floor.broker}:")  # fmt: skip
    for p in (agent, baseline):
        print(f"  {p.name:<9} {p.command}")
    for p in (agent, baseline):
        spread = f"min {min(p.cpu_pct_windows):.1f}, max {max(p.cpu_pct_windows):.1f}"
        print(f"  {p.name:<9} cpu {p.cpu_pct_median:.1f} % of one core, median of "
              f"{p.windows} windows of {p.window_s:g} s ({spread}); "
              f"peak rss {p.peak_rss_mb:.1f} MB")  # fmt: skip
    print(f"  the agent beyond polling: {agent.cpu_pct_median - baseline.cpu_pct_median:+.1f} % "
          f"cpu, {agent.peak_rss_mb - baseline.peak_rss_mb:+.1f} MB peak rss")  # fmt: skip
    kinds = ", ".join(f"{k} {v:.1f}" for k, v in agent.messages_per_s_by_kind.items())
    print(f"  messages  {agent.messages_per_s or 0:.1f}/s delivered by the broker ({kinds})")
    rss, cpu = targets["peak_rss_mb"], targets["cpu_pct_median"]
    print("\ntargets (the agent):")
    print(f"  peak rss < {rss.target:g} MB: {rss.figure:.1f} MB, {_met(rss.met)}")
    print(f"  cpu < {cpu.target:g} % of one core: {cpu.figure:.1f} %, {_met(cpu.met)}", flush=True)


if __name__ == "__main__":
    sys.exit(_poll_main())
