"""`moldlab bench ingest`: committed readings/s, end-to-end latency and the plain-COPY ceiling.

Ingest runs as `python -m moldlab ingest`, a child process measured from /proc; the load
comes from another child process publishing pre-encoded telemetry batches with QoS 1. Each
message's `ts` is its send time and its `seq` the same instant in microseconds, so every
message_log row says when its reading was taken; when it was committed comes from the
server's commit timestamps (track_commit_timestamp), or failing that from the row's
received_at (the transaction's start, an underestimate).
"""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing
import os
import shlex
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

import psycopg

from contracts import BrokerUrl, Reading, TelemetryBatch, Topic, encode
from contracts.messages import MessageKind
from moldlab.bench import (
    BenchError,
    _child_env,
    _met,
    _stop,
    announce,
    cpu_seconds,
    machine,
    peak_rss_bytes,
)
from moldlab.servers import LocalMosquitto, LocalPostgres, create_database, drop_database
from moldlab.servers.process import descendants, log_tail

RATE_TARGET = 100_000.0  # committed readings/s
LATENCY_RATE = 50_000.0  # readings/s offered while latency is measured
P99_TARGET_S = 1.0
MIN_WINDOW_S = 30.0
# As deploy/mosquitto/mosquitto.conf: ingest acknowledges a batch only after commit, so its
# batches can hold no more messages than the broker lets it have unacknowledged.
BROKER_INFLIGHT = 1000
_BIN_S = 5.0  # committed readings/s are also given per bin, and their median
_SITE, _AREA, _LINE = "bench", "hall", "line1"
_MARK_TS = datetime(2001, 2, 3, 4, 5, 6, 123456, tzinfo=UTC)
_MARK_SEQ = 987654321987654321
_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 in Unix microseconds: binary COPY's zero


@dataclass(frozen=True, slots=True)
class Load:
    machines: int
    signals: int
    rate: float  # readings/s

    @property
    def interval_s(self) -> float:
        """Each machine publishes one batch of `signals` readings per interval."""
        return self.machines * self.signals / self.rate


@dataclass(frozen=True, slots=True)
class PhaseFigures:
    name: str
    ingest_command: str
    machines: int
    signals: int
    offered_readings_per_s: float
    published_readings_per_s: float  # acknowledged by the broker over the window
    window_s: float
    committed_readings: int
    # Over the whole window: bins hold whole batches (up to batch_max x signals readings
    # each), so a bin's rate is quantised and their median is no better an estimate.
    committed_readings_per_s: float
    committed_per_s_bins: list[float]
    backlog_start_messages: int  # published but not yet committed
    backlog_end_messages: int
    keeps_up: bool
    latency_clock: str
    latency_messages: int
    latency_p50_s: float | None
    latency_p99_s: float | None
    latency_max_s: float | None
    ingest_peak_rss_mb: float
    cpu_pct: dict[str, float]  # of one core, per process over the window


@dataclass(frozen=True, slots=True)
class CeilingFigures:
    rows: int
    seconds: float
    rows_per_s: float
    ingest_ratio: float  # the saturation phase's committed readings/s over rows_per_s


@dataclass(frozen=True, slots=True)
class Servers:
    database: str
    broker: str
    broker_max_inflight: int | None
    ingest_batch_max_messages: int
    ingest_write_connections: int
    durable: bool | None


# --- the load generator (a child process) ------------------------------------------------------


def _templates(load: Load) -> list[tuple[str, bytes, bool]]:
    """Per machine: its topic, its payload with %b (ts) and %d (seq) holes, and the holes' order."""
    out = []
    for i in range(load.machines):
        name = f"bench{i + 1:03d}"
        batch = TelemetryBatch(
            machine_id=name, ts=_MARK_TS, source=f"moldlab-bench:{name}", seq=_MARK_SEQ,
            readings=[Reading(signal=f"bench.s{j:03d}", offset_ms=0, value=20.0 + (i * j) % 97)
                      for j in range(load.signals)],
        )  # fmt: skip
        raw = encode(batch)
        ts_mark = _iso(_MARK_TS)
        assert b"%" not in raw
        assert raw.count(ts_mark) == 1
        ts_first = raw.index(ts_mark) < raw.index(str(_MARK_SEQ).encode())
        holed = raw.replace(ts_mark, b"%b").replace(str(_MARK_SEQ).encode(), b"%d")
        topic = str(Topic(_SITE, _AREA, _LINE, name, MessageKind.TELEMETRY))
        out.append((topic, holed, ts_first))
    return out


