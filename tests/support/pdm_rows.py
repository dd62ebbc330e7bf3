"""Predictive-maintenance service tests: a machine's rows written straight to the store, and a
small model of the scorer's shape (for tests of the service around a model, never of models)."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from psycopg import AsyncConnection

from analytics.pdm.history import MachineHistory
from analytics.pdm.scorer import Scorer, ScorerSettings

T0 = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
_starts = itertools.count()


def fresh_t0() -> datetime:
    """A start a week after any other test's: the scorer, looking back a day, sees only the
    machines of the test that asked (they share the session's database)."""
    return T0 + timedelta(weeks=next(_starts) + 1)


@dataclass(slots=True)
class Press:
    """One machine and the rows it sends, written straight to the store (as ingest would)."""

    conn: AsyncConnection[Any]
    id: int
    place: str
    seq: int = 0

    @classmethod
    async def new(cls, conn: AsyncConnection[Any], site: str = "pdm") -> Press:
        cur = await conn.execute(
            "INSERT INTO machine (machine_key, site, area, line) VALUES (%s, %s, 'hall', 'l1')"
            " RETURNING id, place",
            (f"imm-{uuid.uuid4().hex[:8]}", site),
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

    async def job(self, at: datetime, name: str, mould: str) -> None:
        await self.conn.execute(
            "INSERT INTO machine_job (time, machine_id, job_name, mould_id, job_status,"
            " active_cavities, nominal_parts, source, seq)"
            " VALUES (%s, %s, %s, %s, 'job_in_production', 1, 1000, 'test', %s)",
            (at, self.id, name, mould, self._next()),
        )

    async def cycles(
        self,
        start: datetime,
        end: datetime,
        cushion: float,
        step_s: float = 60.0,
        job: str | None = None,
    ) -> None:
        """A cycle every `step_s` in [start, end) with CushionVolume `cushion`."""
        rows = []
        t = start
        while t < end:
            n = self._next()
            params = {"CushionVolume": cushion, "InjectionTime": 0.6}
            rows.append((t, self.id, n, "good", 1, 15.0, json.dumps(params), "test", n, job))
            t += timedelta(seconds=step_s)
        async with self.conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO cycle (time, machine_id, shot, quality, parts, cycle_time_s,"
                " parameters, source, seq, job_name) VALUES (%s, %s, %s, %s, %s, %s, %s, %s,"
                " %s, %s)",
                rows,
            )

    async def telemetry(self, signal: str, samples: Sequence[tuple[datetime, float]]) -> None:
        cur = await self.conn.execute(
            "INSERT INTO signal (name) VALUES (%s) ON CONFLICT (name) DO UPDATE"
            " SET name = excluded.name RETURNING id",
            (signal,),
        )
        row = await cur.fetchone()
        assert row is not None
        async with self.conn.cursor() as c:
            await c.executemany(
                "INSERT INTO telemetry (time, machine_id, signal_id, value)"
                " VALUES (%s, %s, %s, %s)",
                [(t, self.id, row[0], v) for t, v in samples],
            )


@dataclass(frozen=True, slots=True)
class FakeEvidence:
    feature: str
    value: float
    baseline: float
    text: str


@dataclass(frozen=True, slots=True)
class FakePrediction:
    machine_id: str
    component: str
    ts_us: int
    p_8h: float
    p_24h: float
    rul_h: float
    rul_low_h: float
    rul_high_h: float
    alarm: bool
    evidence: tuple[FakeEvidence, ...]


@dataclass(slots=True)
class CushionModel:
    """Of the scorer's model shape: the check ring warns while the last hour's mean cushion
    is under 4 mm; the ejector never warns. Only for tests of the service around a model."""

    name: str = "cushion-test"
    card: dict[str, Any] = field(default_factory=lambda: {"name": "cushion-test", "test": True})
    components: tuple[str, ...] = ("check_ring", "ejector")
    reason_of: dict[str, str] = field(
        default_factory=lambda: {"check_ring": "check_ring_failure", "ejector": "ejector_failure"}
    )
    scored: list[tuple[str, int]] = field(default_factory=list)  # (machine, at_us) per call

    def predict(self, history: MachineHistory, at_us: int) -> list[FakePrediction]:
        self.scored.append((history.machine_id, at_us))
        ts = history.cycles["ts"]
        recent = history.cycles["CushionVolume"][ts > at_us - 3_600_000_000]
        cushion = float(np.mean(recent)) if len(recent) else 5.0
        low = cushion < 4.0
        evidence = (FakeEvidence("cushion", cushion, 5.0, f"cushion {cushion:.2f} mm"),)
        return [
            FakePrediction(history.machine_id, "check_ring", at_us, 0.9 if low else 0.05,
                           0.95 if low else 0.1, 6.0 if low else 200.0, 2.0, 400.0, low, evidence),
            FakePrediction(history.machine_id, "ejector", at_us, 0.01, 0.02, 300.0, 100.0,
                           500.0, False, ()),
        ]  # fmt: skip


async def running_press(
    conn: AsyncConnection[Any], start: datetime, hours: float = 2.0, cushion: float = 3.0
) -> Press:
    """A new press running from `start`, with `hours` of cycles at `cushion` mm."""
    press = await Press.new(conn)
    await press.state(start, "running")
    await press.cycles(start, start + timedelta(hours=hours), cushion=cushion)
    return press


async def scored_site(db: AsyncConnection[Any]) -> tuple[str, Press, Press, int, datetime]:
    """Two presses of a site of their own, one with a low cushion (an alert), scored: the
    site, the worn press, the fine one, the worn one's alert and the first time scored."""
    T0 = fresh_t0()
    site = f"pdm-{uuid.uuid4().hex[:6]}"
    worn, fine = await Press.new(db, site), await Press.new(db, site)
    for press, cushion in ((worn, 3.0), (fine, 5.0)):
        await press.state(T0, "running")
        await press.cycles(T0, T0 + timedelta(hours=2), cushion=cushion)
    model = CushionModel(name=f"cushion-{site}")
    scorer = Scorer(model, ScorerSettings(lookback_h=24.0))
    result = await scorer.score(db, T0 + timedelta(hours=2))
    (alert_id,) = [
        a for a in result.opened
        if (await (await db.execute("SELECT machine_id FROM pdm_alert WHERE id = %s", (a,)))
            .fetchone()) == (worn.id,)
    ]  # fmt: skip
    return site, worn, fine, alert_id, T0
