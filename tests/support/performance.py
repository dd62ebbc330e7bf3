"""Rows of a machine of a test's own, written straight to the store, for OEE computed by hand.

What ingest would write (machine_state, cycle, machine_job, edge_status, gateway_machine),
without a broker in between: a test states each row's time, so its figures can be worked out
in a comment.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

from analytics.oee import Figures


@dataclass(slots=True)
class Floor:
    """One machine and the rows it sends (sequence numbers counted here)."""

    conn: AsyncConnection[Any]
    id: int
    place: str
    seq: int = 0

    @classmethod
    async def machine(
        cls, conn: AsyncConnection[Any], site: str, line: str = "l1", area: str = "hall"
    ) -> Floor:
        key = f"imm-{uuid.uuid4().hex[:8]}"
        cur = await conn.execute(
            "INSERT INTO machine (machine_key, site, area, line) VALUES (%s, %s, %s, %s)"
            " RETURNING id, place",
            (key, site, area, line),
        )
        row = await cur.fetchone()
        assert row is not None
        return cls(conn, int(row[0]), str(row[1]))

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    async def state(self, at: datetime, state: str, reason: str | None = None) -> None:
        await self.conn.execute(
            "INSERT INTO machine_state (time, machine_id, state, reason, source, seq)"
            " VALUES (%s, %s, %s, %s, 'test', %s)",
            (at, self.id, state, reason, self._next()),
        )

    async def states(self, rows: Iterable[tuple[datetime, str, str | None]]) -> None:
        async with self.conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO machine_state (time, machine_id, state, reason, source, seq)"
                " VALUES (%s, %s, %s, %s, 'test', %s)",
                [(t, self.id, s, r, self._next()) for t, s, r in rows],
            )

    async def job(self, at: datetime, name: str, mould: str, cavities: int) -> None:
        await self.conn.execute(
            "INSERT INTO machine_job (time, machine_id, job_name, mould_id, job_status,"
            " active_cavities, nominal_parts, source, seq)"
            " VALUES (%s, %s, %s, %s, 'job_in_production', %s, 0, 'test', %s)",
            (at, self.id, name, mould, cavities, self._next()),
        )

    async def cycles(
        self,
        times: Sequence[datetime],
        *,
        parts: int,
        job: str | None,
        quality: str = "good",
        defect: str | None = None,
        cycle_s: float = 40.0,
        kwh: float | None = None,
        values: Sequence[dict[str, float]] | None = None,
    ) -> None:
        """One cycle ending at each of `times`, of `parts` parts (its active cavities); with
        `values`, each cycle's parameters (EUROMAP 77 names) beside CycleEnergy."""
        params = json.dumps({"CycleEnergy": kwh} if kwh is not None else {})
        each = [json.dumps({**json.loads(params), **v}) for v in values] if values else None
        # COPY: one statement, so one staleness mark, however many cycles
        async with (
            self.conn.cursor() as cur,
            cur.copy(
                "COPY cycle (time, machine_id, shot, quality, parts, cycle_time_s, parameters,"
                " source, seq, job_name, defect) FROM STDIN"
            ) as copy,
        ):
            for i, t in enumerate(times):
                n = self._next()
                row_params = each[i] if each else params
                await copy.write_row(
                    (t, self.id, n, quality, parts, cycle_s, row_params, "test", n, job, defect)
                )

    async def served_by(self, gateway: str) -> None:
        await self.conn.execute(
            "INSERT INTO gateway_machine (machine, gateway) VALUES (%s, %s)", (self.place, gateway)
        )

    async def status(self, edge_key: str, at: datetime, *, online: bool) -> None:
        """A birth (online) or death of `edge_key`, received at `at`."""
        await self.conn.execute(
            "INSERT INTO edge_status (time, edge_key, online, detail, source, seq, received_at)"
            " VALUES (%s, %s, %s, NULL, %s, %s, %s)",
            (at, edge_key, online, edge_key, self._next(), at),
        )


def one_shift_plant(site: str, name: str) -> str:
    """A plant file of one site in Europe/Rome (UTC+1 in November), one mould m1.

    Its one shift is 06:00-14:00 local = 05:00-13:00 UTC with a break 10:00-10:30 local =
    09:00-09:30 UTC: shift time 28,800 s, break 1,800 s. m1 has 2 cavities and an ideal
    cycle of 20 s (10 s a part with both).
    """
    return f"""
sites:
  - id: {site}
    name: {name}
    timezone: Europe/Rome
    calendar:
      shifts: [{{name: morning, start: "06:00", end: "14:00",
                breaks: [{{start: "10:00", end: "10:30"}}]}}]
moulds:
  - id: m1
    cavities: 2
    ideal_cycle_s: 20.0
    part_weight_g: 12.0
    material: PP
"""


def on_24_november(hms: str) -> datetime:
    """A time of 24 November 2026 (the day of `one_shift_plant`'s tests), UTC."""
    return datetime.fromisoformat(f"2026-11-24T{hms}+00:00")


def every(start: datetime, end: datetime, step_s: float, offset_s: float = 0.0) -> list[datetime]:
    """start + offset, then every `step_s`, while before `end`."""
    n = math.ceil(((end - start).total_seconds() - offset_s) / step_s)
    return [start + timedelta(seconds=offset_s + k * step_s) for k in range(max(n, 0))]


def figures_equal(a: Figures, b: Figures, tolerance: float = 1e-9) -> bool:
    """Whether two figures hold the same times and counts (floats to `tolerance`)."""
    x, y = a.to_json(), b.to_json()
    if x.keys() != y.keys():
        return False
    for name, value in x.items():
        other = y[name]
        if isinstance(value, dict):
            if value.keys() != other.keys():
                return False
            pairs = [(value[k], other[k]) for k in value]
        else:
            pairs = [(value, other)]
        if any(abs(p - q) > tolerance for p, q in pairs):
            return False
    return True
