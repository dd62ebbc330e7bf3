"""The plant file in the database: each version of a site, mould and machine, from when it holds.

`write_plant` adds history only at its end: a thing whose content changed gets a new version
from the load's effective time and its previous version ends there; a thing no longer in the
file ends there; identical content changes nothing (a reload is a no-op). A change effective
at or before the start of the version it would replace is refused (`PlantConflict`), and then
nothing is written: editing today's ideal cycle time never rewrites last month.

The lookups answer "as of time t" (the plant in force, a mould, a site's calendar) and "over
a period" (each version that overlaps it), for OEE and SPC computed in the past.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from plant import Machine, Mould, Plant, ShiftCalendar, Site
from plant.plantfile import effective_problem
from store.errors import StoreError

__all__ = [
    "LoadResult",
    "PlantConflict",
    "PlantInForce",
    "Version",
    "calendar_at",
    "machine_at",
    "mould_at",
    "mould_versions",
    "mould_versions_of",
    "plant_at",
    "site_at",
    "site_versions",
    "write_plant",
]

T = TypeVar("T", Site, Mould, Machine)


class PlantConflict(StoreError):
    """A plant-file load that would rewrite history; nothing of it was written."""


@dataclass(frozen=True, slots=True)
class Version(Generic[T]):
    """One version of a thing of the plant, in force from `valid_from` until `valid_to`."""

    valid_from: datetime
    valid_to: datetime | None  # None: still in force
    item: T


@dataclass(frozen=True, slots=True)
class PlantInForce:
    """What the plant was at `at`, with since when each part of it held."""

    at: datetime
    sites: list[Version[Site]]
    moulds: list[Version[Mould]]
    machines: list[Version[Machine]]

    def plant(self) -> Plant:
        return Plant(
            sites=[v.item for v in self.sites],
            moulds=[v.item for v in self.moulds],
            machines=[v.item for v in self.machines],
        )


@dataclass(slots=True)
class LoadResult:
    """What a load changed, by kind and id (`site demo`, `mould cap-pp-8`, ...)."""

    effective_from: datetime
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    unchanged: int = 0

    @property
    def changes(self) -> int:
        return len(self.added) + len(self.changed) + len(self.retired)


@dataclass(frozen=True, slots=True)
class _Kind(Generic[T]):
    noun: str
    table: str
    keys: tuple[str, ...]
    columns: tuple[str, ...]
    key_of: Callable[[T], tuple[str, ...]]
    row_of: Callable[[T], dict[str, Any]]
    item_of: Callable[[dict[str, Any]], T]

    def select(self) -> str:
        names = ", ".join((*self.keys, *self.columns, "valid_from", "valid_to"))
        return f"SELECT {names} FROM {self.table}"

    def version(self, row: dict[str, Any]) -> Version[T]:
        return Version(row["valid_from"], row["valid_to"], self.item_of(row))

    def label(self, key: tuple[str, ...]) -> str:
        return f"{self.noun} {'/'.join(key)}"


def _site_row(site: Site) -> dict[str, Any]:
    calendar = site.calendar.model_dump(mode="json")
    return {"name": site.name, "timezone": site.timezone, "calendar": Jsonb(calendar)}


def _mould_row(mould: Mould) -> dict[str, Any]:
    row = mould.model_dump(mode="json", exclude={"id", "limits"})
    return {**row, "limits": Jsonb(mould.model_dump(mode="json")["limits"])}


def _machine_row(machine: Machine) -> dict[str, Any]:
    return machine.model_dump(mode="json", exclude={"site", "area", "line", "id"})


_SITE: _Kind[Site] = _Kind(
    "site", "plant_site", ("site",), ("name", "timezone", "calendar"),
    lambda s: (s.id,), _site_row,
    lambda r: Site.model_validate(
        {"id": r["site"], "name": r["name"], "timezone": r["timezone"], "calendar": r["calendar"]}
    ),
)  # fmt: skip
_MOULD: _Kind[Mould] = _Kind(
    "mould", "plant_mould", ("mould",),
    ("cavities", "ideal_cycle_s", "part_weight_g", "material", "limits"),
    lambda m: (m.id,), _mould_row,
    lambda r: Mould.model_validate({"id": r["mould"], **{k: r[k] for k in _MOULD.columns}}),
)  # fmt: skip
_MACHINE: _Kind[Machine] = _Kind(
    "machine", "plant_machine", ("site", "area", "line", "machine_key"),
    ("clamp_force_kn", "screw_diameter_mm", "max_shot_volume_cm3"),
    lambda m: m.place, _machine_row,
    lambda r: Machine.model_validate(
        {"site": r["site"], "area": r["area"], "line": r["line"], "id": r["machine_key"],
         **{k: r[k] for k in _MACHINE.columns if r[k] is not None}}
    ),
)  # fmt: skip


class _Plan:
    """The statements one kind needs, worked out before any is run."""

    def __init__(self) -> None:
        self.close: list[tuple[tuple[str, ...], datetime]] = []
        self.insert: list[Any] = []


async def _plan(
    conn: AsyncConnection[Any],
    kind: _Kind[T],
    items: Sequence[T],
    at: datetime,
    result: LoadResult,
    conflicts: list[str],
) -> _Plan:
    keys = ", ".join(kind.keys)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT DISTINCT ON ({keys}) * FROM ({kind.select()}) v"
            f" ORDER BY {keys}, valid_from DESC"
        )
        latest = {tuple(r[k] for k in kind.keys): r for r in await cur.fetchall()}
    plan = _Plan()
    in_file = set()
    for item in items:
        key = kind.key_of(item)
        in_file.add(key)
        row = latest.get(key)
        if row is None:
            plan.insert.append(item)
            result.added.append(kind.label(key))
            continue
        current = kind.version(row)
        if current.valid_to is None and _same(current.item, item):
            result.unchanged += 1
            continue
        if at <= current.valid_from or (current.valid_to is not None and at < current.valid_to):
            since = current.valid_to or current.valid_from
            conflicts.append(
                f"{kind.label(key)}: its newest version holds from {since.isoformat()}; a change "
                f"must take effect after that, not {at.isoformat()}"
            )
            continue
        if current.valid_to is None:
            plan.close.append((key, at))
            result.changed.append(kind.label(key))
        else:
            result.added.append(kind.label(key))
        plan.insert.append(item)
    for key, row in latest.items():
        if key in in_file or row["valid_to"] is not None:
            continue
        if at <= row["valid_from"]:
            conflicts.append(
                f"{kind.label(key)}: in force from {row['valid_from'].isoformat()}; it cannot "
                f"be removed from {at.isoformat()}"
            )
            continue
        plan.close.append((key, at))
        result.retired.append(kind.label(key))
    return plan


def _same(a: T, b: T) -> bool:
    return a.model_dump(mode="json") == b.model_dump(mode="json")


async def _run(conn: AsyncConnection[Any], kind: _Kind[Any], plan: _Plan, at: datetime) -> None:
    where = " AND ".join(f"{k} = %s" for k in kind.keys)
    async with conn.cursor() as cur:
        for closed, end in plan.close:
            await cur.execute(
                f"UPDATE {kind.table} SET valid_to = %s WHERE {where} AND valid_to IS NULL",
                (end, *closed),
            )
        columns = (*kind.keys, *kind.columns, "valid_from")
        for new in plan.insert:
            data = kind.row_of(new)
            values = (*kind.key_of(new), *(data.get(c) for c in kind.columns), at)
            await cur.execute(
                f"INSERT INTO {kind.table} ({', '.join(columns)})"
                f" VALUES ({', '.join(['%s'] * len(columns))})",
                values,
            )


async def write_plant(
    conn: AsyncConnection[Any], plant: Plant, effective_from: datetime, source: str = ""
) -> LoadResult:
    """Write `plant` as in force from `effective_from`, in one transaction; what changed.

    Raises PlantConflict (nothing written) for a change at or before the start of the version
    it would replace. A load that changes nothing writes nothing. ValueError for a time before
    1970 or more than a year ahead: a version from then would block every change until then.
    """
    if effective_from.tzinfo is None:
        raise ValueError("effective_from needs a time zone")
    if problem := effective_problem(effective_from, datetime.now(UTC)):
        raise ValueError(f"effective_from {problem}")
    result = LoadResult(effective_from)
    conflicts: list[str] = []
    async with conn.transaction():
        # One load at a time: two at once could both see the same newest version.
        await conn.execute("LOCK TABLE plant_load IN EXCLUSIVE MODE")
        kinds: list[tuple[_Kind[Any], Sequence[Any]]] = [
            (_SITE, plant.sites), (_MOULD, plant.moulds), (_MACHINE, plant.machines),
        ]  # fmt: skip
        plans = [
            (kind, await _plan(conn, kind, items, effective_from, result, conflicts))
            for kind, items in kinds
        ]
        if conflicts:
            raise PlantConflict("\n".join(conflicts))
        if not result.changes:
            return result
        for kind, plan in plans:
            await _run(conn, kind, plan, effective_from)
        await conn.execute(
            "INSERT INTO plant_load (effective_from, source, added, changed, retired)"
            " VALUES (%s, %s, %s, %s, %s)",
            (effective_from, source, len(result.added), len(result.changed), len(result.retired)),
        )
    return result


async def _in_force(
    conn: AsyncConnection[Any],
    kind: _Kind[T],
    at: datetime,
    where: str = "",
    args: tuple[Any, ...] = (),
) -> list[Version[T]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"{kind.select()} WHERE valid_from <= %s AND (valid_to IS NULL OR valid_to > %s)"
            f"{where} ORDER BY {', '.join(kind.keys)}",
            (at, at, *args),
        )
        return [kind.version(r) for r in await cur.fetchall()]


async def _overlapping(
    conn: AsyncConnection[Any], kind: _Kind[T], start: datetime, end: datetime, key: tuple[str, ...]
) -> list[Version[T]]:
    where = " AND ".join(f"{k} = %s" for k in kind.keys)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"{kind.select()} WHERE {where} AND valid_from < %s"
            " AND (valid_to IS NULL OR valid_to > %s) ORDER BY valid_from",
            (*key, end, start),
        )
        return [kind.version(r) for r in await cur.fetchall()]


async def plant_at(conn: AsyncConnection[Any], at: datetime) -> PlantInForce:
    """The plant in force at `at`: every site, mould and machine with the version then."""
    return PlantInForce(
        at,
        await _in_force(conn, _SITE, at),
        await _in_force(conn, _MOULD, at),
        await _in_force(conn, _MACHINE, at),
    )


async def mould_at(conn: AsyncConnection[Any], mould: str, at: datetime) -> Mould | None:
    """The mould's master data (ideal cycle time, cavities, limits, ...) in force at `at`."""
    found = await _in_force(conn, _MOULD, at, " AND mould = %s", (mould,))
    return found[0].item if found else None


