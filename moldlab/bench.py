"""`moldlab bench sim`: the simulator's CPU in real time and the speed of a Parquet export.

Figures are medians over several windows or runs, never the best one, printed with the
command that reproduces them and the machine they were measured on. The simulator runs as a
child process, measured from outside through /proc (Linux), so the benchmark's own work
(its MQTT subscriber, the broker) is not counted against it.
"""

from __future__ import annotations

import asyncio
import filecmp
import json
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import aiomqtt

from contracts import BrokerUrl
from moldlab.servers import local_broker
from moldlab.servers.process import log_tail

CPU_TARGET_PCT = 10.0  # of one core, for `moldlab sim --machines 20` in real time
EXPORT_TARGET_MACHINE_DAYS, EXPORT_TARGET_S = 30.0, 60.0
EXPORT_SCENARIO = "faults"
WARMUP_S = 2.0  # after every machine has published: connections and retained messages settle
_FILES = ("cycles", "signals", "states", "health", "failures", "manifest")
_REPO_ROOT = Path(__file__).resolve().parents[1]


class BenchError(RuntimeError):
    """The benchmark could not measure: a child failed or the platform lacks /proc."""


@dataclass(frozen=True, slots=True)
class Machine:
    cores: int
    cpu_model: str
    system: str
    python: str


@dataclass(frozen=True, slots=True)
class RealtimeFigures:
    command: str
    broker: str
    machines: int
    windows: int
    window_s: float
    cpu_pct_median: float  # of one core
    cpu_pct_windows: list[float]
    broker_cpu_pct_median: float | None
    peak_rss_mb: float
    messages_per_s: float
    target_cpu_pct: float
    target_met: bool


@dataclass(frozen=True, slots=True)
class ExportFigures:
    command: str
    scenario: str
    machines: int
    days_per_machine: float
    machine_days: float
    median_s: float
    run_s: list[float]
    machine_days_per_s: float
    identical_runs: bool
    rows: dict[str, int] = field(default_factory=dict)
    # The target, scaled, for exports of 30 machine-days or more; smaller ones are dominated
    # by the interpreter's start-up and are not judged (None).
    target_s: float | None = None
    target_met: bool | None = None


# --- the machine and its processes -------------------------------------------------------


def announce(command: str, host: Machine) -> None:
    """The first lines of a benchmark's text: the command and the machine it ran on."""
    print(command)
    print(
        f"machine: {host.cores} cores, {host.cpu_model}, {host.system}, Python {host.python}",
        flush=True,
    )


def machine() -> Machine:
    """What the figures were measured on."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return Machine(
        cores=os.cpu_count() or 1,
        cpu_model=model,
        system=f"{platform.system()} {platform.release()} {platform.machine()}",
        python=platform.python_version(),
    )


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        raise BenchError(f"process {pid} is gone (or this system has no /proc)") from None
    fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def peak_rss_bytes(pid: int) -> int:
    """The process's peak resident set size: VmHWM, or VmRSS if higher (the kernel updates
    VmHWM lazily, so it can lag behind the current size)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmHWM", "VmRSS"):
            fields[name] = int(value.split()[0]) * 1024
    if "VmHWM" not in fields:
        raise BenchError(f"no VmHWM in /proc/{pid}/status")
    return max(fields.values())