def _iso(ts: datetime) -> bytes:
    return ts.isoformat(timespec="microseconds").replace("+00:00", "Z").encode()


def generate(url: str, load: Load, acked: Synchronized[int], stop: EventType) -> None:
    """Publish `load` with QoS 1 until `stop`; `acked` counts the broker's acknowledgements."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    templates = _templates(load)
    broker = BrokerUrl.parse(url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"moldlab-bench-load-{os.getpid()}")
    client.max_inflight_messages_set(BROKER_INFLIGHT)
    client.max_queued_messages_set(0)
    count = 0

    def on_publish(*_: object) -> None:
        nonlocal count
        count += 1
        acked.value = count

    client.on_publish = on_publish
    if broker.username:
        client.username_pw_set(broker.username, broker.password)
    if broker.tls:
        client.tls_set()
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        due = time.monotonic()
        while not stop.is_set():
            for topic, holed, ts_first in templates:
                now = time.time()
                ts = _iso(datetime.fromtimestamp(now, UTC))
                seq = int(now * 1e6)
                client.publish(topic, holed % ((ts, seq) if ts_first else (seq, ts)), qos=1)
            due += load.interval_s
            lag = due - time.monotonic()
            if lag > 0:
                stop.wait(lag)
            elif lag < -1.0:
                due = time.monotonic()  # behind by more than a second: do not burst to catch up
    finally:
        client.disconnect()
        client.loop_stop()


class _Generator:
    def __init__(self, url: str, load: Load) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.acked = ctx.Value("q", 0, lock=False)
        self._stop = ctx.Event()
        self.proc = ctx.Process(
            target=generate, args=(url, load, self.acked, self._stop), name="bench-load",
            daemon=True,
        )  # fmt: skip

    def __enter__(self) -> _Generator:
        self.proc.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()


# --- ingest (a child process) -----------------------------------------------------------------


@contextmanager
def _ingest(
    database_url: str, mqtt_url: str, batch_max: int, connections: int, log_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`python -m moldlab ingest` with a session of its own, subscribed when this yields."""
    client_id = f"moldlab-bench-ingest-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in _child_env().items() if not k.startswith("MOLDLAB_")}
    settings = {"MOLDLAB_DATABASE_URL": database_url, "MOLDLAB_MQTT_URL": mqtt_url,
                "MOLDLAB_INGEST_CLIENT_ID": client_id, "MOLDLAB_INGEST_SITE": _SITE,
                "MOLDLAB_INGEST_BATCH_MAX_MESSAGES": str(batch_max),
                "MOLDLAB_INGEST_WRITE_CONNECTIONS": str(connections)}  # fmt: skip
    argv = [sys.executable, "-m", "moldlab", "ingest"]
    command = " ".join(f"{k}={v}" for k, v in settings.items() if "DATABASE" not in k)
    command += " MOLDLAB_DATABASE_URL=... " + shlex.join(argv)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=env | settings, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30.0
        while b"subscribed to" not in log_path.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"moldlab ingest did not subscribe:\n{log_tail(log_path)}")
            time.sleep(0.1)
        yield proc, command
    finally:
        _stop(proc)
        _forget_session(mqtt_url, client_id)


