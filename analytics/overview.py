"""What each machine is doing now: state, last-seen time, latest cycle and signal values."""

from __future__ import annotations

from datetime import datetime

from psycopg import AsyncConnection
from pydantic import BaseModel, Field

from contracts import MachineState, PartQuality


class SignalValue(BaseModel):
    value: float
    unit: str | None
    ts: datetime


class CycleSummary(BaseModel):
    ts: datetime
    cycle_time_s: float
    quality: PartQuality


class MachineOverview(BaseModel):
    machine_id: str
    site: str
    area: str
    line: str
    state: MachineState | None = Field(description="latest state; offline when its source died")
    state_since: datetime | None
    state_reason: str | None
    last_seen: datetime | None = Field(description="time of the newest data from the machine")
    last_cycle: CycleSummary | None
    signals: dict[str, SignalValue] = Field(description="latest value of every signal")


class HistoryPoint(BaseModel):
    bucket: datetime
    avg: float
    min: float
    max: float
    samples: int


_MACHINES = """
SELECT m.id, m.machine_key, m.site, m.area, m.line, m.last_seen,
       st.state, st.time, st.reason, es.online, es.time, cy.time, cy.cycle_time_s, cy.quality
FROM machine m
LEFT JOIN LATERAL (SELECT state, time, reason FROM machine_state
                   WHERE machine_id = m.id ORDER BY time DESC LIMIT 1) st ON true
LEFT JOIN LATERAL (SELECT online, time FROM edge_status
                   WHERE edge_key = m.machine_key ORDER BY time DESC LIMIT 1) es ON true
LEFT JOIN LATERAL (SELECT time, cycle_time_s, quality FROM cycle
                   WHERE machine_id = m.id ORDER BY time DESC LIMIT 1) cy ON true
ORDER BY m.machine_key
"""

_LATEST = """
SELECT lv.machine_id, s.name, s.unit, lv.time, lv.value
FROM latest_value lv JOIN signal s ON s.id = lv.signal_id
ORDER BY s.name
"""


async def machine_overview(conn: AsyncConnection) -> list[MachineOverview]:
    """Every machine with its state, last-seen time, latest cycle and latest signal values."""
    signals: dict[int, dict[str, SignalValue]] = {}
    cur = await conn.execute(_LATEST)
    for machine_id, name, unit, ts, value in await cur.fetchall():
        signals.setdefault(machine_id, {})[name] = SignalValue(value=value, unit=unit, ts=ts)
    machines = []
    cur = await conn.execute(_MACHINES)
    for row in await cur.fetchall():
        (mid, key, site, area, line, last_seen, state, since, reason,
         online, status_ts, cycle_ts, cycle_s, quality) = row  # fmt: skip
        # A source that died (its MQTT last will) makes the machine offline from then on.
        if online is False and (since is None or status_ts >= since):
            state, since, reason = MachineState.OFFLINE, status_ts, "source offline"
        machines.append(
            MachineOverview(
                machine_id=key,
                site=site,
                area=area,
                line=line,
                state=state,
                state_since=since,
                state_reason=reason,
                last_seen=last_seen,
                last_cycle=None
                if cycle_ts is None
                else CycleSummary(ts=cycle_ts, cycle_time_s=cycle_s, quality=quality),
                signals=signals.get(mid, {}),
            )
        )
    return machines


async def signal_history(
    conn: AsyncConnection, machine_key: str, signal: str, since: datetime
) -> list[HistoryPoint]:
    """1-minute buckets of one signal of one machine since `since` (continuous aggregate)."""
    cur = await conn.execute(
        "SELECT t.bucket, t.avg, t.min, t.max, t.samples FROM telemetry_1m t"
        " JOIN machine m ON m.id = t.machine_id JOIN signal s ON s.id = t.signal_id"
        " WHERE m.machine_key = %s AND s.name = %s AND t.bucket >= %s ORDER BY t.bucket",
        (machine_key, signal, since),
    )
    return [
        HistoryPoint(bucket=b, avg=a, min=lo, max=hi, samples=n)
        for b, a, lo, hi, n in await cur.fetchall()
    ]
