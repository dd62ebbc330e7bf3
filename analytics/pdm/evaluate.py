"""The alarm rule and event-level metrics: what an engineer on the floor would count.

Horizons and leads are counted in *running hours*: wall-clock hours with the machine's
standstills longer than GAP_H left out (a night with no shift, a weekend, a long stop; see
`running_clock`). A press standing still does not wear: a pump warned on Friday evening that
fails two hours after Monday's start was warned 2 h + Friday's last hours ahead, not 50 h.
False alarms are counted per calendar machine-week.

An alarm is raised when a score reaches the rule's `on` level (on `confirm` scores in a row:
one score over the level is often noise) and stays raised until the score falls below `off`
(hysteresis: one alarm per episode, not one per score), or until the component breaks.
Per component, over every machine:

- an alarm is *true* when that component fails within `horizon_h` after it was raised, and a
  *false alarm* otherwise; an alarm still raised `horizon_h` after it was raised counts as
  raised anew (it makes the same claim again); an alarm raised less than `horizon_h` before
  the end of the data with no failure yet is not counted either way (its outcome unknown);
- a failure is *warned* when an alarm was raised within `horizon_h` before it and after the
  previous repair of that component, or when an alarm raised after that repair was still up
  when it failed (an engineer had it on screen: raised 25 h before, it was a false claim at
  first, but it warned); its lead is the time from the first such alarm to the failure, at
  most `horizon_h`. Recall at 2 h / 8 h: the share of failures warned with at least that lead.
- wear failures (which give warning) and sudden ones are counted apart; failures in the first
  `warmup_h` of the data (no history to judge from) are left out and counted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from analytics.pdm.history import Failure

__all__ = [
    "AlarmRule",
    "ComponentMetrics",
    "Track",
    "alarm_active",
    "clears",
    "episodes",
    "event_metrics",
    "raised_at",
    "running_clock",
]

HOUR_US = 3_600_000_000
WEEK_H = 168.0
RENEW_H = 24.0  # an alarm still raised this long after it was raised is raised anew
GAP_H = 4.0  # a pause in the scores this long clears an alarm


@dataclass(frozen=True, slots=True)
class AlarmRule:
    """Raise when `confirm` scores in a row (without a pause or a failure between them) reach
    `on`, clear below `off` (off <= on); for a model, on its `score` (a key of
    ComponentModel.scores: p_24h, or p_near = sqrt(p_8h x p_24h)). The tuning's scores are
    half-hourly: the scoring service, which scores more often, raises when the score has
    stayed at `on` or above for (confirm - 1) x 30 min."""

    on: float
    off: float
    score: str = "p_24h"
    confirm: int = 1

    def to_json(self) -> dict[str, float | str | int]:
        return {"on": self.on, "off": self.off, "score": self.score, "confirm": self.confirm}

    def __setstate__(self, state: Sequence[Any]) -> None:
        # A rule pickled before `confirm` existed raised on one score.
        values = (*state, 1) if len(state) == 3 else tuple(state)
        for name, value in zip(("on", "off", "score", "confirm"), values, strict=True):
            object.__setattr__(self, name, value)


def alarm_active(
    scores: np.ndarray, rule: AlarmRule, clear_before: np.ndarray | None = None
) -> np.ndarray:
    """Whether the alarm is raised at each score; NaN keeps the state, -inf clears it.

    clear_before[i]: the alarm is cleared before score i is judged (the component broke,
    or the machine stood still for long, since the score before); it also restarts the count
    of scores in a row at or above `on` that the rule's `confirm` asks for.
    """
    n = len(scores)
    if n == 0:
        return np.zeros(0, bool)
    idx = 2 * np.arange(n)
    with np.errstate(invalid="ignore"):
        sets = scores >= rule.on
        resets = scores < rule.off  # NaN is neither: the state holds
    if rule.confirm > 1:
        sets &= _in_a_row(sets, clear_before) >= rule.confirm
    events_reset = np.where(resets, idx, -1)
    if clear_before is not None:
        events_reset = np.maximum(events_reset, np.where(clear_before, idx - 1, -1))
    last_set = np.maximum.accumulate(np.where(sets, idx, -1))
    last_reset = np.maximum.accumulate(events_reset)
    return np.asarray(last_set > last_reset)


def _in_a_row(hits: np.ndarray, restart: np.ndarray | None) -> np.ndarray:
    """At each position, how many of the hits up to it came in a row (0 on a miss); a
    `restart` position starts a new row."""
    i = np.arange(len(hits))
    before = np.where(hits, -1, i)  # the last miss at or before each position
    if restart is not None:
        before = np.maximum(before, np.where(restart & hits, i - 1, -1))
    return np.asarray(i - np.maximum.accumulate(before))


def clears(times_us: np.ndarray, failures_us: np.ndarray) -> np.ndarray:
    """Before which scores an alarm clears: after a pause of more than GAP_H (the machine
    stood still: the next score judges afresh, as the scoring service does after a weekend)
    or a failure of the component since the score before."""
    n = len(times_us)
    out = np.zeros(n, bool)
    if n > 1:
        out[1:] = np.diff(times_us) > GAP_H * HOUR_US
        if len(failures_us):
            k = np.searchsorted(np.sort(failures_us), times_us, side="left")
            out[1:] |= k[1:] > k[:-1]
    return out


def running_clock(times_us: np.ndarray) -> Callable[[Any], np.ndarray]:
    """The running clock of one machine whose scores are at `times_us` (sorted, µs): a map of
    wall-clock µs to running µs, where a pause of more than GAP_H between two scores counts
    as one scoring step (the median step) and any other pause as it is. Beyond the last
    score (or in a pause) the clock runs for at most that step; before the first it runs as
    the wall clock. Non-decreasing, so order and "before" are kept."""
    t = np.asarray(times_us, dtype=np.int64)
    if len(t) < 2:
        return lambda x: np.asarray(x, dtype=np.int64)
    gaps = np.diff(t)
    step = int(np.median(gaps))
    kept = np.where(gaps > GAP_H * HOUR_US, np.minimum(gaps, step), gaps)
    run = np.concatenate(([0], np.cumsum(kept))) + t[0]
    advance = np.append(kept, step)  # the running time after each score

    def to_running(x: Any) -> np.ndarray:
        x = np.asarray(x, dtype=np.int64)
        k = np.searchsorted(t, x, side="right") - 1
        kk = np.clip(k, 0, len(t) - 1)
        after = np.minimum(x - t[kk], advance[kk])
        return np.asarray(np.where(k < 0, x, run[kk] + after), dtype=np.int64)

    return to_running


def _runs(active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first and the last index of each run of True in `active`."""
    prev = np.concatenate(([False], active[:-1]))
    nxt = np.concatenate((active[1:], [False]))
    return np.flatnonzero(active & ~prev), np.flatnonzero(active & ~nxt)


