"""A machine's history from the database, in the shape an export gives it (MachineHistory).

What the scorer reads for each machine, over the model's lookback up to the time scored:

- cycles with their mould: that of the machine's job in force when the cycle was made (the
  newest `machine_job` row at or before it, of the cycle's own job when it names one), as
  analytics.spc_query decides it; the cycle time is `cycle_time_s`, the other parameters come
  from the cycle's JSON;
- telemetry as 60 s means per signal (`date_bin`, the same on plain PostgreSQL and on
  TimescaleDB), stamped with the middle of their minute (as the samples they average are
  spread over it; the last minute is partial and stamped no later than the time scored);
- states from the one in force at the window's start;
- `last_service_us` per component: the end (the next state's time) of the newest finished
  fault whose reason is the component's breakdown reason (a repair), or of the newest finished
  planned maintenance (state planned_stop, reason planned_maintenance). The database does
  not say which components a planned maintenance served, so it counts as a service of every
  component; a breakdown reason shared by several components (heater_burnout, for the
  heater zones) counts as a repair of each of them.

Reads are incremental: a buffer per machine keeps what was read and each call reads only rows
from `overlap_s` before the previous call's end (rows a gateway forwards late still land,
since the overlap is read again and replaces what the buffer held there), then drops what
fell out of the lookback.

A broken device's values (NaN, infinite, a JSON parameter that is not a number, or beyond
±SANE_ABS) are read as missing, never averaged (PostgreSQL's float sum would overflow and fail
the read); `last_rejected` says how many the last call met, for the scorer to log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from psycopg import AsyncConnection

from analytics.pdm.history import LOOKBACK_H, MachineHistory
from contracts import CYCLE_PARAMETERS, SIGNALS

__all__ = ["BREAKDOWN_REASONS", "PLANNED_MAINTENANCE", "StoreReader"]

PARAMETERS = tuple(CYCLE_PARAMETERS)
SIGNAL_NAMES = tuple(s.name for s in SIGNALS)
BUCKET_US = 60_000_000
PLANNED_MAINTENANCE = "planned_maintenance"
# The standstill reason of each component's breakdown (simulators/faults.py BREAKDOWN, which
# analytics may not import; a test checks both agree).
BREAKDOWN_REASONS: Mapping[str, str] = {
    "heater_zone2": "heater_burnout",
    "heater_zone3": "heater_burnout",
    "heater_zone4": "heater_burnout",
    "heater_nozzle": "heater_burnout",
    "check_ring": "check_ring_failure",
    "screw_barrel": "screw_barrel_wear",
    "hydraulic_pump": "hydraulic_pump_failure",
    "cooling_channels": "cooling_blocked",
    "ejector": "ejector_failure",
}

# No injection moulding reading comes near this magnitude; a value beyond it is a broken device's.
SANE_ABS = 1e12

# Epoch µs; a stored '-infinity' (PostgreSQL takes it) reads as year 1, not a failed cast.
_US = "(extract(epoch FROM greatest({0}, TIMESTAMPTZ '0001-01-01Z')) * 1000000)::int8"
_SANE = f"BETWEEN {-SANE_ABS:.0e} AND {SANE_ABS:.0e}"  # NaN is above every number in SQL


def _param(name: str) -> str:
    """A JSON parameter as float8, NULL unless a number within ±SANE_ABS (never a failed cast)."""
    v = f"(c.parameters -> '{name}')"
    return (
        f"CASE WHEN jsonb_typeof({v}) = 'number' AND ({v} #>> '{{}}')::numeric {_SANE}"
        f" THEN ({v} #>> '{{}}')::float8 END"
    )


def _param_bad(name: str) -> str:
    v = f"(c.parameters -> '{name}')"
    return f"(coalesce(jsonb_typeof({v}), 'null') <> 'null' AND {_param(name)} IS NULL)::int"


_CYCLE_TIME = f"CASE WHEN c.cycle_time_s {_SANE} THEN c.cycle_time_s END"
_PARAMS = ", ".join(_CYCLE_TIME if p == "CycleTime" else _param(p) for p in PARAMETERS)
_PARAMS_BAD = " + ".join(
    f"(c.cycle_time_s IS NOT NULL AND {_CYCLE_TIME} IS NULL)::int" if p == "CycleTime"
    else _param_bad(p)
    for p in PARAMETERS
)  # fmt: skip
_CYCLES = f"""
SELECT {_US.format("c.time")}, c.quality, c.defect, c.job_name, {_PARAMS_BAD}, {_PARAMS}
FROM cycle c
WHERE c.machine_id = %(m)s AND c.time >= %(lo)s AND c.time <= %(hi)s
ORDER BY c.time, c.shot
"""
_TELEMETRY = f"""
SELECT least({_US.format("date_bin(INTERVAL '1 minute', t.time, TIMESTAMPTZ '2000-01-01')")}
             + 30000000, {_US.format("%(hi)s::timestamptz")}) AS b,
       t.signal_id, avg(t.value) FILTER (WHERE t.value {_SANE}),
       count(*) FILTER (WHERE NOT t.value {_SANE})