def _forget_session(url: str, client_id: str) -> None:
    """Connect once with a clean session, so the broker drops what it queued for ingest."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    broker = BrokerUrl.parse(url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    if broker.username:
        client.username_pw_set(broker.username, broker.password)
    if broker.tls:
        client.tls_set()
    try:
        client.connect(broker.host, broker.port)
        client.loop(1.0)
        client.disconnect()
    except OSError:
        pass  # the broker is gone already; so is the session


# --- measuring ----------------------------------------------------------------------------------


def _tree_cpu_seconds(pid: int) -> float:
    """CPU time of `pid` and its live descendants (PostgreSQL's backends are children)."""
    total = 0.0
    for p in {pid} | descendants(pid):
        with contextlib.suppress(BenchError):  # exited meanwhile
            total += cpu_seconds(p)
    return total


def _commit_clock(conn: psycopg.Connection) -> tuple[str, str]:
    """The SQL for a message_log row's commit time, and what it is called in the output."""
    row = conn.execute("SHOW track_commit_timestamp").fetchone()
    if row and row[0] == "on":
        return "pg_xact_commit_timestamp(xmin)", "commit timestamp"
    return "received_at", "transaction start (track_commit_timestamp is off)"


def _committed(conn: psycopg.Connection) -> int:
    sql = "SELECT count(*) FROM message_log WHERE source LIKE 'moldlab-bench:%'"
    row = conn.execute(sql).fetchone()
    assert row is not None  # count(*) always returns a row
    return int(row[0])


def _run_phase(
    name: str,
    load: Load,
    window_s: float,
    warmup_s: float,
    database_url: str,
    mqtt_url: str,
    batch_max: int,
    connections: int,
    pids: dict[str, int | None],
    tmp: Path,
) -> PhaseFigures:
    """Offer `load` to a fresh ingest process; measure over `window_s` after `warmup_s`."""
    log_path = tmp / f"ingest-{name}.log"
    with ExitStack() as stack:
        conn = stack.enter_context(psycopg.connect(database_url, autocommit=True))
        clock_sql, clock = _commit_clock(conn)
        before = _committed(conn)  # by earlier phases
        proc, command = stack.enter_context(
            _ingest(database_url, mqtt_url, batch_max, connections, log_path)
        )
        gen = stack.enter_context(_Generator(mqtt_url, load))
        deadline = time.monotonic() + 60.0
        while _committed(conn) == before:
            if proc.poll() is not None or not gen.proc.is_alive():
                raise BenchError(f"a child exited:\n{log_tail(log_path)}")
            if time.monotonic() > deadline:
                raise BenchError(f"nothing committed in 60 s:\n{log_tail(log_path)}")
            time.sleep(0.1)
        time.sleep(warmup_s)
        watched = {"ingest": proc.pid, "generator": gen.proc.pid, **pids}
        cpu0 = {k: _tree_cpu_seconds(p) for k, p in watched.items() if p}
        acked0, committed0 = gen.acked.value, _committed(conn)
        t0, m0 = time.time(), time.monotonic()
        time.sleep(window_s)
        cpu1 = {k: _tree_cpu_seconds(p) for k, p in watched.items() if p}
        acked1, committed1 = gen.acked.value, _committed(conn)
        t1, elapsed = time.time(), time.monotonic() - m0
        rss = peak_rss_bytes(proc.pid)
        if proc.poll() is not None:
            raise BenchError(f"ingest exited during the window:\n{log_tail(log_path)}")
        rows = conn.execute(
            f"SELECT extract(epoch FROM {clock_sql})::float8, seq FROM message_log"
            f" WHERE source LIKE 'moldlab-bench:%%' AND {clock_sql} >= to_timestamp(%s)"
            f" AND {clock_sql} < to_timestamp(%s)",
            (t0, t1),
        ).fetchall()
    commits = [float(c) for c, _ in rows]
    latencies = sorted(c - seq / 1e6 for c, seq in rows)
    n_bins = max(1, int(window_s // _BIN_S))
    bin_s = (t1 - t0) / n_bins
    bins = [0] * n_bins
    for c in commits:
        bins[min(n_bins - 1, int((c - t0) / bin_s))] += 1
    per_bin = [b * load.signals / bin_s for b in bins]
    backlog0, backlog1 = acked0 - (committed0 - before), acked1 - (committed1 - before)
    # Keeping up: the backlog grew by no more than one full batch and one round of messages
    # (the counts are taken between commits, so a batch may be in flight at either end).
    slack = batch_max + load.machines
    return PhaseFigures(
        name=name,
        ingest_command=command,
        machines=load.machines,
        signals=load.signals,
        offered_readings_per_s=load.rate,
        published_readings_per_s=round((acked1 - acked0) * load.signals / elapsed, 1),
        window_s=round(elapsed, 2),
        committed_readings=len(commits) * load.signals,
        committed_readings_per_s=round(len(commits) * load.signals / (t1 - t0), 1),
        committed_per_s_bins=[round(b, 1) for b in per_bin],
        backlog_start_messages=backlog0,
        backlog_end_messages=backlog1,
        keeps_up=backlog1 - backlog0 <= slack,
        latency_clock=clock,
        latency_messages=len(latencies),
        latency_p50_s=round(_quantile(latencies, 0.50), 4) if latencies else None,
        latency_p99_s=round(_quantile(latencies, 0.99), 4) if latencies else None,
        latency_max_s=round(latencies[-1], 4) if latencies else None,
        ingest_peak_rss_mb=round(rss / 1e6, 1),
        cpu_pct={k: round(100.0 * (cpu1[k] - cpu0[k]) / elapsed, 1) for k in cpu1 if k in cpu0},
    )


def _quantile(ordered: list[float], q: float) -> float:
    """The q-quantile of sorted values (nearest rank)."""
    rank = math.ceil(q * len(ordered) - 1e-9)  # 0.99 * 100 is 99.00000000000001
    return ordered[min(len(ordered), max(1, rank)) - 1]


def _measure_ceiling(database_url: str, load: Load, rows: int) -> tuple[int, float]:
    """One binary COPY of `rows` telemetry rows shaped like ingest's; rows and seconds."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        ids = "SELECT id FROM {} WHERE {} LIKE %s ORDER BY id"
        machines = [int(r[0]) for r in conn.execute(ids.format("machine", "machine_key"),
                                                     ("bench%",))]  # fmt: skip
        signals = [int(r[0]) for r in conn.execute(ids.format("signal", "name"),
                                                    ("bench.s%",))]  # fmt: skip
        if not machines or not signals:
            raise BenchError("no bench machines or signals in the database to copy rows for")
        # Rows as ingest writes them: a message per machine per interval, all signals at its ts.
        row = struct.Struct("!hiqiiiiid")
        start_us = int(time.time() * 1e6) - _PG_EPOCH_US
        step_us = int(load.interval_s * 1e6)
        buf = bytearray(b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0))
        for n in range(rows):
            message, signal = divmod(n, len(signals))
            tick, m = divmod(message, len(machines))
            buf += row.pack(4, 8, start_us + tick * step_us, 4, machines[m], 4, signals[signal],
                            8, 20.0 + n % 97)  # fmt: skip
        buf += struct.pack("!h", -1)
        data = bytes(buf)
        began = time.perf_counter()
        copy_sql = "COPY telemetry (time, machine_id, signal_id, value) FROM STDIN (FORMAT BINARY)"
        with conn.transaction(), conn.cursor() as cur, cur.copy(copy_sql) as copy:
            view = memoryview(data)
            for at in range(0, len(data), 1 << 20):
                copy.write(view[at : at + (1 << 20)])
        return rows, time.perf_counter() - began


# --- the command ----------------------------------------------------------------------------


@contextmanager
def _servers(
    database_url: str | None, mqtt_url: str | None, tmp: Path
) -> Iterator[tuple[str, str, Servers, dict[str, int | None]]]:
    """A fresh, migrated database and a broker: local child processes unless URLs are given."""
    from store import upgrade

    with ExitStack() as stack:
        pids: dict[str, int | None] = {}
        durable: bool | None = None
        if database_url is None:
            pg = stack.enter_context(LocalPostgres(tmp / "postgres"))
            # Exact commit times for the latency; takes effect on restart.
            with psycopg.connect(pg.url, autocommit=True) as conn:
                conn.execute("ALTER SYSTEM SET track_commit_timestamp = on")
            pg.stop()
            pg.start()
            server_url, pids["postgres"], durable = pg.url, pg.pid, pg.durable
        else:
            server_url = database_url
        name = f"moldlab_bench_{uuid.uuid4().hex[:10]}"
        url = create_database(server_url, name)
        stack.callback(drop_database, server_url, name)
        backend = upgrade(url)
        inflight: int | None = None
        if mqtt_url is None:
            broker = stack.enter_context(
                LocalMosquitto(tmp / "mosquitto", max_inflight_messages=BROKER_INFLIGHT)
            )
            mqtt_url, pids["broker"], inflight = broker.url, broker.pid, BROKER_INFLIGHT
            broker_label = f"local mosquitto (max_inflight_messages {inflight}, as deployed)"
        else:
            broker_label = f"external {BrokerUrl.parse(mqtt_url)}"
        where = "local" if database_url is None else "external"
        label = f"{where} {backend} " + ("(fsync on)" if durable else "")
        servers = Servers(label.strip(), broker_label, inflight, 0, 0, durable)
        yield url, mqtt_url, servers, pids


def run_ingest_bench(
    *,
    seconds: float,
    rate: float,
    latency_rate: float,
    machines: int,
    signals: int,
    batch_max_messages: int,
    write_connections: int,
    database_url: str | None,
    mqtt_url: str | None,
    quick: bool,
    as_json: bool,
) -> int:
    """`moldlab bench ingest`: print the figures (text or JSON); 2 for bad options."""
    command = (
        f"moldlab bench ingest --seconds {seconds:g} --rate {rate:g} --latency-rate "
        f"{latency_rate:g} --machines {machines} --signals {signals} --batch-max-messages "
        f"{batch_max_messages} --write-connections {write_connections}"
        + (" --quick" if quick else "")
        + (" --json" if as_json else "")
    )
    if min(seconds, rate, latency_rate, machines, signals, batch_max_messages,
           write_connections) <= 0:  # fmt: skip
        print("moldlab bench ingest: every number must be positive", file=sys.stderr)
        return 2
    if seconds < MIN_WINDOW_S and not quick:
        print(f"moldlab bench ingest: --seconds must be at least {MIN_WINDOW_S:g} "
              "(or pass --quick for a smoke test)", file=sys.stderr)  # fmt: skip
        return 2
    warmup_s = 1.0 if quick else 5.0
    host = machine()
    if not as_json:
        announce(command, host)
    try:
        with tempfile.TemporaryDirectory(prefix="moldlab-bench-", dir="/tmp") as tmp:
            Path(tmp).chmod(0o755)  # PostgreSQL runs as `postgres` when we are root
            with _servers(database_url, mqtt_url, Path(tmp)) as (db, broker, servers, pids):
                ingest = {"ingest_batch_max_messages": batch_max_messages,
                          "ingest_write_connections": write_connections}  # fmt: skip
                servers = Servers(**(asdict(servers) | ingest))
                if not as_json:
                    _print_servers(servers)
                phases = []
                for name, offered in (("saturation", rate), ("latency", latency_rate)):
                    load = Load(machines, signals, offered)
                    phase = _run_phase(name, load, seconds, warmup_s, db, broker,
                                       batch_max_messages, write_connections, pids,
                                       Path(tmp))  # fmt: skip
                    if not as_json:
                        _print_phase(phase)
                    phases.append(phase)
                copied = max(phases[0].committed_readings, 10 * signals * machines)
                rows, copy_s = _measure_ceiling(db, Load(machines, signals, rate), copied)
    except BenchError as exc:
        print(f"moldlab bench ingest: {exc}", file=sys.stderr)
        return 1
    ceiling = CeilingFigures(
        rows=rows,
        seconds=round(copy_s, 2),
        rows_per_s=round(rows / copy_s, 1),
        ingest_ratio=round(phases[0].committed_readings_per_s * copy_s / rows, 3),
    )
    saturation, latency = phases
    targets: dict[str, dict[str, object]] = {
        "committed_readings_per_s": {
            "target": RATE_TARGET,
            "figure": saturation.committed_readings_per_s,
            "met": saturation.committed_readings_per_s >= RATE_TARGET,
            "judged": rate >= RATE_TARGET,
        },
        "latency_p99_s": {
            "target": P99_TARGET_S,
            "at_readings_per_s": latency.offered_readings_per_s,
            "figure": latency.latency_p99_s,
            "met": latency.latency_p99_s is not None and latency.latency_p99_s < P99_TARGET_S,
            "judged": latency_rate >= LATENCY_RATE,
        },
    }
    if as_json:
        figures = {
            "command": command,
            "machine": asdict(host),
            "servers": asdict(servers),
            "saturation": asdict(saturation),
            "latency": asdict(latency),
            "ceiling": asdict(ceiling),
            "targets": targets,
        }
        print(json.dumps(figures, indent=2))
    else:
        _print_ceiling(ceiling, saturation)
        _print_targets(targets)
    return 0


def _print_servers(s: Servers) -> None:
    print(f"database: {s.database}")
    print(f"broker:   {s.broker}; ingest batches up to {s.ingest_batch_max_messages} messages "
          "(no more than the broker's in-flight window), written on "
          f"{s.ingest_write_connections} connections at once", flush=True)  # fmt: skip


def _print_phase(p: PhaseFigures) -> None:
    bins = ", ".join(f"{b:,.0f}" for b in p.committed_per_s_bins)
    print(f"\n{p.name}: {p.machines} machines x {p.signals} signals offered at "
          f"{p.offered_readings_per_s:,.0f} readings/s, window {p.window_s:g} s:\n"
          f"  {p.ingest_command}")  # fmt: skip
    print(f"  published {p.published_readings_per_s:,.0f} readings/s (acknowledged by the broker)")
    print(f"  committed {p.committed_readings_per_s:,.0f} readings/s over the window; per "
          f"{p.window_s / len(p.committed_per_s_bins):.1f} s: {bins} (whole batches)")  # fmt: skip
    verdict = "keeps up" if p.keeps_up else "FALLS BEHIND"
    print(f"  backlog   {p.backlog_start_messages:,} -> {p.backlog_end_messages:,} messages "
          f"over the window: {verdict}")  # fmt: skip
    if p.latency_p50_s is not None and p.latency_p99_s is not None:
        print(f"  latency   p50 {p.latency_p50_s * 1000:,.0f} ms, "
              f"p99 {p.latency_p99_s * 1000:,.0f} ms, max {(p.latency_max_s or 0) * 1000:,.0f} "
              f"ms over {p.latency_messages:,} messages (reading ts to "
              f"{p.latency_clock})")  # fmt: skip
    print(f"  peak rss  {p.ingest_peak_rss_mb:.1f} MB (ingest)")
    cpu = ", ".join(f"{k} {v:.0f} %" for k, v in p.cpu_pct.items())
    print(f"  cpu       {cpu} (of one core)", flush=True)


def _print_ceiling(c: CeilingFigures, saturation: PhaseFigures) -> None:
    print(f"\nceiling: one binary COPY of {c.rows:,} rows of the same shape into the same "
          f"telemetry table, one transaction:")  # fmt: skip
    print(f"  rate      {c.rows_per_s:,.0f} rows/s ({c.seconds:g} s)")
    print(f"  ingest    {saturation.committed_readings_per_s:,.0f} readings/s = "
          f"{c.ingest_ratio:.0%} of the ceiling")  # fmt: skip


def _print_targets(targets: dict[str, dict[str, object]]) -> None:
    rate, p99 = targets["committed_readings_per_s"], targets["latency_p99_s"]
    print("\ntargets:")
    judged = _met(bool(rate["met"])) if rate["judged"] else "not judged (offered less)"
    print(f"  >= {RATE_TARGET:,.0f} readings/s committed: {judged}")
    judged = _met(bool(p99["met"])) if p99["judged"] else "not judged (offered less)"
    print(f"  p99 < {P99_TARGET_S:g} s at {LATENCY_RATE:,.0f} readings/s: {judged}")
