"""The baseline every model is measured against: the best single-signal threshold.

Per component one feature, one direction and one alarm rule (with the model's hysteresis),
chosen by the same event-level search and alarm budget as the model's own threshold.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from analytics.pdm.evaluate import AlarmRule, ComponentMetrics
from analytics.pdm.features import FEATURE_NAMES
from analytics.pdm.tuning import ScoredTrack, options, rank

__all__ = ["CANDIDATES", "BaselineRule", "baseline_options"]

CANDIDATES = 12  # features (the most separating on the training rows) given the full search


@dataclass(frozen=True, slots=True)
class BaselineRule:
    """Alarm when `sign` x feature reaches the rule's levels."""

    feature: str
    sign: float  # +1: high values warn; -1: low values warn
    rule: AlarmRule

    def scores(self, X: np.ndarray, names: Sequence[str] = FEATURE_NAMES) -> np.ndarray:
        return np.asarray(self.sign * X[:, list(names).index(self.feature)], dtype=np.float64)

    def to_json(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "direction": "high" if self.sign > 0 else "low",
            "on": self.sign * self.rule.on,
            "off": self.sign * self.rule.off,
            "confirm": self.rule.confirm,
        }


def baseline_options(
    X: np.ndarray,
    strength: np.ndarray,
    tracks_of: Callable[[np.ndarray], Sequence[ScoredTrack]],
    names: Sequence[str] = FEATURE_NAMES,
    candidates: int = CANDIDATES,
) -> list[tuple[BaselineRule, ComponentMetrics]]:
    """Candidate baselines: per count of false alarms the best feature, direction and levels.

    X: the rows to tune on; strength: per feature how well it separated failing from healthy
    on the training rows (the `candidates` strongest are searched, both directions);
    tracks_of(scores): the tracks of those rows scored by `scores`. The trainer hands these
    to tuning.allocate, as it does the model's own options.
    """
    best: dict[int, tuple[BaselineRule, ComponentMetrics]] = {}
    for j in np.argsort(-strength)[:candidates]:
        for sign in (1.0, -1.0):
            for rule, m in options(tracks_of(sign * X[:, int(j)])):
                f = m.false_alarms
                if f not in best or rank(m) > rank(best[f][1]):
                    best[f] = (BaselineRule(names[int(j)], sign, rule), m)
    return [best[f] for f in sorted(best)]
