"""Predictive-maintenance tables (migration 0009): predictions, alerts, the model card in force.

The scorer (analytics.pdm.scorer) writes through these helpers inside its pass's transaction;
the API and `moldlab pdm alerts|ack` read and acknowledge through them. An alert is opened by
an INSERT that the partial unique index `pdm_alert_one_open` lets through only when no alert of
that machine and component is still open or acknowledged: the caller that gets a row back is
the one that opened it, exactly once.

Reads leave out a row with a number that is not finite (NaN or ±Infinity, which the float8
columns accept but JSON cannot carry): the scorer never writes one, only a hand-made row or an
older scorer could have.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

AlertStatus = Literal["open", "acknowledged", "closed"]
CloseReason = Literal["failed", "serviced", "cleared"]
STATUSES: tuple[AlertStatus, ...] = ("open", "acknowledged", "closed")


@dataclass(frozen=True, slots=True)
class PredictionRow:
    """One prediction of one machine and component, as the tables hold it."""

    machine_id: int
    component: str
    time: datetime
    p_8h: float
    p_24h: float
    rul_h: float
    rul_low_h: float
    rul_high_h: float
    alarm: bool
    evidence: list[dict[str, Any]]
    model: str


@dataclass(frozen=True, slots=True)
class AlertRow:
    id: int
    place: str
    machine_id: int
    component: str
    opened_at: datetime
    status: AlertStatus
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    closed_at: datetime | None
    close_reason: CloseReason | None
    last_alarm_at: datetime
    p_8h: float
    p_24h: float
    rul_h: float
    evidence: list[dict[str, Any]]
    model: str


_COLUMNS = "p_8h, p_24h, rul_h, rul_low_h, rul_high_h, alarm, evidence, model"


def _values(row: PredictionRow) -> tuple[object, ...]:
    return (
        row.machine_id, row.component, row.time, row.p_8h, row.p_24h, row.rul_h,
        row.rul_low_h, row.rul_high_h, row.alarm, Jsonb(row.evidence), row.model,
    )  # fmt: skip


async def record_model(conn: AsyncConnection[Any], name: str, card: dict[str, Any]) -> None:
    """Make `name` (with its card) the model in force: a scorer starts with it."""
    await conn.execute(
        "INSERT INTO pdm_model (name, card) VALUES (%s, %s)"
        " ON CONFLICT (name) DO UPDATE SET card = excluded.card, started_at = now()",
        (name, Jsonb(card)),
    )


async def model_in_force(conn: AsyncConnection[Any]) -> tuple[str, datetime, dict[str, Any]] | None:
    """The card of the model a scorer started with last: (name, started_at, card)."""
    cur = await conn.execute(
        "SELECT name, started_at, card FROM pdm_model ORDER BY started_at DESC LIMIT 1"
    )
    row = await cur.fetchone()
    return None if row is None else (str(row[0]), row[1], dict(row[2]))


async def write_latest(conn: AsyncConnection[Any], rows: Sequence[PredictionRow]) -> None:
    """Replace each machine and component's newest prediction (never by an older one)."""
    async with conn.cursor() as cur:
        await cur.executemany(
            f"INSERT INTO pdm_prediction_latest (machine_id, component, time, {_COLUMNS})"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (machine_id, component) DO UPDATE SET time = excluded.time,"
            " p_8h = excluded.p_8h, p_24h = excluded.p_24h, rul_h = excluded.rul_h,"
            " rul_low_h = excluded.rul_low_h, rul_high_h = excluded.rul_high_h,"
            " alarm = excluded.alarm, evidence = excluded.evidence, model = excluded.model,"
            " written_at = now()"
            " WHERE pdm_prediction_latest.time <= excluded.time",
            [_values(r) for r in rows],
        )


async def write_history(conn: AsyncConnection[Any], rows: Sequence[PredictionRow]) -> None:
    async with conn.cursor() as cur:
        await cur.executemany(
            f"INSERT INTO pdm_prediction (machine_id, component, time, {_COLUMNS})"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [_values(r) for r in rows],
        )


async def history_times(conn: AsyncConnection[Any]) -> dict[tuple[int, str], datetime]:
    """The newest history row's time per machine and component (where the history goes on)."""
    cur = await conn.execute(
        "SELECT machine_id, component, max(time) FROM pdm_prediction GROUP BY 1, 2"
    )
    return {(int(m), str(c)): t for m, c, t in await cur.fetchall()}


async def prune_history(conn: AsyncConnection[Any], before: datetime) -> int:
    """Remove history older than `before`; how many rows went."""
    cur = await conn.execute("DELETE FROM pdm_prediction WHERE time < %s", (before,))
    return cur.rowcount


_ALERT = """
SELECT a.id, m.place, a.machine_id, a.component, a.opened_at, a.status, a.acknowledged_by,
       a.acknowledged_at, a.closed_at, a.close_reason, a.last_alarm_at, a.p_8h, a.p_24h,
       a.rul_h, a.evidence, a.model
FROM pdm_alert a JOIN machine m ON m.id = a.machine_id
"""


def _finite(alias: str, columns: Sequence[str]) -> str:
    """SQL: every column is a finite number (NaN sorts above Infinity in PostgreSQL)."""
    return " AND ".join(
        f"{alias}.{c} > '-Infinity'::float8 AND {alias}.{c} < 'Infinity'::float8" for c in columns
    )


