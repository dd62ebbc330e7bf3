"""`moldlab chaos`: the data path under faults, every message counted end to end.

On this machine: a PostgreSQL server, a mosquitto broker, `gateways` edge gateways (`moldlab
edge` processes) with `machines` simulated Modbus machines each, reaching the broker through
a cable that can be cut, and two ingest workers (`moldlab ingest` processes) in one shared
group. Faults come one after the other, each ended before the next; after each, the time
until every message made before its end is committed is its recovery time. At the end the
gateways stop, and each source's (source, seq) from its first to its last are counted in
message_log (lost: a number missing) and its readings in telemetry (duplicated: a reading
written twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import yaml

from contracts import SIGNALS, MachineState
from moldlab.servers import LocalMosquitto, LocalPostgres, create_database
from moldlab.servers.cable import Cable
from simulators.modbus import ModbusMachineServer, load_register_map
from store import upgrade

Say = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Plan:
    gateways: int = 2
    machines: int = 3  # a gateway
    outage_s: float = 10.0  # how long a broker, database, network or machine is away
    kills: int = 3  # ingest SIGKILLs in a row
    recovery_timeout_s: float = 120.0


SHORT = Plan(gateways=1, machines=2, outage_s=3.0, kills=2, recovery_timeout_s=60.0)


@dataclass
class Fault:
    name: str
    recovery_s: float | None = None  # None: not recovered within the timeout


@dataclass
class SourceCount:
    source: str
    first: int
    last: int
    committed: int
    duplicated: int

    @property
    def lost(self) -> int:
        return self.last - self.first + 1 - self.committed


@dataclass
class Report:
    faults: list[Fault] = field(default_factory=list)
    sources: list[SourceCount] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return sum(s.lost for s in self.sources)

    @property
    def duplicated(self) -> int:
        return sum(s.duplicated for s in self.sources)

    def lines(self) -> list[str]:
        out = ["fault                                        recovered in"]
        for f in self.faults:
            took = "NOT RECOVERED" if f.recovery_s is None else f"{f.recovery_s:.1f} s"
            out.append(f"  {f.name:<43}{took}")
        out.append("source                 first seq -> last seq   committed  lost  duplicated")
        for s in self.sources:
            out.append(
                f"  {s.source:<21}{s.first:>12} -> +{s.last - s.first:<8}{s.committed:>9}"
                f"{s.lost:>6}{s.duplicated:>12}"
            )
        out.append(f"lost {self.lost}, duplicated {self.duplicated}")
        return out


class _Process:
    """A `moldlab` child process that chaos may SIGKILL and start again."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.args, self.env, self.log = name, args, env, log
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "moldlab", *self.args,
                env=self.env, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
            )  # fmt: skip

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self, timeout_s: float = 20.0) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), timeout_s)
        except TimeoutError:
            await self.kill()