def raised_at(
    times_us: np.ndarray, active: np.ndarray, renew_h: float | None = RENEW_H
) -> np.ndarray:
    """The times at which an alarm was raised (rising edges), and renewed.

    An alarm says "this component fails within the horizon"; one still raised a horizon
    later says it again: it counts as raised anew then (and the first one, if nothing
    failed, as a false alarm). `renew_h` None: rising edges only.
    """
    times_us = np.asarray(times_us)
    starts, ends = _runs(active)
    if renew_h is None or len(starts) == 0:
        return np.asarray(times_us[starts])
    renew_us = int(renew_h * HOUR_US)
    out: list[int] = []
    for a, z in zip(starts.tolist(), ends.tolist(), strict=True):
        t = int(times_us[a])
        out.append(t)
        while True:
            k = int(np.searchsorted(times_us, t + renew_us, side="left"))
            if k > z:
                break
            t = int(times_us[k])
            out.append(t)
    return np.array(out, dtype=times_us.dtype)


def episodes(times_us: np.ndarray, active: np.ndarray) -> np.ndarray:
    """(raised, cleared) times of each episode of an alarm, shape (k, 2).

    An alarm is up from its rising edge until the first score that clears it (a score below
    the rule's `off`, or the first score after the component broke), and at most GAP_H past
    its last raised score: a machine that stands still longer is judged afresh.
    """
    times_us = np.asarray(times_us, dtype=np.int64)
    starts, lasts = _runs(active)
    after = np.append(times_us, np.iinfo(np.int64).max)[lasts + 1]
    ends = np.minimum(after, times_us[lasts] + int(GAP_H * HOUR_US))
    return np.stack([times_us[starts], ends], axis=1)


@dataclass(frozen=True, slots=True)
class Track:
    """The alarms of one component of one machine over the span of the data."""

    machine_id: str
    raised_us: np.ndarray  # rising edges (and renewals), sorted
    failures: tuple[Failure, ...]  # this component's on this machine (any time)
    start_us: int  # the span scored: failures and alarms outside it are not counted
    end_us: int
    up_us: np.ndarray | None = None  # (raised, cleared) per episode: see `episodes`
    # All times above may be on a running clock (see `running_clock`); then these two say
    # where the warm-up ends on that clock and how many calendar weeks the span has.
    warmup_end_us: int | None = None  # default: start_us + the warm-up
    weeks: float | None = None  # default: the span in weeks


