"""What each machine is doing now: state, last-seen time, latest cycle and signal values.

Machines are known by their place, "site/area/line/machine", and listed in its byte order.
Read a page at a time: the page's machines are picked first (by place, through its unique
index), then only their latest state, cycle and signal values, so that a request costs what
its page holds whatever the database holds.

A machine is shown offline when what brings its data is dead:

- its own source (an MQTT-native machine's last will): reason "source offline";
- the gateway whose latest birth listed it (its will, or its goodbye): "gateway lost".

Either from the time ingest received that death, and only while no data from the machine
is newer than the death: data timestamped after it means the machine is back, and it shows
its last state again; so does the dead publisher's next birth. A reconnecting gateway's
backlog is data timestamped before the death, and brings nothing back by itself (it follows
the gateway's birth, which does). The death is compared by the time ingest received it, not
its own timestamp: a last will is written when its session begins.
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
    place: str = Field(description="site/area/line/machine: what identifies the machine")
    machine_id: str = Field(description="the machine id, as in its topic")
    site: str
    area: str
    line: str
    state: MachineState | None = Field(
        description="latest state; offline when its source or its gateway died"
    )
    state_since: datetime | None = Field(description="when the machine entered that state")
    state_reason: str | None = Field(
        description="why, when the machine said; source offline, or gateway lost"
    )
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
    machines: list[MachineOverview] = Field(description="this page's machines, by place")
    total: int = Field(description="how many machines there are in all")
    next: str | None = Field(
        description="the last place of this page: pass it as `after` for the next page;"
        " null on the last page"
    )


_PAGE = """
WITH page AS MATERIALIZED (
    SELECT id, place, machine_key, site, area, line, last_seen FROM machine
    {where}
    ORDER BY place
    LIMIT %(limit)s
)
SELECT m.id, m.place, m.machine_key, m.site, m.area, m.line, m.last_seen,
       st.state, st.time, st.reason, es.online, es.received_at, gs.online, gs.received_at,
       cy.time, cy.cycle_time_s, cy.quality
FROM page m
LEFT JOIN LATERAL (SELECT state, time, reason FROM machine_state
                   WHERE machine_id = m.id ORDER BY time DESC LIMIT 1) st ON true
LEFT JOIN LATERAL (SELECT online, received_at FROM edge_status
                   WHERE edge_key = m.place ORDER BY received_at DESC LIMIT 1) es ON true
LEFT JOIN gateway_machine gm ON gm.machine = m.place
LEFT JOIN LATERAL (SELECT online, received_at FROM edge_status
                   WHERE edge_key = gm.gateway ORDER BY received_at DESC LIMIT 1) gs ON true
LEFT JOIN LATERAL (SELECT time, cycle_time_s, quality FROM cycle
                   WHERE machine_id = m.id ORDER BY time DESC LIMIT 1) cy ON true
ORDER BY m.place
"""
_FIRST_PAGE = _PAGE.format(where="")
_NEXT_PAGE = _PAGE.format(where="WHERE place > %(after)s")

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
    """Up to `limit` machines, by place after the place `after`, each with at most
    `max_signals` signals."""
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
        (mid, place, key, site, area, line, last_seen, state, since, reason,
         online, died, gateway_online, gateway_died, cycle_ts, cycle_s, quality) = row  # fmt: skip
        if _dead(online, died, last_seen):
            state, since, reason = MachineState.OFFLINE, died, "source offline"
        elif _dead(gateway_online, gateway_died, last_seen):
            state, since, reason = MachineState.OFFLINE, gateway_died, "gateway lost"
        values = signals.get(mid, {})
        truncated = len(values) > max_signals
        if truncated:
            values = dict(list(values.items())[:max_signals])
        machines.append(
            MachineOverview(
                place=place,
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


def _dead(online: bool | None, died: datetime | None, last_seen: datetime | None) -> bool:
    """Whether a publisher's latest status is a death with no data from the machine since."""
    return online is False and (last_seen is None or died is None or last_seen <= died)


async def machine_page(
    conn: AsyncConnection, *, limit: int, max_signals: int, after: str | None = None
) -> MachinePage:
    """A page of `limit` machines after the place `after`, the number of machines and the
    next cursor."""
    machines = await machine_overview(conn, limit=limit, max_signals=max_signals, after=after)
    last = machines[-1].place if len(machines) == limit else None
    cur = await conn.execute(
        # With no last place (a short page), `place > NULL` finds nothing: no next page.
        "SELECT (SELECT count(*) FROM machine), EXISTS (SELECT FROM machine WHERE place > %s)",
        (last,),
    )
    row = await cur.fetchone()
    total, more = row if row else (0, False)
    return MachinePage(machines=machines, total=total, next=last if more else None)