class _Floor:
    def __init__(self, plan: Plan, home: Path, database_url: str, say: Say) -> None:
        self.plan, self.home, self.database_url, self.say = plan, home, database_url, say
        self.broker = LocalMosquitto(home / "mosquitto")
        self.machines: list[ModbusMachineServer] = []
        self.gateways: list[_Process] = []
        self.workers: list[_Process] = []
        self.outboxes: list[Path] = []
        self.site = f"chaos{int(time.time())}"

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Cable]:
        self.broker.start()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MOLDLAB_")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_root(), env.get("PYTHONPATH")]))
        async with Cable(self.broker.port) as cable:
            try:
                for w in ("1", "2"):
                    worker_env = env | {
                        "MOLDLAB_DATABASE_URL": self.database_url,
                        "MOLDLAB_MQTT_URL": self.broker.url,
                        "MOLDLAB_INGEST_SITE": self.site,
                        "MOLDLAB_INGEST_CLIENT_ID": f"ingest-{self.site}",
                        "MOLDLAB_INGEST_SHARED_GROUP": "chaos",
                        "MOLDLAB_INGEST_WORKER": w,
                        "MOLDLAB_INGEST_METRICS_PORT": "0",
                    }
                    log = self.home / f"ingest-{w}.log"
                    self.workers.append(_Process(f"ingest {w}", ["ingest"], worker_env, log))
                for g in range(self.plan.gateways):
                    self.gateways.append(await self._gateway(g, cable, env))
                for p in (*self.workers, *self.gateways):
                    await p.start()
                yield cable
            finally:
                for p in (*self.gateways, *self.workers):
                    await p.stop()
                for m in self.machines:
                    await m.stop()
                self.broker.stop()

    async def _gateway(self, g: int, cable: Cable, env: dict[str, str]) -> _Process:
        machines = []
        for m in range(self.plan.machines):
            server = ModbusMachineServer(load_register_map(), port=0)
            await server.start()
            server.update({s.name: 1.0 for s in SIGNALS}, MachineState.RUNNING)
            self.machines.append(server)
            machines.append({
                "machine_id": f"imm-{g}{m}",
                "modbus": {"host": "127.0.0.1", "port": server.port, "poll_interval_s": 0.5},
            })  # fmt: skip
        outbox = self.home / f"gw{g}" / "outbox.sqlite"
        outbox.parent.mkdir(parents=True)
        self.outboxes.append(outbox)
        config = {
            "gateway_id": f"gw{g}", "site": self.site, "area": "hall", "line": f"line-{g}",
            "broker": {"url": cable.url}, "machines": machines, "telemetry_interval_s": 1.0,
            "outbox": {"path": str(outbox), "resend_after_s": 10},
            "metrics": {"enabled": False},
        }  # fmt: skip
        path = outbox.parent / "gateway.yaml"
        path.write_text(yaml.safe_dump(config))
        return _Process(
            f"gateway gw{g}", ["edge", "--config", str(path)], env, outbox.parent / "edge.log"
        )

    def made(self) -> dict[str, int]:
        """Each source's last number made so far, from the gateways' outboxes."""
        out: dict[str, int] = {}
        for path in self.outboxes:
            try:
                db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
                with contextlib.closing(db):
                    for name, next_seq in db.execute("SELECT name, next_seq FROM source"):
                        if ":" in name:
                            out[name] = int(next_seq) - 1
            except sqlite3.OperationalError:  # not made yet by its gateway
                continue
        return out

    def committed(self, upto: dict[str, int]) -> bool:
        """Whether every number of each source up to `upto` is in message_log."""
        with psycopg.connect(self.database_url, connect_timeout=3) as conn:
            for source, last in upto.items():
                row = conn.execute(
                    "SELECT min(seq), count(*) FILTER (WHERE seq <= %s) FROM message_log"
                    " WHERE source = %s",
                    (last, source),
                ).fetchone()
                if row is None or row[0] is None or row[1] != last - int(row[0]) + 1:
                    return False
        return True

    def count(self) -> list[SourceCount]:
        sources = []
        with psycopg.connect(self.database_url) as conn:
            rows = conn.execute(
                "SELECT source, min(seq), max(seq), count(*) FROM message_log"
                " WHERE source LIKE 'gw%%:%%' GROUP BY source ORDER BY source"
            ).fetchall()
            for source, first, last, n in rows:
                machine = source.split(":", 1)[1]
                dup = conn.execute(
                    "SELECT count(*) FROM (SELECT 1 FROM telemetry t JOIN machine m"
                    " ON m.id = t.machine_id WHERE m.place LIKE %s"
                    " GROUP BY t.machine_id, t.signal_id, t.time HAVING count(*) > 1) d",
                    (f"{self.site}/%/{machine}",),
                ).fetchone()
                sources.append(SourceCount(source, first, last, n, dup[0] if dup else 0))
        return sources


def _root() -> str:
    return str(Path(__file__).resolve().parents[1])


