"""A model and its baseline scored on a whole export, event by event, per component."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from analytics.pdm.dataset import Dataset, build_dataset
from analytics.pdm.evaluate import (
    AlarmRule,
    ComponentMetrics,
)
from analytics.pdm.labels import RUL_CAP_H
from analytics.pdm.model import PdmModel
from analytics.pdm.tuning import ScoredTrack, metrics_for, pooled_metrics

__all__ = ["WARMUP_H", "Assessment", "assess"]

_NEVER = AlarmRule(float("inf"), float("inf"))
WARMUP_H = 24.0  # failures this early in an export have no history to be judged by
HOUR_US = 3_600_000_000


@dataclass(frozen=True, slots=True)
class Assessment:
    """Per component (and "all") the model's and the baseline's metrics on one export."""

    model: dict[str, ComponentMetrics]
    baseline: dict[str, ComponentMetrics | None]
    baseline_rules: dict[str, dict[str, Any] | None]
    not_modelled: dict[str, int]  # components of the export the model has none for: failures
    machines: int
    machine_weeks: float

    def to_json(self) -> dict[str, Any]:
        return {
            "machines": self.machines,
            "machine_weeks": self.machine_weeks,
            "components": {
                c: {
                    "model": self.model[c].to_json(),
                    "baseline": b.to_json() if (b := self.baseline.get(c)) else None,
                    "baseline_rule": self.baseline_rules.get(c),
                }
                for c in self.model
            },
            "not_modelled": self.not_modelled,
        }


def _tracks(data: Dataset, comp: str, scores: np.ndarray) -> list[ScoredTrack]:
    broken = data.labels[comp].broken
    s = np.where(broken, -np.inf, scores)
    return [
        ScoredTrack(
            m.key,
            data.times[m.lo : m.hi],
            s[m.lo : m.hi],
            m.failures[comp],
            m.start_us,
            m.end_us,
            WARMUP_H,
        )
        for m in data.machines
    ]


def assess(
    model: PdmModel, directory: Path, progress: Callable[[float, float], None] | None = None
) -> Assessment:
    """Score `model` and its baselines on the export in `directory`."""
    return assess_dataset(model, build_dataset([Path(directory)], progress, model.reason_of))


def assess_dataset(model: PdmModel, data: Dataset) -> Assessment:
    """Score `model` and its baselines on the rows of `data` (one or more exports)."""
    weeks = sum((m.end_us - m.start_us) / HOUR_US / 168.0 for m in data.machines)
    per_model: dict[str, ComponentMetrics] = {}
    per_base: dict[str, ComponentMetrics | None] = {}
    rules: dict[str, dict[str, Any] | None] = {}
    all_model: list[tuple[ScoredTrack, AlarmRule]] = []
    all_base: list[tuple[ScoredTrack, AlarmRule]] = []
    errors_all: list[float] = []
    for comp, cm in model.models.items():
        if comp not in data.labels:
            continue
        s = cm.scores(data.X)
        lab = data.labels[comp]
        err = s["rul_h"] - lab.rul_h
        err = err[np.isfinite(err) & (lab.rul_h < RUL_CAP_H)].tolist()
        errors_all += err
        tracks = _tracks(data, comp, s[cm.rule.score])
        per_model[comp] = metrics_for(tracks, cm.rule, err)
        all_model += [(t, cm.rule) for t in tracks]
        # A component the baseline found no rule for: it never warns (its failures count
        # as missed, beside the model's, in "all").
        b_rule = cm.baseline.rule if cm.baseline else _NEVER
        b_scores = cm.baseline.scores(data.X) if cm.baseline else np.full(len(data.X), np.nan)
        bt = _tracks(data, comp, b_scores)
        per_base[comp] = metrics_for(bt, b_rule)
        all_base += [(t, b_rule) for t in bt]
        rules[comp] = cm.baseline.to_json() if cm.baseline else None
    if per_model:
        per_model["all"] = pooled_metrics(all_model, weeks, errors_all)
        per_base["all"] = pooled_metrics(all_base, weeks, []) if all_base else None
    not_modelled = {
        c: sum(len(m.failures[c]) for m in data.machines)
        for c in data.components
        if c not in model.models and any(m.failures[c] for m in data.machines)
    }
    return Assessment(per_model, per_base, rules, not_modelled, len(data.machines), weeks)
