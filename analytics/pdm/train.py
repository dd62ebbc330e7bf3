"""Training: features of exports, the split by machine and time, per component the models,
their alarm rule and the single-signal baseline, each chosen on validation data.

Per component with failures to learn from:
- two gradient-boosted classifiers (failure within 8 h / 24 h), the configuration chosen by
  the event-level score of its alarm rule on the validation rows;
- three quantile regressors (10 / 50 / 90 %) of the RUL in wall-clock hours;
- the alarm rule: the score (p_24h, or p_near, the geometric mean of p_8h and p_24h) and the
  raise and clear levels that warn most failures >= 2 h ahead within the false-alarm budget,
  on scores of rows no model was trained on;
- the baseline: of the features that best separate failing from healthy on the training
  rows, the one, direction and levels that do best by the same search on the same rows.
Validation rows are never trained on; hold-out rows (the validation machines before the
cut) are neither trained nor tuned on.
"""

from __future__ import annotations

import hashlib
import math
import platform
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from analytics.pdm.baseline import baseline_options
from analytics.pdm.dataset import Dataset, Split, build_dataset, split_by_machine_and_time
from analytics.pdm.evaluate import GAP_H, AlarmRule, ComponentMetrics
from analytics.pdm.features import FEATURE_NAMES, SCORE_INTERVAL_US
from analytics.pdm.history import export_fingerprint
from analytics.pdm.labels import HORIZONS_H, RUL_CAP_H
from analytics.pdm.model import ComponentModel, Fitted, PdmModel, near_score
from analytics.pdm.tuning import (
    ScoredTrack,
    allocate,
    metrics_for,
    options,
    pooled_metrics,
    rank,
)
from contracts import STANDSTILL_REASONS, MachineState

__all__ = ["CONFIGS", "TrainError", "TrainSettings", "library_versions", "train"]

Progress = Callable[[float, float], None]


class TrainError(ValueError):
    """Data a model cannot be trained on; the text says why."""


# Configurations tried per component (scikit-learn HistGradientBoostingClassifier).
CONFIGS: tuple[dict[str, Any], ...] = (
    {"learning_rate": 0.05, "max_iter": 150, "max_leaf_nodes": 15, "min_samples_leaf": 40},
    {"learning_rate": 0.1, "max_iter": 100, "max_leaf_nodes": 7, "min_samples_leaf": 80},
)
_FOLDS = 4  # groups of training machines for out-of-fold scores
HOUR_US = 3_600_000_000
_FAULT_REASONS = frozenset(STANDSTILL_REASONS[MachineState.FAULT])
_MIN_POSITIVES = 6  # training rows failing within 24 h needed to model a component


@dataclass(frozen=True, slots=True)
class TrainSettings:
    seed: int = 1
    fa_budget_per_machine_week: float = 0.5  # over all components of a machine together
    validation_share: float = 0.34
    time_share: float = 0.6
    top_features: int = 0  # per component the features it learns from: the K most separating
    exclude: tuple[str, ...] = ()  # feature name prefixes never learnt from


def library_versions() -> dict[str, str]:
    """The versions a model artefact depends on (registry refuses others)."""
    import joblib
    import sklearn

    from analytics.pdm.registry import moldlab_version

    return {
        "python": platform.python_version(),
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "joblib": joblib.__version__,
        "moldlab": moldlab_version(),
    }


def _varies(x: np.ndarray) -> bool:
    """At least two distinct finite values (HGB cannot bin a column with fewer)."""
    x = x[np.isfinite(x)]
    return len(x) > 1 and bool(x.min() < x.max())


def _fit(estimator: Any, X: np.ndarray, y: np.ndarray, allowed: np.ndarray | None = None) -> Fitted:
    """`estimator` fitted on the `allowed` columns of X that vary (HGB cannot bin a
    constant one)."""
    ok = np.ones(X.shape[1], bool) if allowed is None else allowed
    columns = np.flatnonzero([ok[j] and _varies(X[:, j]) for j in range(X.shape[1])])
    return Fitted(estimator.fit(X[:, columns], y), columns)


def _own(reason: str | None) -> np.ndarray:
    """1 for the features a component may learn from, 0 for the running hours since the
    repair of *another* kind of breakdown: that says nothing of this component's wear, and on
    a few dozen machines it separates by coincidence (a press whose pump and ejector happened
    to fail a day apart in the training data)."""
    return np.array(
        [
            0.0 if n.startswith("since:") and n[6:] in _FAULT_REASONS and n[6:] != reason else 1.0
            for n in FEATURE_NAMES
        ]
    )