_ALERT_FINITE = _finite("a", ("p_8h", "p_24h", "rul_h"))
_PREDICTION_FINITE = _finite("p", ("p_8h", "p_24h", "rul_h", "rul_low_h", "rul_high_h"))


def _alert(row: dict[str, Any]) -> AlertRow:
    return AlertRow(**row)


async def active_alerts(conn: AsyncConnection[Any]) -> list[AlertRow]:
    """Every alert that is open or acknowledged (one per machine and component at most)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_ALERT + " WHERE a.status <> 'closed' ORDER BY a.id")
        return [_alert(r) for r in await cur.fetchall()]


async def open_alert(conn: AsyncConnection[Any], row: PredictionRow) -> int | None:
    """Open an alert from `row`; its id, or None when one was already open (not ours)."""
    cur = await conn.execute(
        "INSERT INTO pdm_alert (machine_id, component, opened_at, last_alarm_at, p_8h, p_24h,"
        " rul_h, evidence, model) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (machine_id, component) WHERE status <> 'closed' DO NOTHING RETURNING id",
        (
            row.machine_id,
            row.component,
            row.time,
            row.time,
            row.p_8h,
            row.p_24h,
            row.rul_h,
            Jsonb(row.evidence),
            row.model,
        ),
    )
    got = await cur.fetchone()
    return None if got is None else int(got[0])


async def alarm_seen(conn: AsyncConnection[Any], alert_id: int, at: datetime) -> None:
    """The alarm was on at `at`: the alert clears only some time after its last alarm."""
    await conn.execute(
        "UPDATE pdm_alert SET last_alarm_at = greatest(last_alarm_at, %s)"
        " WHERE id = %s AND status <> 'closed'",
        (at, alert_id),
    )


async def close_alert(
    conn: AsyncConnection[Any], alert_id: int, at: datetime, reason: CloseReason
) -> bool:
    """Close the alert; False when it was closed already (by another scorer)."""
    cur = await conn.execute(
        "UPDATE pdm_alert SET status = 'closed', closed_at = %s, close_reason = %s"
        " WHERE id = %s AND status <> 'closed' RETURNING id",
        (at, reason, alert_id),
    )
    return await cur.fetchone() is not None


class AckError(Exception):
    """The alert cannot be acknowledged (no such alert, or it is closed)."""


async def acknowledge(conn: AsyncConnection[Any], alert_id: int, by: str) -> AlertRow:
    """Acknowledge an open alert in `by`'s name; AckError when there is none to acknowledge."""
    cur = await conn.execute(
        "UPDATE pdm_alert SET status = 'acknowledged', acknowledged_by = %s,"
        " acknowledged_at = now() WHERE id = %s AND status = 'open' RETURNING id",
        (by, alert_id),
    )
    updated = await cur.fetchone() is not None
    found = await alerts(conn, alert_id=alert_id)
    if not found:
        raise AckError(f"no alert {alert_id}")
    if not updated:
        alert = found[0]
        if alert.status == "closed":
            raise AckError(f"alert {alert_id} is closed ({alert.close_reason})")
        raise AckError(f"alert {alert_id} was already acknowledged by {alert.acknowledged_by}")
    return found[0]


def _like(place: str) -> str:
    escaped = place.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "/%"


async def alerts(
    conn: AsyncConnection[Any],
    *,
    place: str | None = None,
    statuses: Sequence[AlertStatus] = STATUSES,
    alert_id: int | None = None,
    limit: int = 200,
) -> list[AlertRow]:
    """Alerts of machines under `place` (site[/area[/line[/machine]]]), newest first."""
    where = ["a.status = ANY(%(statuses)s)", _ALERT_FINITE]
    if place is not None:
        where.append("(m.place = %(place)s OR m.place LIKE %(like)s ESCAPE '\\')")
    if alert_id is not None:
        where.append("a.id = %(id)s")
    args = {
        "statuses": list(statuses),
        "place": place,
        "like": _like(place or ""),
        "id": alert_id,
        "limit": limit,
    }
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            _ALERT + " WHERE " + " AND ".join(where) + " ORDER BY a.opened_at DESC, a.id DESC"
            " LIMIT %(limit)s",
            args,
        )
        return [_alert(r) for r in await cur.fetchall()]


async def latest_predictions(
    conn: AsyncConnection[Any], place: str | None = None, limit: int | None = None
) -> list[tuple[str, PredictionRow, datetime]]:
    """The newest prediction per machine and component under `place`: (place, row, written)."""
    where = [_PREDICTION_FINITE]
    if place is not None:
        where.append("(m.place = %(place)s OR m.place LIKE %(like)s ESCAPE '\\')")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT m.place, p.machine_id, p.component, p.time, {_COLUMNS}, p.written_at"
            " FROM pdm_prediction_latest p JOIN machine m ON m.id = p.machine_id"
            + " WHERE "
            + " AND ".join(where)
            + " ORDER BY m.place, p.component LIMIT %(limit)s",
            {"place": place, "like": _like(place or ""), "limit": limit},
        )
        out = []
        for r in await cur.fetchall():
            machine_place, written = r.pop("place"), r.pop("written_at")
            out.append((str(machine_place), PredictionRow(**r), written))
        return out