@dataclass(frozen=True, slots=True)
class ComponentMetrics:
    wear_failures: int
    warned_2h: int
    warned_8h: int
    recall_2h: float | None
    recall_8h: float | None
    lead_median_h: float | None
    lead_q1_h: float | None
    lead_q3_h: float | None
    alarms: int
    false_alarms: int
    machine_weeks: float
    false_alarms_per_machine_week: float | None
    sudden_failures: int
    sudden_warned_2h: int
    warmup_failures: int
    rul_mae_h: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _track_counts(
    tr: Track, horizon_us: int, warmup_us: int
) -> tuple[list[float], int, int, int, int, int, int]:
    """leads of warned wear failures, wear, sudden, sudden warned 2 h, warm-up, alarms, false."""
    fails = sorted(tr.failures, key=lambda f: f.ts_us)
    fts = np.array([f.ts_us for f in fails], dtype=np.int64)
    leads: list[float] = []
    wear = sudden = sudden_warned = warmup = 0
    prev_restore = tr.start_us
    for f in fails:
        repaired = prev_restore
        lo = max(repaired, f.ts_us - horizon_us)
        prev_restore = f.restored_us if f.restored_us is not None else tr.end_us
        if f.ts_us < tr.start_us or f.ts_us > tr.end_us:
            continue  # outside the span scored (its repair still bounds the next one)
        if f.ts_us < (tr.start_us + warmup_us if tr.warmup_end_us is None else tr.warmup_end_us):
            warmup += 1
            continue
        a, z = np.searchsorted(tr.raised_us, [lo, f.ts_us])
        lead_h = (f.ts_us - int(tr.raised_us[a])) / HOUR_US if z > a else None
        if tr.up_us is not None:
            # An alarm raised after the previous repair and still up when it failed.
            up = (tr.up_us[:, 0] >= repaired) & (tr.up_us[:, 0] < f.ts_us)
            up &= tr.up_us[:, 1] >= f.ts_us
            if up.any():
                since = max(int(tr.up_us[up, 0].min()), lo)
                lead_h = max(lead_h or 0.0, (f.ts_us - since) / HOUR_US)
        if f.mode == "sudden":
            sudden += 1
            sudden_warned += int(lead_h is not None and lead_h >= 2)
        else:
            wear += 1
            if lead_h is not None:
                leads.append(lead_h)
    alarms = false = 0
    for s in tr.raised_us.tolist():
        k = int(np.searchsorted(fts, s, side="right"))
        true = k < len(fts) and fts[k] <= s + horizon_us
        if not true and s + horizon_us > tr.end_us:
            continue  # outcome unknown: the data end before the horizon
        alarms += 1
        false += int(not true)
    return leads, wear, sudden, sudden_warned, warmup, alarms, false


def event_metrics(
    tracks: Iterable[Track],
    *,
    horizon_h: float = 24.0,
    warmup_h: float = 24.0,
    rul_errors_h: Sequence[float] = (),
    machine_weeks: float | None = None,
) -> ComponentMetrics:
    """Event-level metrics of one component over `tracks` (one per machine).

    Tracks of several components give their metrics together; then pass the machines'
    `machine_weeks`, else each track's span counts as a machine's.
    """
    horizon_us, warmup_us = int(horizon_h * HOUR_US), int(warmup_h * HOUR_US)
    leads: list[float] = []
    wear = sudden = sudden_warned = warmup = alarms = false = 0
    weeks = 0.0
    for tr in tracks:
        lt, w, s, sw, wu, al, fa = _track_counts(tr, horizon_us, warmup_us)
        leads += lt
        wear, sudden, sudden_warned, warmup = wear + w, sudden + s, sudden_warned + sw, warmup + wu
        alarms, false = alarms + al, false + fa
        weeks += (tr.end_us - tr.start_us) / HOUR_US / WEEK_H if tr.weeks is None else tr.weeks
    if machine_weeks is not None:
        weeks = machine_weeks
    lead = np.array(leads)
    w2, w8 = int((lead >= 2).sum()), int((lead >= 8).sum())
    warned = lead[lead >= 0]
    return ComponentMetrics(
        wear_failures=wear,
        warned_2h=w2,
        warned_8h=w8,
        recall_2h=w2 / wear if wear else None,
        recall_8h=w8 / wear if wear else None,
        lead_median_h=float(np.median(warned)) if len(warned) else None,
        lead_q1_h=float(np.percentile(warned, 25)) if len(warned) else None,
        lead_q3_h=float(np.percentile(warned, 75)) if len(warned) else None,
        alarms=alarms,
        false_alarms=false,
        machine_weeks=weeks,
        false_alarms_per_machine_week=false / weeks if weeks > 0 else None,
        sudden_failures=sudden,
        sudden_warned_2h=sudden_warned,
        warmup_failures=warmup,
        rul_mae_h=float(np.mean(np.abs(rul_errors_h))) if len(rul_errors_h) else None,
    )
