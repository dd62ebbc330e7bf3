"""Publishers' births and deaths: edge_status rows, the machines each gateway serves, losses.

A status is stored under its topic's place ("site/area/line/id"), with the time ingest wrote
it (`received_at`, in arrival order): a publisher makes its last will before its session's
birth, so the will's own timestamp and sequence number come before the birth's, while the
broker publishes it after. A gateway's birth lists the machines it serves; each of them is
recorded as served by it (the latest birth that lists a machine wins), and the machines its
new list no longer holds are let go. A gateway's death is logged once, with how many
machines it takes offline (analytics shows them offline, "gateway lost").

A gateway serves the machines of its own line (ingest.validation refuses a birth that lists
others), and the machines recorded as served at a site are bounded like the machines
themselves (MOLDLAB_INGEST_MAX_MACHINES_PER_SITE): births from invented gateways listing
invented machines fill nothing past it; what a birth lists beyond it is not recorded, and
that is logged once.
"""

from __future__ import annotations

import logging

import psycopg

from contracts import EdgeStatus, Place
from ingest.validation import Limits

log = logging.getLogger(__name__)

_INSERT = (
    "INSERT INTO edge_status (time, edge_key, online, detail, source, seq, received_at)"
    " VALUES (%s, %s, %s, %s, %s, %s, clock_timestamp())"
)


async def record_statuses(
    cur: psycopg.AsyncCursor[object],
    statuses: list[tuple[Place, EdgeStatus]],
    limits: Limits,
    logged: set[str],
) -> list[tuple[Place, int]]:
    """Write `statuses` (each with its topic's place) in arrival order and the machines each
    birth lists; the places of the dead among them with how many machines each served.
    `logged`: the limits already logged by this process (each is logged once)."""
    await cur.executemany(
        _INSERT,
        [(m.ts, str(p), m.online, m.detail, m.source, m.seq) for p, m in statuses],
    )
    lost = []
    for place, message in statuses:
        gateway = str(place)
        if message.online and message.machines is not None:
            machines = sorted(set(message.machines))  # in key order: no deadlock between workers
            await cur.execute(
                "DELETE FROM gateway_machine WHERE gateway = %s AND machine <> ALL(%s::text[])",
                (gateway, machines),
            )
            machines = await _within_limits(cur, place, machines, limits, logged)
            await cur.execute(
                "INSERT INTO gateway_machine (machine, gateway, listed_at)"
                " SELECT unnest(%s::text[]), %s, %s"
                " ON CONFLICT (machine) DO UPDATE"
                " SET gateway = EXCLUDED.gateway, listed_at = EXCLUDED.listed_at",
                (machines, gateway, message.ts),
            )
        elif not message.online:
            await cur.execute("SELECT count(*) FROM gateway_machine WHERE gateway = %s", (gateway,))
            row = await cur.fetchone()
            assert isinstance(row, tuple)  # an aggregate always yields a row
            lost.append((place, int(row[0])))
    return lost


async def _within_limits(
    cur: psycopg.AsyncCursor[object],
    gateway: Place,
    machines: list[str],
    limits: Limits,
    logged: set[str],
) -> list[str]:
    """The first of `machines` that the limits leave room for (served at the site, in all)."""
    await cur.execute(
        "SELECT count(*) FILTER (WHERE starts_with(machine, %s)), count(*)"
        " FROM gateway_machine WHERE machine <> ALL(%s::text[])",
        (f"{gateway.site}/", machines),
    )
    row = await cur.fetchone()
    assert isinstance(row, tuple)  # an aggregate always yields a row
    room = min(limits.max_machines_per_site - int(row[0]), limits.max_machines - int(row[1]))
    if room >= len(machines):
        return machines
    if (key := f"gateway machines of site {gateway.site}") not in logged:
        logged.add(key)
        log.warning(
            "limit reached: site %s has %d machines served by gateways"
            " (MOLDLAB_INGEST_MAX_MACHINES_PER_SITE, ..._MAX_MACHINES); gateway %s's birth"
            " lists %d, %d recorded (logged once)",
            gateway.site, int(row[0]), gateway.machine, len(machines), max(room, 0),
        )  # fmt: skip
    return machines[: max(room, 0)]


def log_lost(lost: list[tuple[Place, int]]) -> None:
    """One line per gateway death that took machines offline (committed: said once)."""
    for place, machines in lost:
        if machines:
            log.warning(
                "gateway %s at %s/%s/%s lost: %d machines offline",
                place.machine, place.site, place.area, place.line, machines,
            )  # fmt: skip