FROM telemetry t
WHERE t.machine_id = %(m)s AND t.time >= %(lo)s AND t.time <= %(hi)s
GROUP BY 1, 2
"""
_STATES = f"""
SELECT {_US.format("s.time")}, s.state, s.reason FROM machine_state s
WHERE s.machine_id = %(m)s AND s.time >= %(lo)s AND s.time <= %(hi)s
ORDER BY s.time, s.seq
"""
_STATE_BEFORE = f"""
SELECT {_US.format("s.time")}, s.state, s.reason FROM machine_state s
WHERE s.machine_id = %(m)s AND s.time < %(lo)s
ORDER BY s.time DESC, s.seq DESC LIMIT 1
"""
_JOBS = f"""
SELECT {_US.format("j.time")}, j.job_name, j.mould_id FROM machine_job j
WHERE j.machine_id = %(m)s AND j.time >= %(lo)s AND j.time <= %(hi)s
ORDER BY j.time
"""
# The newest job row before the window of each job name that may still be in force: the
# newest row of all, and the newest of each job a cycle in the window names.
_JOBS_BEFORE = f"""
SELECT DISTINCT ON (j.job_name) {_US.format("j.time")}, j.job_name, j.mould_id
FROM machine_job j
WHERE j.machine_id = %(m)s AND j.time < %(lo)s
  AND j.time >= %(lo)s - INTERVAL '180 days'
ORDER BY j.job_name, j.time DESC
"""
# Per service reason: the end of its newest finished stop (the next state row's time).
_SERVICES = f"""
SELECT r.reason, {_US.format("e.time")}
FROM unnest(%(reasons)s::text[], %(states)s::text[]) AS r(reason, state)
CROSS JOIN LATERAL (
    SELECT s.time FROM machine_state s
    WHERE s.machine_id = %(m)s AND s.state = r.state AND s.reason = r.reason
      AND s.time < %(lo)s
    ORDER BY s.time DESC LIMIT 2
) s
CROSS JOIN LATERAL (
    SELECT n.time FROM machine_state n
    WHERE n.machine_id = %(m)s AND n.time > s.time AND n.time <= %(lo)s
    ORDER BY n.time LIMIT 1
) e
"""


def _us(at: datetime) -> int:
    return (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _dt(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


def _keep(columns: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    return {name: values[mask] for name, values in columns.items()}


def _join(old: dict[str, np.ndarray], new: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: np.concatenate([old[name], new[name]]) for name in old}


def _empty_cycles() -> dict[str, np.ndarray]:
    out = {"ts": np.zeros(0, np.int64), "job": np.zeros(0, object)}
    for name in ("mould", "quality", "defect"):
        out[name] = np.zeros(0, object)
    for name in PARAMETERS:
        out[name] = np.zeros(0)
    return out


def _empty_signals() -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {"ts": np.zeros(0, np.int64)}
    for name in SIGNAL_NAMES:
        out[name] = np.zeros(0)
    return out


def _empty_states() -> dict[str, np.ndarray]:
    return {
        "ts": np.zeros(0, np.int64),
        "state": np.zeros(0, object),
        "reason": np.zeros(0, object),
    }


@dataclass(slots=True)
class _Buffer:
    """What is known of one machine: rows up to `read_to_us`, from the lookback's start."""

    read_to_us: int
    cycles: dict[str, np.ndarray] = field(default_factory=_empty_cycles)
    signals: dict[str, np.ndarray] = field(default_factory=_empty_signals)
    states: dict[str, np.ndarray] = field(default_factory=_empty_states)
    jobs: list[tuple[int, str, str]] = field(default_factory=list)  # (time, job, mould), by time
    last_service_us: dict[str, int] = field(default_factory=dict)  # per reason