def _child_env() -> dict[str, str]:
    # The child must import moldlab even when it is run from a source checkout.
    path = os.pathsep.join(filter(None, [str(_REPO_ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


# --- (a) real time ----------------------------------------------------------------------------


def measure_realtime(machines: int, seconds: float) -> RealtimeFigures:
    """Run `moldlab sim --machines N` against a local broker and measure its CPU and RSS."""
    if not Path("/proc/self/stat").exists():
        raise BenchError("measuring CPU needs /proc (Linux)")
    windows = max(3, min(10, round(seconds / 10)))
    window_s = seconds / windows
    with tempfile.TemporaryDirectory(prefix="moldlab-bench-") as tmp:
        broker = local_broker(Path(tmp) / "broker")
        with broker:
            argv = [sys.executable, "-m", "moldlab", "sim", "--machines", str(machines),
                    "--mqtt-url", broker.url]  # fmt: skip
            log_path = Path(tmp) / "sim.log"
            with log_path.open("wb") as log:
                proc = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    env=_child_env(), start_new_session=True,
                )  # fmt: skip
            try:
                cpu, broker_cpu, rate = asyncio.run(
                    _watch(broker.url, proc, broker.pid, machines, windows, window_s, log_path)
                )
                rss = peak_rss_bytes(proc.pid)
            finally:
                _stop(proc)
            label = broker.label
    median = statistics.median(cpu)
    return RealtimeFigures(
        command=shlex.join(argv),
        broker=label,
        machines=machines,
        windows=windows,
        window_s=round(window_s, 2),
        cpu_pct_median=round(median, 2),
        cpu_pct_windows=[round(c, 2) for c in cpu],
        broker_cpu_pct_median=round(statistics.median(broker_cpu), 2) if broker_cpu else None,
        peak_rss_mb=round(rss / 1e6, 1),
        messages_per_s=round(rate, 1),
        target_cpu_pct=CPU_TARGET_PCT,
        target_met=median < CPU_TARGET_PCT,
    )


async def _watch(
    url: str,
    proc: subprocess.Popen[bytes],
    broker_pid: int | None,
    machines: int,
    windows: int,
    window_s: float,
    log_path: Path,
) -> tuple[list[float], list[float], float]:
    """CPU % of the child (and the broker) per window, and the messages/s it published."""
    seen: set[str] = set()
    counted = 0

    async def count(client: aiomqtt.Client) -> None:
        nonlocal counted
        async for message in client.messages:
            counted += 1
            seen.add(str(message.topic).split("/")[5])

    options = BrokerUrl.parse(url).client_options()
    async with aiomqtt.Client(**options, identifier=f"moldlab-bench-{os.getpid()}") as client:
        await client.subscribe("moldlab/v1/#")
        async with asyncio.TaskGroup() as tg:
            counter = tg.create_task(count(client), name="bench-count")
            deadline = time.monotonic() + 60.0
            while len(seen) < machines:
                if proc.poll() is not None:
                    raise BenchError(f"moldlab sim exited with {proc.returncode}:\n"
                                     f"{log_tail(log_path)}")  # fmt: skip
                if time.monotonic() > deadline:
                    raise BenchError(f"only {len(seen)} of {machines} machines published in "
                                     f"60 s:\n{log_tail(log_path)}")  # fmt: skip
                await asyncio.sleep(0.1)
            await asyncio.sleep(WARMUP_S)
            cpu: list[float] = []
            broker_cpu: list[float] = []
            counted = 0
            began = time.monotonic()
            for _ in range(windows):
                t0, c0 = time.monotonic(), cpu_seconds(proc.pid)
                b0 = cpu_seconds(broker_pid) if broker_pid else 0.0
                await asyncio.sleep(window_s)
                elapsed = time.monotonic() - t0
                cpu.append(100.0 * (cpu_seconds(proc.pid) - c0) / elapsed)
                if broker_pid:
                    broker_cpu.append(100.0 * (cpu_seconds(broker_pid) - b0) / elapsed)
            rate = counted / (time.monotonic() - began)
            counter.cancel()
    return cpu, broker_cpu, rate


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT, as Ctrl-C: the simulator says goodbye to the broker; killed if it hangs."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- (b) export -------------------------------------------------------------------------------


def measure_export(machine_days: float, runs: int) -> ExportFigures:
    """Export `machine_days` of the faults scenario `runs` times with the CLI; median time."""
    from simulators.scenario import load_scenario

    n = len(load_scenario(EXPORT_SCENARIO).machines)
    days = f"{machine_days / n:.6g}"
    times: list[float] = []
    with tempfile.TemporaryDirectory(prefix="moldlab-bench-") as tmp:
        dirs = [Path(tmp) / f"run{i + 1}" for i in range(runs)]
        argv: list[str] = []
        for out in dirs:
            argv = [sys.executable, "-m", "moldlab", "sim", "--scenario", EXPORT_SCENARIO,
                    "--export", str(out), "--days", days]  # fmt: skip
            t0 = time.perf_counter()
            result = subprocess.run(argv, capture_output=True, text=True, env=_child_env())
            times.append(time.perf_counter() - t0)
            if result.returncode != 0:
                raise BenchError(f"{shlex.join(argv)} exited with {result.returncode}:\n"
                                 f"{result.stderr[-2000:]}")  # fmt: skip
        manifest = json.loads((dirs[0] / "manifest.json").read_text())
        identical = all(
            filecmp.cmp(dirs[0] / name, other / name, shallow=False)
            for other in dirs[1:]
            for name in (f"{f}.parquet" if f != "manifest" else "manifest.json" for f in _FILES)
        )
    median = statistics.median(times)
    exported = float(manifest["machine_days"])
    target = None
    if exported >= EXPORT_TARGET_MACHINE_DAYS:
        target = round(EXPORT_TARGET_S * exported / EXPORT_TARGET_MACHINE_DAYS, 2)
    return ExportFigures(
        command=shlex.join(argv),
        scenario=EXPORT_SCENARIO,
        machines=n,
        days_per_machine=float(days),
        machine_days=round(exported, 3),
        median_s=round(median, 2),
        run_s=[round(t, 2) for t in times],
        machine_days_per_s=round(exported / median, 3),
        identical_runs=identical,
        rows=dict(manifest["rows"]),
        target_s=target,
        target_met=None if target is None else median < target,
    )


# --- the command ----------------------------------------------------------------------------


def run_sim_bench(
    *, seconds: float, machines: int, machine_days: float, runs: int, as_json: bool
) -> int:
    """`moldlab bench sim`: print the figures (text or JSON); 2 for bad options."""
    command = (
        f"moldlab bench sim --seconds {seconds:g} --machines {machines} "
        f"--days {machine_days:g} --runs {runs}" + (" --json" if as_json else "")
    )
    if seconds <= 0 or machines < 1 or machine_days <= 0 or runs < 1:
        print("moldlab bench sim: --seconds, --machines, --days and --runs must be positive",
              file=sys.stderr)  # fmt: skip
        return 2
    host = machine()
    if not as_json:
        announce(command, host)
    try:
        realtime = measure_realtime(machines, seconds)
        if not as_json:
            _print_realtime(realtime)
        export = measure_export(machine_days, runs)
    except BenchError as exc:
        print(f"moldlab bench sim: {exc}", file=sys.stderr)
        return 1
    if as_json:
        figures = {
            "command": command,
            "machine": asdict(host),
            "realtime": asdict(realtime),
            "export": asdict(export),
        }
        print(json.dumps(figures, indent=2))
    else:
        _print_export(export)
    return 0


def _met(ok: bool | None) -> str:
    return "not judged" if ok is None else "met" if ok else "MISSED"


def _print_realtime(r: RealtimeFigures) -> None:
    broker = (
        f", broker {r.broker_cpu_pct_median:.1f} %" if r.broker_cpu_pct_median is not None else ""
    )
    print(f"\nreal time, {r.machines} machines, broker {r.broker}:\n  {r.command}")
    print(f"  cpu       {r.cpu_pct_median:.1f} % of one core, median of {r.windows} windows of "
          f"{r.window_s:g} s (min {min(r.cpu_pct_windows):.1f}, max {max(r.cpu_pct_windows):.1f})"
          f"{broker}; target < {r.target_cpu_pct:g} %: {_met(r.target_met)}")  # fmt: skip
    print(f"  peak rss  {r.peak_rss_mb:.1f} MB")
    print(f"  messages  {r.messages_per_s:.1f}/s received", flush=True)


def _print_export(e: ExportFigures) -> None:
    rows = ", ".join(f"{name} {count:,}" for name, count in e.rows.items())
    if e.target_s is None:
        target = f"target < {EXPORT_TARGET_S:g} s for {EXPORT_TARGET_MACHINE_DAYS:g} machine-days"
    else:
        target = f"target < {e.target_s:g} s"
    print(f"\nexport, scenario {e.scenario}: {e.machines} machines x {e.days_per_machine:g} days "
          f"= {e.machine_days:g} machine-days:\n  {e.command}")  # fmt: skip
    each = ", ".join(f"{t:.1f}" for t in e.run_s)
    print(f"  time      {e.median_s:.1f} s, median of {len(e.run_s)} runs ({each}); "
          f"{target}: {_met(e.target_met)}")  # fmt: skip
    print(f"  rate      {e.machine_days_per_s:.2f} machine-days/s")
    print(f"  rows      {rows}")
    print(f"  identical files in every run: {'yes' if e.identical_runs else 'NO'}")
