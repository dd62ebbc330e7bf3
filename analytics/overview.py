"""What each machine is doing now: state, last-seen time, latest cycle and signal values.

Read a page at a time: the page's machines are picked first (by machine id, through its
unique index), then only their latest state, cycle and signal values, so that a request costs
what its page holds whatever the database holds.
"""

from __future__ import annotations

from datetime import datetime

from psycopg import AsyncConnection
from pydantic import BaseModel, Field

from contracts import MachineState, PartQuality


class SignalValue(BaseModel):
    value: float = Field(description="the newest value")
    unit: str | None = Field(description="its unit, e.g. degC, bar, s")
    ts: datetime = Field(description="when it was measured (UTC)")


class CycleSummary(BaseModel):
    ts: datetime = Field(description="when the cycle ended (UTC)")
    cycle_time_s: float = Field(description="its cycle time")
    quality: PartQuality = Field(description="the quality of its parts")


class MachineOverview(BaseModel):
    machine_id: str = Field(description="the machine id, as in its topic")
    site: str
    area: str
    line: str
    state: MachineState | None = Field(description="latest state; offline when its source died")
    state_since: datetime | None = Field(description="when the machine entered that state")
    state_reason: str | None = Field(description="why, when the machine or its source said")
    last_seen: datetime | None = Field(description="time of the newest data from the machine")
    last_cycle: CycleSummary | None = Field(description="the newest moulding cycle")
    signals: dict[str, SignalValue] = Field(
        description="latest value of each signal, ordered by signal name; at most"
        " MOLDLAB_API_MAX_SIGNALS_PER_MACHINE signals (default 256): the first ones by name"
    )
    signals_truncated: bool = Field(
        description="true when the machine has more signals than `signals` holds"
    )


class MachinePage(BaseModel):
    machines: list[MachineOverview] = Field(description="this page's machines, by machine id")
    total: int = Field(description="how many machines there are in all")
    next: str | None = Field(
        description="the last machine id of this page: pass it as `after` for the next page;"
        " null on the last page"
    )


_PAGE = """
WITH page AS MATERIALIZED (
    SELECT id, machine_key, site, area, line, last_seen FROM machine
    {where}
    ORDER BY machine_key
    LIMIT %(limit)s
)
SELECT m.id, m.machine_key, m.site, m.area, m.line, m.last_seen,
       st.state, st.time, st.reason, es.online, es.time, cy.time, cy.cycle_time_s, cy.quality
FROM page m
LEFT JOIN LATERAL (SELECT state, time, reason FROM machine_state
                   WHERE machine_id = m.id ORDER BY time DESC LIMIT 1) st ON true
LEFT JOIN LATERAL (SELECT online, time FROM edge_status
                   WHERE edge_key = m.machine_key ORDER BY time DESC LIMIT 1) es ON true
LEFT JOIN LATERAL (SELECT time, cycle_time_s, quality FROM cycle
                   WHERE machine_id = m.id ORDER BY time DESC LIMIT 1) cy ON true
ORDER BY m.machine_key
"""
_FIRST_PAGE = _PAGE.format(where="")
_NEXT_PAGE = _PAGE.format(where="WHERE machine_key > %(after)s")

# One more than shown per machine, to tell whether there were more.
_LATEST = """
SELECT p.id, lv.name, lv.unit, lv.time, lv.value
FROM unnest(%(ids)s::integer[]) AS p(id)
CROSS JOIN LATERAL (
    SELECT s.name, s.unit, l.time, l.value
    FROM latest_value l JOIN signal s ON s.id = l.signal_id
    WHERE l.machine_id = p.id
    ORDER BY s.name
    LIMIT %(per_machine)s
) lv
"""


async def machine_overview(
    conn: AsyncConnection, *, limit: int, max_signals: int, after: str | None = None
) -> list[MachineOverview]:
    """Up to `limit` machines, by machine id after `after`, each with at most `max_signals`."""
    query = _FIRST_PAGE if after is None else _NEXT_PAGE
    cur = await conn.execute(query, {"limit": limit, "after": after})
    rows = await cur.fetchall()
    signals: dict[int, dict[str, SignalValue]] = {}
    if rows:
        cur = await conn.execute(
            _LATEST, {"ids": [row[0] for row in rows], "per_machine": max_signals + 1}
        )
        for machine_id, name, unit, ts, value in await cur.fetchall():
            signals.setdefault(machine_id, {})[name] = SignalValue(value=value, unit=unit, ts=ts)
    machines = []
    for row in rows:
        (mid, key, site, area, line, last_seen, state, since, reason,
         online, status_ts, cycle_ts, cycle_s, quality) = row  # fmt: skip
        # A source that died (its MQTT last will) makes the machine offline from then on.
        if online is False and (since is None or status_ts >= since):
            state, since, reason = MachineState.OFFLINE, status_ts, "source offline"
        values = signals.get(mid, {})
        truncated = len(values) > max_signals
        if truncated:
            values = dict(list(values.items())[:max_signals])
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
                signals=values,
                signals_truncated=truncated,
            )
        )
    return machines


async def machine_page(
    conn: AsyncConnection, *, limit: int, max_signals: int, after: str | None = None
) -> MachinePage:
    """A page of `limit` machines after `after`, the number of machines and the next cursor."""
    machines = await machine_overview(conn, limit=limit, max_signals=max_signals, after=after)
    last = machines[-1].machine_id if len(machines) == limit else None
    cur = await conn.execute(
        # With no last id (a short page), `machine_key > NULL` finds nothing: no next page.
        "SELECT (SELECT count(*) FROM machine),"
        " EXISTS (SELECT FROM machine WHERE machine_key > %s)",
        (last,),
    )
    row = await cur.fetchone()
    total, more = row if row else (0, False)
    return MachinePage(machines=machines, total=total, next=last if more else None)
