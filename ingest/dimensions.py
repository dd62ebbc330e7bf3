"""Machines, signals and the signals of each machine: their ids, given within the plant's limits.

A hostile or broken publisher can invent machine ids and signal names faster than anyone
can read them (50,000 machines in seconds, once). Each new machine, signal name and
(machine, signal) pair is therefore given an id only while the plant's limits allow
(`Limits`: machines in all and per site, signal names in all, signals per machine); a
message that would pass one is refused with a reason that names the setting, and each limit
is logged once per process, when it is first reached.

A machine is known by its place (site/area/line/machine): an imm-01 on two sites is two
machines, each counted against its own site's limit.

Ids are given before a batch's transaction, one statement each in name order with the
connection in autocommit: two workers giving the same new machine an id never hold locks
the other waits for. Two workers may together pass a limit by a few at most.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from psycopg import AsyncConnection

from contracts import Place, signal_spec
from ingest.validation import Limits

log = logging.getLogger(__name__)

Refusals = dict[str, str]  # a machine place, or "place/signal", -> why it was refused


@dataclass(slots=True)
class Dimensions:
    """The ids of machines and signals known to be committed, shared by a process's writers."""

    machines: dict[Place, int] = field(default_factory=dict)  # place -> id
    signals: dict[str, int] = field(default_factory=dict)  # signal name -> id
    # machine id -> the signals it has (name -> id); a dict is replaced, never changed, so
    # that a thread packing telemetry meanwhile reads a whole one.
    machine_signals: dict[int, dict[str, int]] = field(default_factory=dict)
    logged_limits: set[str] = field(default_factory=set)
    full: dict[str, str] = field(default_factory=dict)  # a limit met -> what it says


async def resolve(
    conn: AsyncConnection,
    dimensions: Dimensions,
    limits: Limits,
    machines: set[Place],
    names: dict[Place, set[str]],
) -> Refusals:
    """Give ids to the new of `machines` and of the signals `names` lists per machine; what a
    limit refuses, with why (the keys of Refusals: str(place), or str(place)/signal)."""
    refused: Refusals = {}
    unknown = sorted((p for p in machines if p not in dimensions.machines), key=str)
    if unknown:
        # One query for all a batch does not know: a flood of new ids costs one per batch.
        cur = await conn.execute(
            "SELECT place, id FROM machine WHERE place = ANY(%s)", ([str(p) for p in unknown],)
        )
        found = {str(place): int(machine_id) for place, machine_id in await cur.fetchall()}
        for place in unknown:
            if (machine_id := found.get(str(place))) is not None:
                dimensions.machines[place] = machine_id
                continue
            reason = await _add_machine(conn, dimensions, limits, place)
            if reason is not None:
                refused[str(place)] = reason
    for place in sorted(names, key=str):
        if str(place) in refused:
            continue
        machine_id = dimensions.machines[place]
        for name, reason in (
            await _machine_signals(conn, dimensions, limits, str(place), machine_id, names[place])
        ).items():
            refused[f"{place}/{name}"] = reason
    return refused


async def _add_machine(
    conn: AsyncConnection, dimensions: Dimensions, limits: Limits, place: Place
) -> str | None:
    """Add the machine at `place` if the limits let it; None, or why they refused it."""
    for limit_key in (f"machines of site {place.site}", "machines"):
        if (what := dimensions.full.get(limit_key)) is not None:
            # Full once, full until restart (machines are not removed while ingest runs).
            return _refusal(dimensions, limit_key, f"{what}; new machine {place} refused")
    cur = await conn.execute(
        "INSERT INTO machine (machine_key, site, area, line)"
        " SELECT %(key)s, %(site)s, %(area)s, %(line)s"
        " WHERE (SELECT count(*) FROM machine WHERE site = %(site)s) < %(per_site)s"
        " AND (SELECT count(*) FROM machine) < %(total)s"
        # A worker that gave it its id meanwhile: the update only returns that id.
        " ON CONFLICT (place) DO UPDATE SET machine_key = EXCLUDED.machine_key RETURNING id",
        {
            "key": place.machine, "site": place.site, "area": place.area, "line": place.line,
            "per_site": limits.max_machines_per_site, "total": limits.max_machines,
        },
    )  # fmt: skip
    row = await cur.fetchone()
    if row is not None:
        dimensions.machines[place] = int(row[0])
        return None
    cur = await conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE site = %s) FROM machine", (place.site,)
    )
    counts = await cur.fetchone()
    assert counts is not None  # an aggregate always yields a row
    total, in_site = int(counts[0]), int(counts[1])
    if in_site >= limits.max_machines_per_site:
        what = f"site {place.site} has {in_site} machines (MOLDLAB_INGEST_MAX_MACHINES_PER_SITE)"
        limit_key = f"machines of site {place.site}"
    else:
        what = f"the plant has {total} machines (MOLDLAB_INGEST_MAX_MACHINES)"
        limit_key = "machines"
    dimensions.full[limit_key] = what
    return _refusal(dimensions, limit_key, f"{what}; new machine {place} refused")


