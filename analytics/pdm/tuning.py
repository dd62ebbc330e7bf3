"""Choosing an alarm rule on validation data: the most failures warned within the budget."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from analytics.pdm.evaluate import (
    HOUR_US,
    AlarmRule,
    ComponentMetrics,
    Track,
    alarm_active,
    clears,
    episodes,
    event_metrics,
    raised_at,
    running_clock,
)
from analytics.pdm.history import Failure

__all__ = [
    "ScoredTrack",
    "allocate",
    "metrics_for",
    "options",
    "pooled_metrics",
    "rank",
    "rule_levels",
]

# Exceedance shares tried for the raise level; the clear level lets twice as many through.
_EXCEEDANCE = tuple(np.geomspace(2e-4, 0.25, 40).tolist())
# Scores in a row at the raise level tried before raising (half-hourly scores: up to 1 h
# later, for fewer alarms raised by one noisy score).
CONFIRMS = (1, 2, 3)


@dataclass(frozen=True, slots=True)
class ScoredTrack:
    """Scores of one component of one machine over a span, in time order."""

    machine_id: str
    times_us: np.ndarray
    scores: np.ndarray  # -inf while the component is broken (clears the alarm)
    failures: tuple[Failure, ...]
    start_us: int
    end_us: int
    warmup_h: float = 0.0
    # Derived once in __post_init__ (the tuning judges many rules on the same track): before
    # which scores an alarm clears, the scores' times on the machine's running clock, and a
    # Track without alarms whose failures and span are on that clock.
    _clear: np.ndarray = field(init=False, repr=False, compare=False)
    _run: np.ndarray = field(init=False, repr=False, compare=False)
    _empty: Track = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        failures_us = np.array([f.ts_us for f in self.failures], np.int64)
        clock = running_clock(self.times_us)

        def on_clock(us: int) -> int:
            return int(clock(us))

        failures = tuple(
            replace(
                f,
                ts_us=on_clock(f.ts_us),
                restored_us=None if f.restored_us is None else on_clock(f.restored_us),
            )
            for f in self.failures
        )
        empty = Track(
            self.machine_id,
            np.zeros(0, np.int64),
            failures,
            on_clock(self.start_us),
            on_clock(self.end_us),
            warmup_end_us=on_clock(self.start_us + int(self.warmup_h * HOUR_US)),
            weeks=(self.end_us - self.start_us) / HOUR_US / 168.0,
        )
        object.__setattr__(self, "_clear", clears(self.times_us, failures_us))
        object.__setattr__(self, "_run", clock(self.times_us))
        object.__setattr__(self, "_empty", empty)

    def track(self, rule: AlarmRule) -> Track:
        """The alarms `rule` raises on these scores, on the machine's running clock (horizons
        and leads in running hours; false alarms per calendar week)."""
        active = alarm_active(self.scores, rule, self._clear)
        run = self._run
        return replace(self._empty, raised_us=raised_at(run, active), up_us=episodes(run, active))


def metrics_for(
    tracks: Sequence[ScoredTrack],
    rule: AlarmRule,
    rul_errors_h: Sequence[float] = (),
    machine_weeks: float | None = None,
) -> ComponentMetrics:
    """Event-level metrics of `rule` over `tracks`."""
    warmups = {t.warmup_h for t in tracks}
    warmup = warmups.pop() if len(warmups) == 1 else 0.0
    return event_metrics(
        (t.track(rule) for t in tracks),
        warmup_h=warmup,
        rul_errors_h=rul_errors_h,
        machine_weeks=machine_weeks,
    )


def rule_levels(scores: np.ndarray) -> list[AlarmRule]:
    """Candidate rules from the quantiles of `scores` (finite ones), each raising on one
    score or on each count of CONFIRMS in a row."""
    s = scores[np.isfinite(scores)]
    if len(s) == 0:
        return []
    rules = []
    for e in _EXCEEDANCE:
        on = float(np.quantile(s, 1 - e))
        off = float(np.quantile(s, max(0.0, 1 - 2 * e)))
        rules += [AlarmRule(on, min(off, on), confirm=k) for k in CONFIRMS]
    return sorted(set(rules), key=lambda r: (-r.on, r.confirm))


def rank(m: ComponentMetrics | None) -> tuple[float, float, float, float]:
    """Better metrics rank higher: warned >= 2 h, then >= 8 h, then lead, then fewer false."""
    if m is None:
        return (-1.0, -1.0, -1.0, -1.0)
    return (m.warned_2h, m.warned_8h, m.lead_median_h or 0.0, -m.false_alarms)


def pooled_metrics(
    tracks: Sequence[tuple[ScoredTrack, AlarmRule]],
    machine_weeks: float,
    rul_errors_h: Sequence[float] = (),
) -> ComponentMetrics:
    """Metrics of tracks of several components, each with its own rule, over the machines'
    `machine_weeks`."""
    warmups = {t.warmup_h for t, _ in tracks}
    return event_metrics(
        (t.track(rule) for t, rule in tracks),
        warmup_h=warmups.pop() if len(warmups) == 1 else 0.0,
        rul_errors_h=rul_errors_h,
        machine_weeks=machine_weeks,
    )


def options(
    tracks: Sequence[ScoredTrack], rules: Sequence[AlarmRule] | None = None
) -> list[tuple[AlarmRule, ComponentMetrics]]:
    """Each candidate rule (default: from the scores' quantiles) with its metrics."""
    if rules is None:
        scores = np.concatenate([t.scores for t in tracks]) if tracks else np.zeros(0)
        rules = rule_levels(scores)
    return [(r, metrics_for(tracks, r)) for r in rules]


def allocate(
    choices: dict[str, list[tuple[Any, ComponentMetrics]]], max_false: int
) -> dict[str, tuple[Any, ComponentMetrics] | None]:
    """One choice per component (or none: never raise) warning the most failures >= 2 h
    ahead (then >= 8 h) with at most `max_false` false alarms in all: the budget goes where
    it warns most (a multiple-choice knapsack, solved exactly over the false-alarm count)."""
    # best[f]: the best (value, picks) of the components so far with at most f false alarms
    empty: tuple[tuple[int, int], dict[str, int]] = ((0, 0), {})
    best = [empty] * (max_false + 1)
    for comp, opts in choices.items():
        nxt = [(v, dict(p)) for v, p in best]  # "none" for this component
        for f in range(max_false + 1):
            value, picks = best[f]
            for i, (_, m) in enumerate(opts):
                g = f + m.false_alarms
                if g > max_false:
                    continue
                cand = (value[0] + m.warned_2h, value[1] + m.warned_8h)
                if cand > nxt[g][0]:
                    nxt[g] = (cand, {**picks, comp: i})
        # at most f: carry the better of f-1 forward
        for f in range(1, max_false + 1):
            if nxt[f - 1][0] > nxt[f][0]:
                nxt[f] = nxt[f - 1]
        best = nxt
    picks = best[max_false][1]
    return {c: (choices[c][picks[c]] if c in picks else None) for c in choices}
