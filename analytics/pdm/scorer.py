"""The scoring service (`moldlab pdm score`): follows the database, writes predictions and alerts.

Every `interval_s` a pass scores each machine with a cycle in the last `recent_s`, at the
wall-clock time: its history comes from the database (analytics.pdm.store_reader, read
incrementally), the model predicts per component, and in one transaction the pass replaces
the newest predictions, adds to the bounded history (one row per machine and component
every `history_every_s`, older than `history_days` pruned) and applies the alert state
machine (analytics.pdm.alerts). Alerts live in the database only, so a restart, or a
second scorer on the same database, goes on from there: the partial unique index lets one
alert per machine and component be open, and an alert event is logged by the scorer whose
statement changed the row, after its commit (one line each: opened, closed).

When the database goes away the scorer logs one line, retries with jittered exponential
backoff (0.5 s doubling to 30 s) and logs one line when it is back; a pass that failed
half-way wrote nothing (its transaction rolled back) and is simply done again. A pass the
database refuses (any other database error) is logged once, done again every interval, and
its recovery logged once: the service never ends on it.

Hostile or broken input costs only the machine it comes from: a machine whose history cannot
be read or scored (a failed read, a model error) is skipped for the pass and its buffers are
dropped; a prediction that is not finite is not written (the tables and the API carry
numbers, never NaN); values the reader read as missing (NaN, infinite, beyond ±1e12) are
counted. Each of these is logged once when it starts for a machine and once when the machine
is fine again, not on every pass. At most `max_machines` machines are scored per pass (a flood
of new machine ids cannot make a pass unbounded): those followed in the last pass keep their
place, then those with a prediction history (so a restart during a flood keeps them too), then
new ones by place; one line says how many were left out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import psycopg
from psycopg import AsyncConnection
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # no stubs

from analytics.pdm.alerts import (
    CLEAR_AFTER_H,
    ActiveAlert,
    Alarm,
    Close,
    Open,
    Seen,
    decide,
    stops,
)
from analytics.pdm.history import LOOKBACK_H, MachineHistory
from analytics.pdm.store_reader import BREAKDOWN_REASONS, StoreReader
from store import SchemaNotReady
from store.backoff import Backoff
from store.maintenance import (
    AlertRow,
    PredictionRow,
    active_alerts,
    alarm_seen,
    close_alert,
    history_times,
    open_alert,
    prune_history,
    record_model,
    write_history,
    write_latest,
)

__all__ = ["Model", "PassResult", "Scorer", "ScorerSettings"]

log = logging.getLogger("analytics.pdm.scorer")

_LINE_MAX = 300  # characters of one log line's variable part
_SUMMARY_EVERY_S = 3600.0


class EvidenceLike(Protocol):
    @property
    def feature(self) -> str: ...
    @property
    def value(self) -> float: ...
    @property
    def baseline(self) -> float: ...
    @property
    def text(self) -> str: ...


class PredictionLike(Protocol):
    @property
    def component(self) -> str: ...
    @property
    def ts_us(self) -> int: ...
    @property
    def p_8h(self) -> float: ...
    @property
    def p_24h(self) -> float: ...
    @property
    def rul_h(self) -> float: ...
    @property
    def rul_low_h(self) -> float: ...
    @property
    def rul_high_h(self) -> float: ...
    @property
    def alarm(self) -> bool: ...
    @property
    def evidence(self) -> Sequence[EvidenceLike]: ...


class Model(Protocol):
    """What the scorer needs of a model (analytics.pdm.model.PdmModel has it)."""

    @property
    def name(self) -> str: ...
    @property
    def card(self) -> dict[str, Any]: ...
    @property
    def components(self) -> tuple[str, ...]: ...
    def predict(self, history: MachineHistory, at_us: int) -> Sequence[PredictionLike]: ...


@dataclass(frozen=True, slots=True)
class ScorerSettings:
    interval_s: float = 60.0
    recent_s: float = 900.0  # a machine with a cycle this recent is scored
    history_every_s: float = 600.0
    history_days: float = 7.0
    clear_after_h: float = CLEAR_AFTER_H
    lookback_h: float = LOOKBACK_H
    max_machines: int = 1000  # scored per pass at most; the rest are logged as left out


@dataclass(frozen=True, slots=True)
class PassResult:
    at: datetime
    machines: int  # scored
    predictions: int
    opened: tuple[int, ...]
    closed: tuple[int, ...]
    cpu_s: float
    wall_s: float
    skipped: tuple[int, ...] = ()  # machine ids not scored for bad data or a model error
    left_out: int = 0  # machines with recent cycles beyond max_machines


@dataclass(slots=True)
class ScorerCounts:
    """What the scorer has done since it started (its Prometheus metrics read these)."""

    passes: int = 0
    failed_passes: int = 0
    predictions: int = 0
    alerts_opened: int = 0
    alerts_closed: int = 0
    machines: int = 0  # scored in the last pass
    database_connected: bool = False


@dataclass(frozen=True, slots=True)
class _Event:
    """An alert event, logged once its transaction committed."""

    kind: str  # opened | closed
    alert_id: int
    text: str


@dataclass(slots=True)
class _Pass:
    latest: list[PredictionRow] = field(default_factory=list)
    history: list[PredictionRow] = field(default_factory=list)
    opens: list[tuple[str, PredictionRow, PredictionLike]] = field(default_factory=list)
    seen: list[tuple[int, datetime]] = field(default_factory=list)
    closes: list[tuple[str, str, Close]] = field(default_factory=list)


_FOLLOWED = """
SELECT m.id, m.place, c.time FROM machine m
CROSS JOIN LATERAL (
    SELECT k.time FROM cycle k WHERE k.machine_id = m.id AND k.time <= %(now)s
    ORDER BY k.time DESC LIMIT 1
) c
WHERE c.time >= %(since)s
ORDER BY m.place
"""


def _us(at: datetime) -> int:
    return (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _dt(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


def _short(text: str, limit: int = _LINE_MAX) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _row(machine_id: int, model: str, p: PredictionLike) -> PredictionRow:
    """The row to write; ValueError when a number of it is not finite (JSON has no NaN)."""
    numbers = {name: float(getattr(p, name)) for name in _NUMBERS}
    wrong = [f"{name}={value}" for name, value in numbers.items() if not math.isfinite(value)]
    if wrong:
        raise ValueError(f"the model gave {p.component} non-finite {', '.join(wrong)}")
    return PredictionRow(
        machine_id=machine_id,
        component=p.component,
        time=_dt(p.ts_us),
        p_8h=min(max(numbers["p_8h"], 0.0), 1.0),
        p_24h=min(max(numbers["p_24h"], 0.0), 1.0),
        rul_h=numbers["rul_h"],
        rul_low_h=numbers["rul_low_h"],
        rul_high_h=numbers["rul_high_h"],
        alarm=bool(p.alarm),
        evidence=[
            {
                "feature": e.feature,
                "value": _finite(e.value),
                "baseline": _finite(e.baseline),
                "text": e.text,
            }
            for e in p.evidence
        ],
        model=model,
    )


_NUMBERS = ("p_8h", "p_24h", "rul_h", "rul_low_h", "rul_high_h")


def _finite(x: float) -> float | None:
    """JSON has no NaN: an unknown value is null."""
    x = float(x)
    return x if x == x and abs(x) != float("inf") else None


class Scorer:
    """Scores machines with `model` pass after pass; one per process (see `run`)."""

    def __init__(
        self,
        model: Model,
        settings: ScorerSettings | None = None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.model = model
        self.settings = settings or ScorerSettings()
        self._clock = clock
        # The model's own component -> breakdown reason map, where it has one.
        self._reasons: dict[str, str] = dict(getattr(model, "reason_of", None) or BREAKDOWN_REASONS)
        self.reader = StoreReader(self.settings.lookback_h, breakdown_reasons=self._reasons)
        self._history_at: dict[tuple[int, str], datetime] = {}
        self._places: dict[int, str] = {}  # machine id -> place, of the machines followed
        self._pruned_at: datetime | None = None
        self._started = False
        self._trouble: dict[int, str] = {}  # machine id -> what is wrong, logged once
        self._left_out = 0  # machines beyond max_machines at the last pass, logged on change
        self._known: frozenset[int] = frozenset()  # machines with a prediction history at start
        self.counts = ScorerCounts()  # since start, for the scorer's metrics

    async def start(self, conn: AsyncConnection[Any]) -> None:
        """Make this scorer's model the one in force; pick up where the history stopped."""
        try:
            async with conn.transaction():
                await record_model(conn, self.model.name, self.model.card)
        except psycopg.errors.UndefinedTable as exc:
            raise SchemaNotReady(
                "the database has no predictive-maintenance tables: run moldlab db upgrade"
            ) from exc
        self._history_at = await history_times(conn)
        self._known = frozenset(m for m, _ in self._history_at)
        self._started = True

    async def score(self, conn: AsyncConnection[Any], now: datetime | None = None) -> PassResult:
        """One pass at `now` (default the clock): read, predict, write in one transaction."""
        cpu0, wall0 = time.process_time(), time.monotonic()
        if not self._started:
            await self.start(conn)
        now = now or self._clock()
        s = self.settings
        cur = await conn.execute(
            _FOLLOWED, {"now": now, "since": now - timedelta(hours=s.lookback_h)}
        )
        followed = self._cap([(int(i), str(p), t) for i, p, t in await cur.fetchall()])
        kept = {m for m, _, _ in followed}
        for gone in (self.reader.machines | set(self._places)) - kept:
            self._forget(gone)
        self._history_at = {k: v for k, v in self._history_at.items() if k[0] in kept}
        for gone in set(self._trouble) - kept:
            del self._trouble[gone]
        self._places.update((m, p) for m, p, _ in followed)
        alerts = {(a.machine_id, a.component): a for a in await active_alerts(conn)}
        work = _Pass()
        scored = 0
        skipped: list[int] = []
        # One row at a time, OpenMP's threads cost far more than they save: with them,
        # scikit-learn's gradient boosting took 15 times the CPU per machine (moldlab bench pdm).
        with threadpool_limits(limits=1, user_api="openmp"):
            for machine_id, place, newest in followed:
                try:
                    history = await self.reader.history(conn, machine_id, place, now)
                    rows: dict[str, tuple[PredictionLike, PredictionRow]] = {}
                    if newest >= now - timedelta(seconds=s.recent_s):
                        rows = {
                            p.component: (p, _row(machine_id, self.model.name, p))
                            for p in self.model.predict(history, _us(now))
                        }
                        scored += 1
                except psycopg.Error as exc:
                    if not isinstance(exc, (psycopg.DataError, psycopg.NotSupportedError)):
                        raise  # the database's trouble (lost, no schema), not the machine's
                    self._skip(skipped, machine_id, place, exc)
                    continue
                except Exception as exc:  # one machine's data or prediction, not the pass's
                    self._skip(skipped, machine_id, place, exc)
                    continue
                rejected = self.reader.last_rejected
                self._note(machine_id, place, (
                    f"{rejected} values out of range (NaN, infinite or beyond ±1e12) read as"
                    " missing" if rejected else None
                ))  # fmt: skip
                self._plan(work, machine_id, place, history, rows, alerts)
        events = await self._write(conn, work, now)
        for event in events:
            log.info("%s", event.text)
        result = PassResult(
            at=now,
            machines=scored,
            predictions=len(work.latest),
            opened=tuple(e.alert_id for e in events if e.kind == "opened"),
            closed=tuple(e.alert_id for e in events if e.kind == "closed"),
            cpu_s=time.process_time() - cpu0,
            wall_s=time.monotonic() - wall0,
            skipped=tuple(skipped),
            left_out=self._left_out,
        )
        self._count(result)
        return result

    def _count(self, result: PassResult) -> None:
        counts = self.counts
        counts.passes += 1
        counts.predictions += result.predictions
        counts.alerts_opened += len(result.opened)
        counts.alerts_closed += len(result.closed)
        counts.machines = result.machines

    def _cap(self, followed: list[tuple[int, str, datetime]]) -> list[tuple[int, str, datetime]]:
        """At most max_machines: those followed, then those known, then new ones, by place."""
        limit = self.settings.max_machines
        left_out = max(len(followed) - limit, 0)
        if left_out:
            followed = sorted(
                followed, key=lambda f: (f[0] not in self._places, f[0] not in self._known, f[1])
            )[:limit]
            followed.sort(key=lambda f: f[1])
        if (left_out > 0) != (self._left_out > 0):
            if left_out:
                log.warning(
                    "%d machines have cycles in the last %g h, more than max_machines %d:"
                    " %d left out (those followed or scored before first, then by place)",
                    limit + left_out, self.settings.lookback_h, limit, left_out,
                )  # fmt: skip
            else:
                log.warning("no more than max_machines %d machines: none left out", limit)
        self._left_out = left_out
        return followed

    def _skip(self, skipped: list[int], machine_id: int, place: str, exc: Exception) -> None:
        """The machine is not scored this pass; it is read afresh in the next."""
        skipped.append(machine_id)
        self._forget(machine_id)
        self._note(machine_id, place, f"not scored: {type(exc).__name__}: {exc}")

    def _forget(self, machine_id: int) -> None:
        """Drop what is kept of a machine: it is read afresh if it comes back."""
        self.reader.forget(machine_id)
        place = self._places.pop(machine_id, None)
        forget = getattr(self.model, "forget", None)  # what the model keeps of it
        if forget is not None and place is not None:
            forget(place)

    def _note(self, machine_id: int, place: str, trouble: str | None) -> None:
        """Log a machine's trouble once when it starts (or changes kind), once when it ends."""
        was = self._trouble.get(machine_id)
        if trouble is None:
            if was is not None:
                del self._trouble[machine_id]
                log.info("%s", _short(f"{place}: scored normally again"))
            return
        kind = trouble.split(":", 1)[0] if trouble.startswith("not scored") else "values"
        if was != kind:
            self._trouble[machine_id] = kind
            log.warning("%s", _short(f"{place}: {trouble}"))

    def _plan(
        self,
        work: _Pass,
        machine_id: int,
        place: str,
        history: MachineHistory,
        rows: dict[str, tuple[PredictionLike, PredictionRow]],
        alerts: dict[tuple[int, str], AlertRow],
    ) -> None:
        """Rows to write and alert decisions for one machine."""
        every = timedelta(seconds=self.settings.history_every_s)
        for component in self.model.components:
            p, row = rows.get(component, (None, None))
            if row is not None:
                work.latest.append(row)
                last = self._history_at.get((machine_id, component))
                if last is None or row.time >= last + every:
                    work.history.append(row)
            active = alerts.get((machine_id, component))
            decision = decide(
                None if active is None else ActiveAlert(
                    active.id, _us(active.opened_at), _us(active.last_alarm_at)
                ),
                None if p is None else Alarm(p.ts_us, bool(p.alarm)),
                stops(component, history.states, self._reasons),
                self.settings.clear_after_h,
            )  # fmt: skip
            if isinstance(decision, Open) and row is not None and p is not None:
                work.opens.append((place, row, p))
            elif isinstance(decision, Seen) and row is not None:
                work.seen.append((decision.alert_id, row.time))
            elif isinstance(decision, Close):
                work.closes.append((place, component, decision))

    async def _write(self, conn: AsyncConnection[Any], work: _Pass, now: datetime) -> list[_Event]:
        """Write the pass in one transaction; the alert events it made, to log after commit."""
        events: list[_Event] = []
        async with conn.transaction():
            await write_latest(conn, work.latest)
            await write_history(conn, work.history)
            for alert_id, at in work.seen:
                await alarm_seen(conn, alert_id, at)
            for place, component, close in work.closes:
                if await close_alert(conn, close.alert_id, _dt(close.at_us), close.reason):
                    events.append(_Event("closed", close.alert_id, _short(
                        f"alert {close.alert_id} closed ({close.reason}): {place} {component}"
                        f" at {_dt(close.at_us):%Y-%m-%d %H:%M:%S}Z"
                    )))  # fmt: skip
            for place, row, p in work.opens:
                opened = await open_alert(conn, row)
                if opened is not None:
                    why = p.evidence[0].text if p.evidence else "no evidence given"
                    events.append(_Event("opened", opened, _short(
                        f"alert {opened} opened: {place} {row.component}: p(fail 8 h)"
                        f" {row.p_8h:.2f}, p(fail 24 h) {row.p_24h:.2f}, RUL {row.rul_h:.0f} h;"
                        f" {why}"
                    )))  # fmt: skip
            pruned = 0
            if self._pruned_at is None or now - self._pruned_at >= timedelta(hours=1):
                keep = now - timedelta(days=self.settings.history_days)
                pruned = await prune_history(conn, keep)
        for row in work.history:
            self._history_at[(row.machine_id, row.component)] = row.time
        if pruned or self._pruned_at is None or now - self._pruned_at >= timedelta(hours=1):
            self._pruned_at = now
        return events

    async def run(self, database_url: str, stop: asyncio.Event) -> None:
        """Pass after pass until `stop` is set, through database outages."""
        backoff = Backoff()
        lost_at: float | None = None
        summary_at = time.monotonic()
        passes, cpu_s, opened, closed = 0, 0.0, 0, 0
        first = True
        refused: str | None = None  # why passes fail, while they do
        while not stop.is_set():
            try:
                async with await AsyncConnection.connect(
                    database_url, autocommit=True, connect_timeout=5
                ) as conn:
                    await self.start(conn)
                    self.counts.database_connected = True
                    if lost_at is not None:
                        log.warning(
                            "database back after %.0f s: scoring again",
                            time.monotonic() - lost_at,
                        )
                        lost_at = None
                    backoff.reset()
                    while not stop.is_set():
                        started = time.monotonic()
                        result = await self.score(conn)
                        if refused is not None:
                            log.warning("passes are written again")
                            refused = None
                        passes += 1
                        cpu_s += result.cpu_s
                        opened += len(result.opened)
                        closed += len(result.closed)
                        if first or time.monotonic() - summary_at >= _SUMMARY_EVERY_S:
                            first = False
                            log.info(
                                "scored %d machines (%d predictions) in %.2f s; since the last"
                                " such line: %d passes, %.1f s CPU, %d alerts opened, %d closed",
                                result.machines, result.predictions, result.wall_s,
                                passes, cpu_s, opened, closed,
                            )  # fmt: skip
                            summary_at = time.monotonic()
                            passes, cpu_s, opened, closed = 0, 0.0, 0, 0
                        wait_s = self.settings.interval_s - (time.monotonic() - started)
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), max(wait_s, 0.0))
            except psycopg.OperationalError as exc:
                self.counts.database_connected = False
                self.counts.failed_passes += 1
                if lost_at is None:
                    log.warning(
                        "database lost: %s; retrying with backoff (0.5 s doubling to 30 s)",
                        _short(str(exc), 200),
                    )
                    lost_at = time.monotonic()
                await backoff.wait(stop)
            except psycopg.Error as exc:  # refused, not lost: nothing of the pass was written
                self.counts.failed_passes += 1
                if refused is None:
                    why = f"{type(exc).__name__}: {exc}"
                    log.error("%s", _short(
                        f"a pass failed, nothing of it written; done again every"
                        f" {self.settings.interval_s:g} s: {why}"
                    ))  # fmt: skip
                refused = type(exc).__name__
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.settings.interval_s)