async def site_at(conn: AsyncConnection[Any], site: str, at: datetime) -> Site | None:
    found = await _in_force(conn, _SITE, at, " AND site = %s", (site,))
    return found[0].item if found else None


async def calendar_at(conn: AsyncConnection[Any], site: str, at: datetime) -> ShiftCalendar | None:
    """The site's shift calendar in force at `at`."""
    found = await site_at(conn, site, at)
    return found.shift_calendar() if found else None


async def machine_at(
    conn: AsyncConnection[Any], place: tuple[str, str, str, str], at: datetime
) -> Machine | None:
    """The nominal data of the machine at (site, area, line, machine) in force at `at`."""
    where = " AND site = %s AND area = %s AND line = %s AND machine_key = %s"
    found = await _in_force(conn, _MACHINE, at, where, place)
    return found[0].item if found else None


async def mould_versions(
    conn: AsyncConnection[Any], mould: str, start: datetime, end: datetime
) -> list[Version[Mould]]:
    """Each version of the mould in force at some time in [start, end), oldest first."""
    return await _overlapping(conn, _MOULD, start, end, (mould,))


async def mould_versions_of(
    conn: AsyncConnection[Any], moulds: Sequence[str], start: datetime, end: datetime
) -> dict[str, list[Version[Mould]]]:
    """Each version of each of `moulds` in force at some time in [start, end), oldest first."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"{_MOULD.select()} WHERE mould = ANY(%s) AND valid_from < %s"
            " AND (valid_to IS NULL OR valid_to > %s) ORDER BY mould, valid_from",
            (list(moulds), end, start),
        )
        found: dict[str, list[Version[Mould]]] = {}
        for row in await cur.fetchall():
            found.setdefault(row["mould"], []).append(_MOULD.version(row))
        return found


async def site_versions(
    conn: AsyncConnection[Any], site: str, start: datetime, end: datetime
) -> list[Version[Site]]:
    """Each version of the site (its calendar) in force at some time in [start, end)."""
    return await _overlapping(conn, _SITE, start, end, (site,))