class StoreReader:
    """MachineHistory per machine from the database, read incrementally (one per scorer)."""

    def __init__(
        self,
        lookback_h: float = LOOKBACK_H,
        overlap_s: float = 300.0,
        breakdown_reasons: Mapping[str, str] = BREAKDOWN_REASONS,
    ) -> None:
        self._lookback_us = round(lookback_h * 3600e6)
        self._overlap_us = max(round(overlap_s * 1e6), BUCKET_US)
        self._reasons = dict(breakdown_reasons)
        self._buffers: dict[int, _Buffer] = {}
        self._signal_names: dict[int, str] = {}
        self.last_rejected = 0  # values of the last `history` call read as missing (see above)

    def forget(self, machine_id: int) -> None:
        """Drop a machine's buffer (it is no longer followed)."""
        self._buffers.pop(machine_id, None)

    @property
    def machines(self) -> frozenset[int]:
        return frozenset(self._buffers)

    async def history(
        self, conn: AsyncConnection[Any], machine_id: int, name: str, at: datetime
    ) -> MachineHistory:
        """The history of machine `machine_id` (named `name`) over the lookback up to `at`."""
        at_us = _us(at)
        start_us = at_us - self._lookback_us
        buf = self._buffers.get(machine_id)
        if buf is None or buf.read_to_us < start_us or buf.read_to_us > at_us:
            buf = _Buffer(read_to_us=start_us)
            await self._first_read(conn, machine_id, buf, start_us)
            self._buffers[machine_id] = buf
            lo_us = start_us
        else:
            lo_us = max(start_us, buf.read_to_us - self._overlap_us)
            lo_us -= lo_us % BUCKET_US  # whole minutes: their means are read again whole
        args = {"m": machine_id, "lo": _dt(lo_us), "hi": at}
        self.last_rejected = 0
        await self._read_jobs(conn, buf, args, lo_us)
        await self._read_states(conn, buf, args, lo_us)
        await self._read_signals(conn, buf, args, lo_us)
        await self._read_cycles(conn, buf, args, lo_us)
        buf.read_to_us = at_us
        self._trim(buf, start_us)
        return MachineHistory(
            machine_id=name,
            cycles={k: v for k, v in buf.cycles.items() if k != "job"},
            signals=dict(buf.signals),
            states=dict(buf.states),
            last_service_us=self._services(buf),
        )

    async def _first_read(
        self, conn: AsyncConnection[Any], machine_id: int, buf: _Buffer, start_us: int
    ) -> None:
        """What came before the window: the state and jobs in force, the last services."""
        args: dict[str, Any] = {"m": machine_id, "lo": _dt(start_us)}
        cur = await conn.execute(_STATE_BEFORE, args)
        row = await cur.fetchone()
        if row is not None:
            buf.states = {
                "ts": np.array([row[0]], np.int64),
                "state": np.array([row[1]], object),
                "reason": np.array([row[2]], object),
            }
        cur = await conn.execute(_JOBS_BEFORE, args)
        buf.jobs = sorted((int(t), str(j), str(m)) for t, j, m in await cur.fetchall())
        services = sorted(set(self._reasons.values()))
        args["reasons"] = [*services, PLANNED_MAINTENANCE]
        args["states"] = ["fault"] * len(services) + ["planned_stop"]
        cur = await conn.execute(_SERVICES, args)
        for reason, end_us in await cur.fetchall():
            buf.last_service_us[str(reason)] = max(
                int(end_us), buf.last_service_us.get(str(reason), 0)
            )

    async def _read_jobs(
        self, conn: AsyncConnection[Any], buf: _Buffer, args: dict[str, Any], lo_us: int
    ) -> None:
        cur = await conn.execute(_JOBS, args)
        new = [(int(t), str(j), str(m)) for t, j, m in await cur.fetchall()]
        buf.jobs = [j for j in buf.jobs if j[0] < lo_us] + new

    async def _read_states(
        self, conn: AsyncConnection[Any], buf: _Buffer, args: dict[str, Any], lo_us: int
    ) -> None:
        cur = await conn.execute(_STATES, args)
        rows = await cur.fetchall()
        new = {
            "ts": np.array([r[0] for r in rows], np.int64),
            "state": np.array([r[1] for r in rows], object),
            "reason": np.array([r[2] for r in rows], object),
        }
        buf.states = _join(_keep(buf.states, buf.states["ts"] < lo_us), new)

    async def _read_signals(
        self, conn: AsyncConnection[Any], buf: _Buffer, args: dict[str, Any], lo_us: int
    ) -> None:
        cur = await conn.execute(_TELEMETRY, args)
        rows = await cur.fetchall()
        if any(r[1] not in self._signal_names for r in rows):
            names = await conn.execute("SELECT id, name FROM signal")
            self._signal_names = {int(i): str(n) for i, n in await names.fetchall()}
        buckets = sorted({int(r[0]) for r in rows})
        index = {b: i for i, b in enumerate(buckets)}
        new = {"ts": np.array(buckets, np.int64)}
        for name in SIGNAL_NAMES:
            new[name] = np.full(len(buckets), np.nan)
        for bucket, sid, value, rejected in rows:
            self.last_rejected += int(rejected)
            column = new.get(self._signal_names.get(int(sid), ""))
            if column is not None and value is not None:
                column[index[int(bucket)]] = value
        buf.signals = _join(_keep(buf.signals, buf.signals["ts"] < lo_us), new)

    async def _read_cycles(
        self, conn: AsyncConnection[Any], buf: _Buffer, args: dict[str, Any], lo_us: int
    ) -> None:
        cur = await conn.execute(_CYCLES, args)
        rows = await cur.fetchall()
        n = len(rows)
        new: dict[str, np.ndarray] = {
            "ts": np.fromiter((r[0] for r in rows), np.int64, n),
            "quality": np.array([r[1] for r in rows], object),
            "defect": np.array([r[2] for r in rows], object),
            "job": np.array([r[3] for r in rows], object),
        }
        self.last_rejected += sum(int(r[4]) for r in rows)
        values = np.array([r[5:] for r in rows], dtype=np.float64).reshape(n, len(PARAMETERS))
        for k, name in enumerate(PARAMETERS):
            new[name] = np.ascontiguousarray(values[:, k])
        new["mould"] = self._moulds(buf.jobs, new["ts"], new["job"])
        buf.cycles = _join(_keep(buf.cycles, buf.cycles["ts"] < lo_us), new)

    @staticmethod
    def _moulds(jobs: list[tuple[int, str, str]], ts: np.ndarray, named: np.ndarray) -> np.ndarray:
        """Each cycle's mould: its job's, in force at its time (None before any job)."""
        out = np.full(len(ts), None, dtype=object)
        if not jobs or not len(ts):
            return out
        times = np.array([j[0] for j in jobs], np.int64)
        newest = np.searchsorted(times, ts, side="right") - 1
        for i in range(len(ts)):
            k = int(newest[i])
            if k < 0:
                continue
            job = named[i]
            if job is None or job == jobs[k][1]:
                out[i] = jobs[k][2]
                continue
            # A cycle of a job other than the newest row's: its own job's newest row before it.
            while k >= 0 and jobs[k][1] != job:
                k -= 1
            out[i] = jobs[k][2] if k >= 0 else None
        return out

    def _trim(self, buf: _Buffer, start_us: int) -> None:
        """Forget what fell out of the lookback (the state in force at its start stays)."""
        self._note_services(buf)
        buf.cycles = _keep(buf.cycles, buf.cycles["ts"] >= start_us)
        buf.signals = _keep(buf.signals, buf.signals["ts"] >= start_us)
        ts = buf.states["ts"]
        first = max(int(np.searchsorted(ts, start_us, side="right")) - 1, 0)
        buf.states = {name: values[first:] for name, values in buf.states.items()}
        if buf.jobs:
            # Keep the newest row of every job name before the window (a cycle may name it).
            before = {j[1]: j for j in buf.jobs if j[0] < start_us}
            buf.jobs = sorted([*before.values(), *(j for j in buf.jobs if j[0] >= start_us)])

    def _note_services(self, buf: _Buffer) -> None:
        """Services that finished in the buffer's states: their ends, per reason."""
        ts, states, reasons = buf.states["ts"], buf.states["state"], buf.states["reason"]
        wanted = set(self._reasons.values())
        for i in range(len(ts) - 1):
            reason = reasons[i]
            if (states[i] == "fault" and reason in wanted) or (
                states[i] == "planned_stop" and reason == PLANNED_MAINTENANCE
            ):
                end = int(ts[i + 1])
                if end > buf.last_service_us.get(reason, 0):
                    buf.last_service_us[reason] = end

    def _services(self, buf: _Buffer) -> dict[str, int]:
        self._note_services(buf)
        planned = buf.last_service_us.get(PLANNED_MAINTENANCE)
        out: dict[str, int] = {}
        for component, reason in self._reasons.items():
            ends = [t for t in (buf.last_service_us.get(reason), planned) if t is not None]
            if ends:
                out[component] = max(ends)
        return out
