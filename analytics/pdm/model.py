"""A trained maintenance model: per component, failure probabilities, a RUL and the evidence.

    ModelError            cannot load: missing or corrupt files (the text says which)
     └── ModelVersionError  made with other library versions (the text names both)

`PdmModel.predict(history, at_us)` gives one Prediction per component; the scorer calls it
for every machine at every scoring interval, so it keeps each machine's 10-minute bins
(features.FeatureCache) and its alarms (the hysteresis of the alarm rule) between calls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analytics.pdm.baseline import BaselineRule
from analytics.pdm.evaluate import GAP_H, HOUR_US, AlarmRule
from analytics.pdm.features import (
    FEATURE_NAMES,
    QUANTITIES,
    SCORE_INTERVAL_US,
    FeatureCache,
    describe,
)
from analytics.pdm.history import MachineHistory

__all__ = [
    "ComponentModel",
    "Evidence",
    "Fitted",
    "ModelError",
    "ModelVersionError",
    "PdmModel",
    "Prediction",
]

MAX_EVIDENCE = 5
_QUANTITY_INDEX = {q: i for i, q in enumerate(QUANTITIES)}


class ModelError(Exception):
    """A model that cannot be loaded: missing or corrupt files; the text says what."""


class ModelVersionError(ModelError):
    """A model made with other library versions than these; the text names both."""


@dataclass(frozen=True, slots=True)
class Evidence:
    feature: str
    value: float
    baseline: float
    text: str  # one line an engineer can check


@dataclass(frozen=True, slots=True)
class Prediction:
    machine_id: str
    component: str
    ts_us: int
    p_8h: float  # probability of failure within 8 h of running (see labels)
    p_24h: float  # ... within 24 h
    rul_h: float  # remaining useful life, running hours (capped, see the card)
    rul_low_h: float
    rul_high_h: float
    alarm: bool
    evidence: tuple[Evidence, ...]


@dataclass(frozen=True, slots=True)
class Fitted:
    """A fitted scikit-learn estimator and the feature columns it takes."""

    estimator: Any
    columns: np.ndarray

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.estimator.predict_proba(X[:, self.columns]))

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.estimator.predict(X[:, self.columns]))


def near_score(p_8h: np.ndarray, p_24h: np.ndarray) -> np.ndarray:
    """p_near, the geometric mean of p_8h and p_24h: one of the two scores an alarm rule
    may be raised on (the other is p_24h). p_24h rises as soon as wear shows, on some
    components days before the failure (each day of such an alarm is a false one); p_8h rises
    late. Their mean rises when the failure is near and sure.
    """
    return np.asarray(np.sqrt(np.minimum(p_8h, p_24h) * p_24h))


@dataclass(slots=True)
class ComponentModel:
    """The fitted estimators of one component and what explains them."""

    component: str
    clf_8h: Fitted
    clf_24h: Fitted
    rul_q: tuple[Fitted, Fitted, Fitted]  # 10 %, 50 %, 90 % quantiles of the RUL
    rule: AlarmRule  # on scores()[rule.score]
    weight: np.ndarray  # per feature: how strongly it separates failing from healthy (>= 0)
    baseline: BaselineRule | None = None

    def scores(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """p_8h, p_24h, p_near, rul_h, rul_low_h, rul_high_h for each row of X (all
        features)."""
        p24 = self.clf_24h.predict_proba(X)[:, 1]
        p8 = np.minimum(self.clf_8h.predict_proba(X)[:, 1], p24)  # within 8 h is within 24 h
        q = np.sort(np.stack([m.predict(X) for m in self.rul_q]), axis=0)
        q = np.clip(q, 0.0, None)
        return {
            "p_8h": p8,
            "p_24h": p24,
            "p_near": near_score(p8, p24),
            "rul_low_h": q[0],
            "rul_h": q[1],
            "rul_high_h": q[2],
        }


@dataclass(slots=True)
class PdmModel:
    """What `moldlab pdm train` makes and `moldlab pdm score` uses."""

    name: str
    card: dict[str, Any]
    models: dict[str, ComponentModel]
    reason_of: dict[str, str]  # component -> the standstill reason of its breakdown
    feature_center: np.ndarray  # per feature: median over the training rows
    feature_scale: np.ndarray  # per feature: a robust spread over the training rows
    _cache: FeatureCache = field(default_factory=FeatureCache, repr=False)
    # per (machine, component): alarm raised, time of the last score, time of the first of
    # the scores in a row at the raise level (None: the last was below it)
    _alarms: dict[tuple[str, str], tuple[bool, int, int | None]] = field(
        default_factory=dict, repr=False
    )

    @property
    def components(self) -> tuple[str, ...]:
        return tuple(self.models)

    def features(
        self, history: MachineHistory, at_us: int, levels: dict[str, np.ndarray] | None = None
    ) -> np.ndarray:
        x = self._cache.features(history, at_us, self.reason_of, levels)
        # An absurd reading can make an infinite feature; the estimators take NaN (missing).
        return np.where(np.isfinite(x), x, np.nan)

    def predict(self, history: MachineHistory, at_us: int) -> list[Prediction]:
        """One Prediction per component for `history` at `at_us` (epoch µs)."""
        levels: dict[str, np.ndarray] = {}
        x = self.features(history, int(at_us), levels)
        X = x[None, :]
        out = []
        for comp, cm in self.models.items():
            s = {k: float(v[0]) for k, v in cm.scores(X).items()}
            key = (history.machine_id, comp)
            was, last_us, since = self._alarms.get(key, (False, at_us, None))
            if at_us - last_us > GAP_H * HOUR_US:  # a long pause judges afresh
                was, since = False, None
            score = s[cm.rule.score]
            since = (at_us if since is None else since) if score >= cm.rule.on else None
            # `confirm` half-hourly scores in a row (as tuned) is the score at the raise
            # level for (confirm - 1) x 30 min, however often the service scores
            held = since is not None and at_us - since >= (cm.rule.confirm - 1) * SCORE_INTERVAL_US
            alarm = score >= cm.rule.off if was else held
            self._alarms[key] = (bool(alarm), int(at_us), since)
            out.append(
                Prediction(
                    machine_id=history.machine_id,
                    component=comp,
                    ts_us=int(at_us),
                    p_8h=s["p_8h"],
                    p_24h=s["p_24h"],
                    rul_h=s["rul_h"],
                    rul_low_h=s["rul_low_h"],
                    rul_high_h=s["rul_high_h"],
                    alarm=bool(alarm),
                    evidence=self.evidence(cm, x, levels),
                )
            )
        return out

    def evidence(
        self, cm: ComponentModel, x: np.ndarray, levels: dict[str, np.ndarray] | None = None
    ) -> tuple[Evidence, ...]:
        """The features that drove it: how unusual each is, weighted by how much it tells.

        A deviation from the press's baseline is quoted in its own unit (the last 8 h against
        the baseline); any other feature beside its typical value in training.
        """
        z = np.abs((x - self.feature_center) / self.feature_scale)
        strength = np.where(np.isfinite(z), z * cm.weight, -1.0)
        top = [int(i) for i in np.argsort(-strength)[:MAX_EVIDENCE] if strength[i] > 0]
        out = []
        for i in top:
            name = FEATURE_NAMES[i]
            quantity = name.partition("|")[0]
            if levels and quantity in _QUANTITY_INDEX and "base" in levels:
                q = _QUANTITY_INDEX[quantity]
                recent, base = float(levels["recent8"][q]), float(levels["base"][q])
                out.append(Evidence(name, recent, base, describe(name, float(x[i]), recent, base)))
                continue
            value, base = float(x[i]), float(self.feature_center[i])
            text = describe(name, value)
            if math.isfinite(base):
                text += f" (typical in training: {base:.3g})"
            out.append(Evidence(name, value, base, text))
        return tuple(out)

    def forget(self, machine_id: str) -> None:
        """Drop what is kept of a machine between calls."""
        self._cache.forget(machine_id)
        for key in [k for k in self._alarms if k[0] == machine_id]:
            del self._alarms[key]