async def _machine_signals(
    conn: AsyncConnection,
    dimensions: Dimensions,
    limits: Limits,
    place: str,
    machine_id: int,
    names: set[str],
) -> Refusals:
    """Make `names` signals of machine `machine_id` (at `place`); those a limit refused, with
    why."""
    known = dimensions.machine_signals.get(machine_id)
    if known is None:
        known = await _signals_of(conn, machine_id)
        dimensions.machine_signals[machine_id] = known
    new = sorted(names - known.keys())
    if not new:
        return {}
    refused: Refusals = {}
    ids = []
    for name in new:
        if name not in dimensions.signals:
            reason = await _signal_id(conn, dimensions, limits, name)
            if reason is not None:
                refused[name] = reason
                continue
        ids.append(dimensions.signals[name])
    if ids:
        # As many as the machine has room for, in name order; the rest are refused.
        await conn.execute(
            "INSERT INTO machine_signal (machine_id, signal_id)"
            " SELECT %(m)s, s FROM unnest(%(ids)s::int4[]) WITH ORDINALITY AS u(s, i)"
            " WHERE i <= %(max)s - (SELECT count(*) FROM machine_signal WHERE machine_id = %(m)s)"
            " ON CONFLICT DO NOTHING",
            {"m": machine_id, "ids": ids, "max": limits.max_signals_per_machine},
        )
        known = await _signals_of(conn, machine_id)
        dimensions.machine_signals[machine_id] = known
    over = [name for name in new if name not in known and name not in refused]
    if over:
        reason = _refusal(
            dimensions,
            f"signals of machine {place}",
            f"machine {place} has {len(known)} signals (MOLDLAB_INGEST_MAX_SIGNALS_PER_MACHINE);"
            f" new signal {over[0]} refused",
        )
        refused.update(dict.fromkeys(over, reason))
    return refused


async def _signals_of(conn: AsyncConnection, machine_id: int) -> dict[str, int]:
    cur = await conn.execute(
        "SELECT s.name, s.id FROM machine_signal ms JOIN signal s ON s.id = ms.signal_id"
        " WHERE ms.machine_id = %s",
        (machine_id,),
    )
    return {str(name): int(signal_id) for name, signal_id in await cur.fetchall()}


async def _signal_id(
    conn: AsyncConnection, dimensions: Dimensions, limits: Limits, name: str
) -> str | None:
    """Find or add signal `name`; None, or why the limit on signal names refused it."""
    cur = await conn.execute("SELECT id FROM signal WHERE name = %s", (name,))
    row = await cur.fetchone()
    if row is None and "signals" in dimensions.full:
        return _refusal(
            dimensions, "signals", f"{dimensions.full['signals']}; new signal {name} refused"
        )
    if row is None:
        spec = signal_spec(name)
        cur = await conn.execute(
            "INSERT INTO signal (name, unit) SELECT %(name)s, %(unit)s"
            " WHERE (SELECT count(*) FROM signal) < %(max)s"
            " ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
            {"name": name, "unit": spec.unit if spec else None, "max": limits.max_signals},
        )
        row = await cur.fetchone()
    if row is not None:
        dimensions.signals[name] = int(row[0])
        return None
    what = f"the plant has {limits.max_signals} signal names (MOLDLAB_INGEST_MAX_SIGNALS)"
    dimensions.full["signals"] = what
    return _refusal(dimensions, "signals", f"{what}; new signal {name} refused")


def _refusal(dimensions: Dimensions, limit_key: str, text: str) -> str:
    """The reason stored with a refused message; logged the first time its limit is met."""
    if limit_key not in dimensions.logged_limits:
        dimensions.logged_limits.add(limit_key)
        log.warning("limit reached: %s (logged once; see moldlab_ingest_rejected_total)", text)
    return f"limit: {text}"