async def run_chaos(
    plan: Plan, say: Say, *, database_url: str | None = None, home: Path | None = None
) -> Report:
    """Run `plan`'s faults against a fresh floor; the report of what was committed."""
    home = home or Path(tempfile.mkdtemp(prefix="moldlab-chaos-"))
    home.chmod(0o755)  # the postgres user enters it when the server is started as root
    report = Report()
    server = None if database_url else LocalPostgres(home / "postgres")
    if server is not None:
        say(f"starting PostgreSQL in {home / 'postgres'}")
        server.start()
        database_url = create_database(server.url, "chaos")
    assert database_url is not None
    try:
        upgrade(database_url)
        floor = _Floor(plan, home, database_url, say)
        say(
            f"{plan.gateways} gateways x {plan.machines} Modbus machines, mosquitto, 2 ingest "
            f"workers in a shared group; logs in {home}"
        )
        async with floor.running() as cable:
            await _wait(floor, lambda: bool(floor.made()) and floor.committed(floor.made()), plan)
            for name, fault in _faults(floor, cable, server, plan):
                say(f"fault: {name}")
                await fault()
                recovery = await _recover(floor, plan)
                report.faults.append(Fault(name, recovery))
                say(
                    f"  recovered in {recovery:.1f} s" if recovery is not None
                    else f"  NOT recovered within {plan.recovery_timeout_s:.0f} s"
                )  # fmt: skip
            say("stopping the gateways; then counting")
            for gateway in floor.gateways:
                await gateway.stop()
            last = floor.made()
            await _wait(floor, lambda: floor.committed(last), plan)
        report.sources = floor.count()
    finally:
        if server is not None:
            server.stop()
    return report


async def _recover(floor: _Floor, plan: Plan) -> float | None:
    started = time.monotonic()
    upto = await asyncio.to_thread(floor.made)
    try:
        await _wait(floor, lambda: floor.committed(upto), plan)
    except TimeoutError:
        return None
    return time.monotonic() - started


async def _wait(floor: _Floor, condition: Callable[[], bool], plan: Plan) -> None:
    deadline = time.monotonic() + plan.recovery_timeout_s
    while True:
        try:
            if await asyncio.to_thread(condition):
                return
        except psycopg.OperationalError:
            pass  # the database is coming back
        if time.monotonic() > deadline:
            raise TimeoutError
        await asyncio.sleep(0.25)


def _faults(
    floor: _Floor, cable: Cable, server: LocalPostgres | None, plan: Plan
) -> list[tuple[str, Callable[[], Awaitable[None]]]]:
    away = plan.outage_s

    async def broker_restart() -> None:
        await asyncio.to_thread(floor.broker.stop)
        await asyncio.sleep(away)
        await asyncio.to_thread(floor.broker.start)

    async def database_down() -> None:
        assert server is not None
        await asyncio.to_thread(server.stop)
        await asyncio.sleep(away)
        await asyncio.to_thread(server.start)

    async def ingest_kills() -> None:
        for n in range(plan.kills):
            worker = floor.workers[n % 2]
            await worker.kill()
            await asyncio.sleep(1.0)
            await worker.start()

    async def gateway_killed_while_broker_down() -> None:
        await asyncio.to_thread(floor.broker.stop)
        await asyncio.sleep(away / 2)
        await floor.gateways[0].kill()
        await floor.gateways[0].start()
        await asyncio.sleep(away / 2)
        await asyncio.to_thread(floor.broker.start)

    async def machine_gone() -> None:
        machine = floor.machines[0]
        await machine.stop()
        await asyncio.sleep(away)
        await machine.start()

    async def network_cut() -> None:
        cable.cut = True
        await asyncio.sleep(away)
        cable.mend()

    async def shared_subscription_lost() -> None:
        for worker in floor.workers:
            await worker.stop()
        await asyncio.to_thread(floor.broker.stop)
        await asyncio.to_thread(floor.broker.start)
        await asyncio.sleep(away)  # the gateways send to nobody
        for worker in floor.workers:
            await worker.start()

    faults: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        (f"broker stopped {away:.0f} s and restarted", broker_restart),
    ]
    if server is not None:
        faults.append((f"database stopped {away:.0f} s", database_down))
    faults += [
        (f"ingest SIGKILLed {plan.kills} times", ingest_kills),
        ("gateway SIGKILLed while the broker is down", gateway_killed_while_broker_down),
        (f"a Modbus machine gone {away:.0f} s", machine_gone),
        (f"network cut {away:.0f} s (bytes dropped)", network_cut),
        ("broker restarted while ingest is away", shared_subscription_lost),
    ]
    return faults