def _allowed(strength: np.ndarray, settings: TrainSettings) -> np.ndarray:
    """The features a component's estimators learn from (see TrainSettings): none its
    strength is 0 for (another component's time since repair, see `_own`)."""
    ok = (
        np.array([not n.startswith(settings.exclude) for n in FEATURE_NAMES])
        if settings.exclude
        else np.ones(len(FEATURE_NAMES), bool)
    )
    ok &= ~np.array([n.startswith("since:") for n in FEATURE_NAMES]) | (strength > 0)
    if settings.top_features > 0:
        ranked = [int(j) for j in np.argsort(-strength) if ok[j]]
        ok = np.zeros(len(FEATURE_NAMES), bool)
        ok[ranked[: settings.top_features]] = True
    return ok


def _auc_strength(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per feature 2 x |AUC - 0.5| of y against the feature (NaN counted as the median)."""
    pos, neg = int(y.sum()), int((~y).sum())
    out = np.zeros(X.shape[1])
    if pos == 0 or neg == 0:
        return out
    for j in range(X.shape[1]):
        x = X[:, j]
        fin = np.isfinite(x)
        if fin.sum() < 10:
            continue
        x = np.where(fin, x, np.median(x[fin]))
        ranks = np.empty(len(x))
        ranks[np.argsort(x, kind="stable")] = np.arange(1, len(x) + 1)
        auc = (ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg)
        out[j] = 2 * abs(auc - 0.5)
    return out


def _span(split: Split, part: str, key: str, start_us: int, end_us: int) -> tuple[int, int]:
    """The span a part of the split scores on one machine."""
    cut = split.cut_us[key]
    if part == "train":
        return start_us, cut - 24 * HOUR_US
    if part == "validation":
        return cut, end_us
    return start_us, cut  # holdout


_WARMUP_H = {"train": 24.0, "validation": 0.0, "holdout": 24.0}


def _tracks(
    data: Dataset, mask: np.ndarray, comp: str, scores: np.ndarray, *, part: str, split: Split
) -> list[ScoredTrack]:
    """ScoredTracks of `comp` over the rows of `mask` (scores given for those rows)."""
    full = np.full(len(data.times), np.nan)
    full[mask] = scores
    broken = data.labels[comp].broken
    out = []
    for m in data.machines:
        rows = np.flatnonzero(mask[m.lo : m.hi]) + m.lo
        if len(rows) == 0:
            continue
        s = np.where(broken[rows], -np.inf, full[rows])
        start, end = _span(split, part, m.key, m.start_us, m.end_us)
        out.append(
            ScoredTrack(m.key, data.times[rows], s, m.failures[comp], start, end, _WARMUP_H[part])
        )
    return out


def _weeks(data: Dataset, mask: np.ndarray, split: Split, part: str) -> float:
    """Machine-weeks of the spans the rows of `mask` score (as _tracks draws them)."""
    total = 0.0
    for m in data.machines:
        if mask[m.lo : m.hi].any():
            lo, hi = _span(split, part, m.key, m.start_us, m.end_us)
            total += (hi - lo) / HOUR_US / 168.0
    return total


def _production_weeks(data: Dataset, mask: np.ndarray) -> float:
    """Machine-weeks of production of the rows of `mask`: a row is a scoring time, one per
    SCORE_INTERVAL_US of wall-clock time in which the machine made a cycle."""
    return int(mask.sum()) * SCORE_INTERVAL_US / HOUR_US / 168.0


def _out_of_fold(
    data: Dataset,
    split: Split,
    comp: str,
    config: dict[str, Any],
    seed: int,
    folds: int,
    allowed: np.ndarray | None = None,
) -> np.ndarray:
    """p_8h and p_24h (two columns) of every training-quadrant row (not broken) from models
    that never saw its machine: the training machines in `folds` groups, each scored by the
    others'."""
    lab = data.labels[comp]
    owner = data.row_machine()
    scored = split.train & ~lab.broken
    train_machines = np.unique(owner[split.train])
    rng = np.random.default_rng(seed)
    groups = np.array_split(rng.permutation(train_machines), min(folds, len(train_machines)))
    out = np.full((len(data.times), 2), np.nan)
    for group in groups:
        held = np.isin(owner, group)
        fit_rows = split.train & lab.trainable & ~held
        if not lab.y24[fit_rows].any():
            continue
        rows = scored & held
        if not rows.any():
            continue
        clf24 = _fit(_hgb_classifier(config, seed), data.X[fit_rows], lab.y24[fit_rows], allowed)
        p24 = clf24.predict_proba(data.X[rows])[:, 1]
        p8 = np.zeros(int(rows.sum()))
        if lab.y8[fit_rows].any():
            clf8 = _fit(_hgb_classifier(config, seed), data.X[fit_rows], lab.y8[fit_rows], allowed)
            p8 = clf8.predict_proba(data.X[rows])[:, 1]
        out[rows] = np.column_stack((np.minimum(p8, p24), p24))
    return np.asarray(out[scored])


def _hgb_classifier(config: dict[str, Any], seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        **config, l2_regularization=1.0, early_stopping=False, random_state=seed
    )


def _hgb_quantile(q: float, seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(
        loss="quantile", quantile=q, learning_rate=0.1, max_iter=100, max_leaf_nodes=15,
        min_samples_leaf=40, early_stopping=False, random_state=seed,
    )  # fmt: skip


def _metrics_json(m: ComponentMetrics | None) -> dict[str, Any] | None:
    return None if m is None else m.to_json()


def train(
    directories: Sequence[Path],
    *,
    name: str,
    settings: TrainSettings | None = None,
    progress: Progress | None = None,
) -> PdmModel:
    """A model trained on the exports in `directories`."""
    settings = settings or TrainSettings()
    data_weight = 0.5  # share of the progress bar for reading and features

    def data_progress(done: float, total: float) -> None:
        if progress is not None:
            progress(data_weight * done / total, 1.0)

    data = build_dataset(directories, data_progress)
    return fit_dataset(data, directories, name=name, settings=settings, progress=progress)


def fit_dataset(
    data: Dataset,
    directories: Sequence[Path],
    *,
    name: str,
    settings: TrainSettings,
    progress: Progress | None = None,
) -> PdmModel:
    """A model fitted on the rows of `data`, read from the exports in `directories`."""
    from sklearn.metrics import average_precision_score

    data_weight = 0.5
    if len(data.times) == 0:
        raise TrainError("the exports hold no scoring times: nothing to train on")
    try:
        split = split_by_machine_and_time(
            data,
            seed=settings.seed,
            validation_share=settings.validation_share,
            time_share=settings.time_share,
        )
    except ValueError as exc:
        raise TrainError(str(exc)) from exc
    X = data.X
    tr = split.train
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a feature all NaN in training
        center = np.nanmedian(X[tr], axis=0)
        q75, q25 = np.nanpercentile(X[tr], [75, 25], axis=0)
    scale = np.where(np.isfinite(q75 - q25) & (q75 - q25 > 0), (q75 - q25) / 1.349, 1.0)
    center = np.where(np.isfinite(center), center, 0.0)

    modelled = [
        c
        for c in data.components
        if int((data.labels[c].y24 & data.labels[c].trainable & tr).sum()) >= _MIN_POSITIVES
    ]
    if not modelled:
        raise TrainError(
            "no component fails often enough in the training rows to learn from: "
            "export more days or a scenario with a higher wear_time_factor"
        )
    fitted: dict[str, tuple[Fitted, Fitted, dict[str, Any], np.ndarray]] = {}
    model_options: dict[str, list[tuple[Any, ComponentMetrics]]] = {}
    base_options: dict[str, list[tuple[Any, ComponentMetrics]]] = {}
    tune = split.train | split.validation
    for k, comp in enumerate(modelled):
        lab = data.labels[comp]
        rows = tr & lab.trainable
        val = split.validation & ~lab.broken
        weight = _auc_strength(X[rows], lab.y24[rows]) * _own(data.reason_of.get(comp))
        allowed = _allowed(weight, settings)
        best: tuple[float, Fitted, dict[str, Any]] | None = None
        for config in CONFIGS:
            clf = _fit(_hgb_classifier(config, settings.seed), X[rows], lab.y24[rows], allowed)
            # the configuration: by average precision on the validation rows (stabler than
            # the few failures of one component there); the first when none fails there
            y = lab.y24[val]
            score = (
                float(average_precision_score(y, clf.predict_proba(X[val])[:, 1]))
                if y.any()
                else 0.0
            )
            if best is None or score > best[0]:
                best = (score, clf, config)
        assert best is not None
        _, clf24, config = best
        clf8 = _fit(_hgb_classifier(config, settings.seed), X[rows], lab.y8[rows], allowed)
        fitted[comp] = (clf8, clf24, config, weight)
        # Alarm levels are tuned on scores no model made of its own training rows: the
        # training machines scored out of fold, the validation rows by the model.
        trained_rows = tr & ~lab.broken
        oof = _out_of_fold(data, split, comp, config, settings.seed, _FOLDS, allowed)
        p24 = clf24.predict_proba(X[val])[:, 1]
        p8 = np.minimum(clf8.predict_proba(X[val])[:, 1], p24)
        opts: list[tuple[Any, ComponentMetrics]] = []
        for kind, tuned, validated in (
            ("p_24h", oof[:, 1], p24),
            ("p_near", near_score(oof[:, 0], oof[:, 1]), near_score(p8, p24)),
        ):
            tracks = _tracks(data, trained_rows, comp, tuned, part="train", split=split)
            tracks += _tracks(data, val, comp, validated, part="validation", split=split)
            opts += [(replace(r, score=kind), m) for r, m in options(tracks)]
        model_options[comp] = _pareto(opts)
        base_options[comp] = _baseline_options(data, split, comp, weight, tune & ~lab.broken)
        if progress is not None:
            progress(data_weight + (1 - data_weight) * 0.7 * (k + 1) / len(modelled), 1.0)

    # The false-alarm budget is for a machine, whatever part of it warns: it goes to the
    # components where it warns most (the same for the baseline). It is counted per week of
    # production, not of calendar: false alarms come while a press runs, and a budget met on
    # presses that stand still at night and on weekends must hold on one that runs around
    # the clock (the budget per calendar week is then lower on the training data).
    weeks = _production_weeks(data, tr | split.validation)
    max_false = math.floor(settings.fa_budget_per_machine_week * weeks)
    model_pick = allocate(model_options, max_false)
    base_pick = allocate(base_options, max_false)

    models: dict[str, ComponentModel] = {}
    card_components: dict[str, Any] = {}
    for k, comp in enumerate(modelled):
        lab = data.labels[comp]
        rows = tr & lab.trainable
        clf8, clf24, config, weight = fitted[comp]
        allowed = _allowed(weight, settings)
        known = rows & np.isfinite(lab.rul_h)
        rul_q = (
            _fit(_hgb_quantile(0.1, settings.seed), X[known], lab.rul_h[known], allowed),
            _fit(_hgb_quantile(0.5, settings.seed), X[known], lab.rul_h[known], allowed),
            _fit(_hgb_quantile(0.9, settings.seed), X[known], lab.rul_h[known], allowed),
        )
        picked = model_pick[comp]
        rule = picked[0] if picked else AlarmRule(math.inf, math.inf)
        base_picked = base_pick[comp]
        base = base_picked[0] if base_picked else None
        cm = ComponentModel(comp, clf8, clf24, rul_q, rule, weight, base)
        models[comp] = cm
        card_components[comp] = _component_card(data, split, cm, config)
        card_components[comp]["tuning"] = {
            "model": _metrics_json(picked[1]) if picked else None,
            "baseline": _metrics_json(base_picked[1]) if base_picked else None,
        }
        if progress is not None:
            progress(data_weight + (1 - data_weight) * (0.7 + 0.3 * (k + 1) / len(modelled)), 1.0)
    overall = _overall(data, split, models)
    skipped = [c for c in data.components if c not in modelled]
    card = {
        "name": name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "data": [
            {"path": str(Path(d)), "sha256": export_fingerprint(Path(d))} for d in directories
        ],
        "data_fingerprint": _combined(directories),
        "features": list(FEATURE_NAMES),
        "components": modelled,
        "not_modelled": {c: "too few failures in the training rows to learn from" for c in skipped},
        "horizons_h": list(HORIZONS_H),
        "rul": {"unit": "wall-clock hours", "cap_h": RUL_CAP_H, "interval": "10 % - 90 %"},
        "alarm": {
            "score": "per component p_24h or p_near = sqrt(p_8h x p_24h), as tuned",
            "false_alarm_budget_per_machine_week": settings.fa_budget_per_machine_week,
            "how": "per component: raise at `on`, clear below `off`, after a pause of "
            f"{GAP_H:g} h or at a failure. The levels warn most failures >= 2 h ahead with at "
            "most the budget of false alarms over all components (per week of production: "
            "168 hours in which a press made cycles), on scores of rows no model "
            "was trained on: the training machines out of fold (grouped by machine) and the "
            "validation rows. The baseline's feature, direction and levels are chosen the "
            "same way on the same rows. 'holdout' metrics are on rows neither trained nor "
            "tuned on.",
            "tuning_production_weeks": weeks,
            "tuning_false_alarms_allowed": max_false,
        },
        "metrics": overall,
        "split": {
            "seed": settings.seed,
            "validation_machines": list(split.validation_machines),
            "time_share": settings.time_share,
            "rows": {
                "train": int(split.train.sum()),
                "validation": int(split.validation.sum()),
                "holdout": int(split.holdout.sum()),
                "all": len(data.times),
            },
        },
        "component_models": card_components,
        "reason_of": data.reason_of,
        "versions": library_versions(),
    }
    return PdmModel(
        name=name,
        card=card,
        models=models,
        reason_of=data.reason_of,
        feature_center=center,
        feature_scale=scale,
    )


def _combined(directories: Sequence[Path]) -> str:
    """sha256 over the exports' fingerprints, in the order given."""
    digest = hashlib.sha256()
    for d in directories:
        digest.update(export_fingerprint(Path(d)).encode())
    return digest.hexdigest()


def _overall(data: Dataset, split: Split, models: dict[str, ComponentModel]) -> dict[str, Any]:
    """Every component together, on the validation and hold-out rows: model and baseline."""
    out: dict[str, Any] = {}
    for part, mask in (("validation", split.validation), ("holdout", split.holdout)):
        weeks = _weeks(data, mask, split, part)
        model_tracks: list[tuple[ScoredTrack, AlarmRule]] = []
        base_tracks: list[tuple[ScoredTrack, AlarmRule]] = []
        for comp, cm in models.items():
            rows = mask & ~data.labels[comp].broken
            if not rows.any():
                continue
            score = cm.scores(data.X[rows])[cm.rule.score]
            for t in _tracks(data, rows, comp, score, part=part, split=split):
                model_tracks.append((t, cm.rule))
            # no baseline rule: it never warns (its failures count as missed)
            never = AlarmRule(math.inf, math.inf)
            b_rule = cm.baseline.rule if cm.baseline else never
            b = (
                cm.baseline.scores(data.X[rows])
                if cm.baseline
                else np.full(int(rows.sum()), np.nan)
            )
            for t in _tracks(data, rows, comp, b, part=part, split=split):
                base_tracks.append((t, b_rule))
        out[part] = {
            "model": _metrics_json(pooled_metrics(model_tracks, weeks)) if model_tracks else None,
            "baseline": _metrics_json(pooled_metrics(base_tracks, weeks)) if base_tracks else None,
        }
    return out


def _pareto(
    opts: list[tuple[Any, ComponentMetrics]],
) -> list[tuple[Any, ComponentMetrics]]:
    """Per count of false alarms only the best option (keeps the allocation small)."""
    best: dict[int, tuple[Any, ComponentMetrics]] = {}
    for o in opts:
        f = o[1].false_alarms
        if f not in best or rank(o[1]) > rank(best[f][1]):
            best[f] = o
    return [best[f] for f in sorted(best)]


def _baseline_options(
    data: Dataset, split: Split, comp: str, strength: np.ndarray, rows: np.ndarray
) -> list[tuple[Any, ComponentMetrics]]:
    """Candidate baselines of `comp` with their metrics on `rows` (training and validation)."""
    train_rows, val_rows = split.train[rows], split.validation[rows]

    def tracks_of(scores: np.ndarray) -> list[ScoredTrack]:
        return _tracks(
            data, rows & split.train, comp, scores[train_rows], part="train", split=split
        ) + _tracks(
            data, rows & split.validation, comp, scores[val_rows], part="validation", split=split
        )

    return list(baseline_options(data.X[rows], strength, tracks_of))


def _component_card(
    data: Dataset, split: Split, cm: ComponentModel, config: dict[str, Any]
) -> dict[str, Any]:
    lab = data.labels[cm.component]
    out: dict[str, Any] = {
        "config": config,
        "alarm_rule": cm.rule.to_json() if math.isfinite(cm.rule.on) else None,
        "baseline": cm.baseline.to_json() if cm.baseline else None,
        "top_features": [
            FEATURE_NAMES[int(j)] for j in np.argsort(-cm.weight)[:10] if cm.weight[j] > 0
        ],
        "training_rows": int((split.train & lab.trainable).sum()),
        "training_positives_24h": int((split.train & lab.trainable & lab.y24).sum()),
    }
    for part, mask in (("validation", split.validation), ("holdout", split.holdout)):
        rows = mask & ~lab.broken
        if not rows.any():
            out[part] = None
            continue
        s = cm.scores(data.X[rows])
        err = s["rul_h"] - lab.rul_h[rows]
        err = err[np.isfinite(err) & (lab.rul_h[rows] < RUL_CAP_H)]
        tracks = _tracks(data, rows, cm.component, s[cm.rule.score], part=part, split=split)
        model = metrics_for(tracks, cm.rule, err.tolist())
        base = None
        if cm.baseline is not None:
            b = cm.baseline.scores(data.X[rows])
            bt = _tracks(data, rows, cm.component, b, part=part, split=split)
            base = metrics_for(bt, cm.baseline.rule)
        out[part] = {"model": _metrics_json(model), "baseline": _metrics_json(base)}
    return out
