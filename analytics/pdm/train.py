"""Training: features of exports, presses in groups (folds), per component the models, their
alarm rule and the single-signal baseline, each chosen on scores of presses the scoring model
never saw.

Every row is scored out of fold: the presses are split into groups (one press of several
exports stays in one group), and each group's rows are scored by models fitted on the other
groups. Per component with failures to learn from:
- two gradient-boosted classifiers (failure within 8 h / 24 h), the configuration chosen by
  the out-of-fold average precision of p_24h;
- three quantile regressors (10 / 50 / 90 %) of the RUL in running hours (standstills longer
  than GAP_H left out: evaluate.running_clock), the unit of the horizons and leads too;
- the alarm rule: the score (p_24h, or p_near, the geometric mean of p_8h and p_24h), the
  raise and clear levels and the scores in a row that warn most failures >= 2 h ahead within
  the false-alarm budget, on the out-of-fold scores (the share of the budget and whether every
  component asks for an hour at its level are chosen on presses the levels were not chosen
  on: `_budget_share`);
- the baseline: of the features that best separate failing from healthy, the one, direction
  and levels that do best by the same search on the same rows.
The models kept are then fitted on every row. The card's metrics are the out-of-fold ones;
the honest test is `moldlab pdm evaluate` on scenarios kept out of training.
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

from analytics.pdm import tuning
from analytics.pdm.baseline import baseline_options
from analytics.pdm.dataset import Dataset, Folds, build_dataset, folds_by_press
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
HOUR_US = 3_600_000_000
_FAULT_REASONS = frozenset(STANDSTILL_REASONS[MachineState.FAULT])
_MIN_POSITIVES = 6  # training rows failing within 24 h needed to model a component
# The progress bar: a share for reading the exports and computing the features, the rest by
# fits, a final fit counting half an out-of-fold one. Measured on 10 exports with 2 threads
# (1 December 2026): features 11 min, 135 out-of-fold fits 44 min, 45 final fits 7 min.
_PROGRESS_DATA = 0.2
_FINAL_FIT_WEIGHT = 0.5
_FINAL_FITS = 5  # per component: p_8h, p_24h and the RUL quantiles 0.1, 0.5, 0.9


@dataclass(frozen=True, slots=True)
class TrainSettings:
    seed: int = 1
    fa_budget_per_machine_week: float = 0.5  # over all components of a machine together
    folds: int = 5  # groups of presses: each group is scored by models fitted on the others
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


_WARMUP_H = 24.0  # failures this early in a machine's data have no history to be judged by


def _tracks(data: Dataset, mask: np.ndarray, comp: str, scores: np.ndarray) -> list[ScoredTrack]:
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
        out.append(
            ScoredTrack(
                m.key, data.times[rows], s, m.failures[comp], m.start_us, m.end_us, _WARMUP_H
            )
        )
    return out


def _weeks(data: Dataset) -> float:
    """Machine-weeks of the machines' spans (as _tracks draws them)."""
    return sum((m.end_us - m.start_us) / HOUR_US / 168.0 for m in data.machines)


def _production_weeks(data: Dataset) -> float:
    """Machine-weeks of production of `data` (see `_rows_weeks`)."""
    return _rows_weeks(len(data.times))


def _rows_weeks(rows: int) -> float:
    """Machine-weeks of production of `rows` scoring times: a row is a scoring time, one per
    SCORE_INTERVAL_US of wall-clock time in which the machine made a cycle."""
    return rows * SCORE_INTERVAL_US / HOUR_US / 168.0


def _out_of_fold(
    data: Dataset,
    folds: Folds,
    y: np.ndarray,
    trainable: np.ndarray,
    config: dict[str, Any],
    seed: int,
    allowed: np.ndarray | None = None,
    fitted: Callable[[], None] | None = None,
) -> np.ndarray:
    """The probability of `y` at every row, from a classifier fitted on the `trainable` rows
    of the other folds' presses (NaN where those hold no positive); `fitted` is called after
    each fold."""
    out = np.full(len(data.times), np.nan)
    for g in range(len(folds)):
        held = folds.of_row == g
        fit_rows = trainable & ~held
        if y[fit_rows].any():
            clf = _fit(_hgb_classifier(config, seed), data.X[fit_rows], y[fit_rows], allowed)
            out[held] = clf.predict_proba(data.X[held])[:, 1]
        if fitted is not None:
            fitted()
    return out


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

    def data_progress(done: float, total: float) -> None:
        if progress is not None:
            progress(_PROGRESS_DATA * (done / total), 1.0)

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

    if len(data.times) == 0:
        raise TrainError("the exports hold no scoring times: nothing to train on")
    try:
        folds = folds_by_press(data, k=settings.folds, seed=settings.seed)
    except ValueError as exc:
        raise TrainError(str(exc)) from exc
    X = data.X
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a feature all NaN
        center = np.nanmedian(X, axis=0)
        q75, q25 = np.nanpercentile(X, [75, 25], axis=0)
    scale = np.where(np.isfinite(q75 - q25) & (q75 - q25 > 0), (q75 - q25) / 1.349, 1.0)
    center = np.where(np.isfinite(center), center, 0.0)

    modelled = [
        c
        for c in data.components
        if int((data.labels[c].y24 & data.labels[c].trainable).sum()) >= _MIN_POSITIVES
    ]
    if not modelled:
        raise TrainError(
            "no component fails often enough in the training rows to learn from: "
            "export more days or a scenario with a higher wear_time_factor"
        )
    fits = len(modelled) * ((len(CONFIGS) + 1) * len(folds) + _FINAL_FIT_WEIGHT * _FINAL_FITS)
    fits_done = 0.0

    def one_fit(weight: float = 1.0) -> None:
        nonlocal fits_done
        fits_done += weight
        if progress is not None:
            progress(_PROGRESS_DATA + (1 - _PROGRESS_DATA) * min(fits_done / fits, 1.0), 1.0)

    fitted: dict[str, tuple[dict[str, Any], np.ndarray, np.ndarray]] = {}
    out_of_fold: dict[str, dict[str, np.ndarray]] = {}
    comp_tracks: dict[str, dict[str, list[ScoredTrack]]] = {}
    base_options: dict[str, list[tuple[Any, ComponentMetrics]]] = {}
    for comp in modelled:
        lab = data.labels[comp]
        rows = lab.trainable
        scored = ~lab.broken
        weight = _auc_strength(X[rows], lab.y24[rows]) * _own(data.reason_of.get(comp))
        allowed = _allowed(weight, settings)
        # The configuration: by the out-of-fold average precision of p_24h (stabler than the
        # event-level score of a few dozen failures); the first when none scores.
        best: tuple[float, np.ndarray, dict[str, Any]] | None = None
        for config in CONFIGS:
            p = _out_of_fold(data, folds, lab.y24, rows, config, settings.seed, allowed, one_fit)
            ok = scored & np.isfinite(p)
            score = float(average_precision_score(lab.y24[ok], p[ok])) if lab.y24[ok].any() else 0.0
            if best is None or score > best[0]:
                best = (score, p, config)
        assert best is not None
        _, p24, config = best
        p8 = _out_of_fold(data, folds, lab.y8, rows, config, settings.seed, allowed, one_fit)
        p8 = np.minimum(np.nan_to_num(p8), p24)  # within 8 h is within 24 h
        fitted[comp] = (config, weight, allowed)
        out_of_fold[comp] = {"p_24h": p24, "p_near": near_score(p8, p24)}
        comp_tracks[comp] = {
            kind: _tracks(data, scored, comp, oof[scored])
            for kind, oof in out_of_fold[comp].items()
        }
        base_options[comp] = _baseline_options(data, comp, weight, scored)

    # The false-alarm budget is for a machine, whatever part of it warns: it goes to the
    # components where it warns most (the same for the baseline). It is counted per week of
    # production, not of calendar: false alarms come while a press runs, and a budget met on
    # presses that stand still at night and on weekends must hold on one that runs around
    # the clock (the budget per calendar week is then lower on the training data).
    # The levels are chosen for a share of the budget: the largest share whose levels, chosen
    # on the presses of all groups but one, kept to the budget, with a margin of one standard
    # error, on the presses of that one; and with the scores in a row (confirm_policies) that
    # warned most there.
    weeks = _production_weeks(data)
    share, confirms, held_out = _budget_share(
        data, folds, comp_tracks, settings.fa_budget_per_machine_week
    )
    model_options = {comp: _rule_options(comp_tracks[comp], confirms) for comp in modelled}
    max_false = math.floor(settings.fa_budget_per_machine_week * weeks)
    model_max_false = math.floor(share * settings.fa_budget_per_machine_week * weeks)
    model_pick = allocate(model_options, model_max_false)
    base_pick = allocate(base_options, max_false)

    models: dict[str, ComponentModel] = {}
    card_components: dict[str, Any] = {}
    for comp in modelled:
        lab = data.labels[comp]
        rows = lab.trainable
        config, weight, allowed = fitted[comp]
        clf24 = _fit(_hgb_classifier(config, settings.seed), X[rows], lab.y24[rows], allowed)
        clf8 = _fit(_hgb_classifier(config, settings.seed), X[rows], lab.y8[rows], allowed)
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
        card_components[comp] = _component_card(data, cm, config)
        card_components[comp]["out_of_fold"] = {
            "model": _metrics_json(picked[1]) if picked else None,
            "baseline": _metrics_json(base_picked[1]) if base_picked else None,
        }
        one_fit(_FINAL_FIT_WEIGHT * _FINAL_FITS)
    overall = _overall(data, models, out_of_fold)
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
        "horizons_unit": f"running hours: wall-clock hours with standstills over {GAP_H:g} h "
        "left out (a press standing still does not wear); false alarms per calendar week",
        "rul": {"unit": "running hours", "cap_h": RUL_CAP_H, "interval": "10 % - 90 %"},
        "alarm": {
            "score": "per component p_24h or p_near = sqrt(p_8h x p_24h), as tuned",
            "false_alarm_budget_per_machine_week": settings.fa_budget_per_machine_week,
            "how": "per component: raise at `on` (on `confirm` half-hourly scores in a row), "
            "clear below `off`, after a pause of "
            f"{GAP_H:g} h or at a failure. The levels warn most failures >= 2 h ahead with at "
            "most the budget of false alarms over all components (per week of production: "
            "168 hours in which a press made cycles), on out-of-fold scores: every row scored "
            "by models fitted without its press. The model's levels are chosen for the "
            "largest share of the budget (budget_share) whose levels, chosen on the presses of "
            "all groups but one, raised at most the budget on that one's, by a margin of one "
            "standard error (a Poisson count's square root; budget_share_held_out), and with "
            "the scores in a row of the policy (confirm_policy: per component 1, 2 or 3, or 3 "
            "for every one) that warned most failures on the held-out presses at its share. "
            "The baseline's feature, direction and levels are chosen the same way on the same "
            "rows, for the whole budget. The models kept are fitted on every row.",
            "tuning_production_weeks": weeks,
            "tuning_false_alarms_allowed": model_max_false,
            "tuning_false_alarms_allowed_baseline": max_false,
            "budget_share": share,
            "confirm_policy": list(confirms),
            "budget_share_held_out": held_out,
        },
        "metrics": overall,
        "folds": {
            "seed": settings.seed,
            "presses": [list(g) for g in folds.presses],
            "rows": len(data.times),
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


def _overall(
    data: Dataset, models: dict[str, ComponentModel], out_of_fold: dict[str, dict[str, np.ndarray]]
) -> dict[str, Any]:
    """Every component together on the out-of-fold scores: model and baseline."""
    model_tracks: list[tuple[ScoredTrack, AlarmRule]] = []
    base_tracks: list[tuple[ScoredTrack, AlarmRule]] = []
    never = AlarmRule(math.inf, math.inf)  # no baseline rule: its failures count as missed
    for comp, cm in models.items():
        rows = ~data.labels[comp].broken
        score = out_of_fold[comp][cm.rule.score][rows]
        model_tracks += [(t, cm.rule) for t in _tracks(data, rows, comp, score)]
        b_rule = cm.baseline.rule if cm.baseline else never
        b = cm.baseline.scores(data.X[rows]) if cm.baseline else np.full(int(rows.sum()), np.nan)
        base_tracks += [(t, b_rule) for t in _tracks(data, rows, comp, b)]
    weeks = _weeks(data)
    return {
        "out_of_fold": {
            "model": _metrics_json(pooled_metrics(model_tracks, weeks)) if model_tracks else None,
            "baseline": _metrics_json(pooled_metrics(base_tracks, weeks)) if base_tracks else None,
        }
    }


def _rule_options(
    tracks: dict[str, list[ScoredTrack]], confirms: Sequence[int] | None = None
) -> list[tuple[Any, ComponentMetrics]]:
    """The candidate alarm rules of one component on each of its scores (p_24h, p_near),
    raising on any of `confirms` scores in a row."""
    return _within(_all_rule_options(tracks), tuning.CONFIRMS if confirms is None else confirms)


def _all_rule_options(tracks: dict[str, list[ScoredTrack]]) -> list[tuple[Any, ComponentMetrics]]:
    opts: list[tuple[Any, ComponentMetrics]] = []
    for kind, of_kind in tracks.items():
        opts += [(replace(r, score=kind), m) for r, m in options(of_kind)]
    return opts


def _within(
    opts: list[tuple[Any, ComponentMetrics]], confirms: Sequence[int]
) -> list[tuple[Any, ComponentMetrics]]:
    return _pareto([o for o in opts if o[0].confirm in confirms])


# Shares of the false-alarm budget tried, largest first.
BUDGET_SHARES = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)


def confirm_policies() -> dict[str, tuple[int, ...]]:
    """The scores in a row the levels may ask for, each tried as a whole like a share: per
    component any of tuning.CONFIRMS (the search picks), or the most of them for every
    component (an alarm only on a score that has held for an hour)."""
    most = (max(tuning.CONFIRMS),)
    any_ = tuple(tuning.CONFIRMS)
    return {"any": any_} if any_ == most else {"any": any_, "held": most}


def _budget_share(
    data: Dataset,
    folds: Folds,
    tracks: dict[str, dict[str, list[ScoredTrack]]],
    budget: float,
) -> tuple[float, tuple[int, ...], dict[str, Any]]:
    """The share of the false-alarm budget to choose the levels for, the scores in a row
    they may ask for, and what they raised on presses the levels were not chosen on.

    Levels chosen to the last false alarm on some presses raise more on others: among
    thousands of combinations the search finds one that chance favoured on these. So per
    group of presses the levels are chosen on the others' scores, for each share in
    BUDGET_SHARES and each of `confirm_policies`, and counted on the group's. Per policy the
    largest share whose false alarms, summed over the groups, stay within the budget (per
    week of production) by a margin is kept (`holds_budget`), else the smallest; of the
    policies, the one that warned most failures >= 2 h ahead at its share, then the one with
    fewer false alarms, then "held": it leaves the search fewer choices to fit by chance."""
    group_of = {p: g for g, members in enumerate(folds.presses) for p in members}
    group = {m.key: group_of[m.machine_id] for m in data.machines}
    rows = {m.key: m.hi - m.lo for m in data.machines}
    policies = confirm_policies()

    def weeks(keys: Any) -> float:
        return _rows_weeks(sum(rows[k] for k in keys))

    # per policy and share: warned >= 2 h, wear failures, false alarms
    counted = {name: {s: [0, 0, 0] for s in BUDGET_SHARES} for name in policies}
    for g in range(len(folds)):
        chosen_on = [k for k in group if group[k] != g]
        every = {
            comp: _all_rule_options(
                {
                    kind: [t for t in of_kind if group[t.machine_id] != g]
                    for kind, of_kind in by_kind.items()
                }
            )
            for comp, by_kind in tracks.items()
        }
        for name, confirms in policies.items():
            opts = {comp: _within(o, confirms) for comp, o in every.items()}
            for share in BUDGET_SHARES:
                pick = allocate(opts, math.floor(share * budget * weeks(chosen_on)))
                for comp, by_kind in tracks.items():
                    picked = pick[comp]
                    rule = picked[0] if picked else AlarmRule(math.inf, math.inf)
                    held = [t for t in by_kind[rule.score] if group[t.machine_id] == g]
                    m = metrics_for(held, rule)
                    counted[name][share][0] += m.warned_2h
                    counted[name][share][1] += m.wear_failures
                    counted[name][share][2] += m.false_alarms
    total = weeks(group)
    allowed = budget * total
    per_policy: dict[str, dict[str, Any]] = {}
    kept: dict[str, tuple[float, bool]] = {}
    for name, by_share in counted.items():
        per_policy[name] = {
            f"{s:g}": {
                "warned_2h": w,
                "wear_failures": n,
                "false_alarms": f,
                "false_alarms_per_production_week": f / total if total > 0 else None,
            }
            for s, (w, n, f) in by_share.items()
        }
        within = [s for s in BUDGET_SHARES if holds_budget(by_share[s][2], allowed)]
        kept[name] = (within[0], True) if within else (BUDGET_SHARES[-1], False)
    order = list(policies)
    name = max(
        order,
        key=lambda n: (
            kept[n][1],
            counted[n][kept[n][0]][0],
            -counted[n][kept[n][0]][2],
            n == "held",
        ),
    )
    share, within_budget = kept[name]
    return (
        share,
        policies[name],
        {
            "share": share,
            "per_share": per_policy[name],
            "production_weeks": total,
            "false_alarms_allowed": allowed,
            "kept_when": "false_alarms + sqrt(false_alarms) <= false_alarms_allowed",
            "within_budget": within_budget,  # False: none was, the smallest share is kept
            "confirm_policy": name,
            "confirm": list(policies[name]),
            "per_policy": {
                n: {"confirm": list(policies[n]), "share": kept[n][0], "per_share": per_policy[n]}
                for n in order
            },
        },
    )


def holds_budget(false_alarms: int, allowed: float) -> bool:
    """Whether `false_alarms` counted on unseen presses keep to `allowed` with a margin.

    The count is itself a sample of rare events: as Poisson, its standard error is its
    square root. A count just under the limit (170 against 177.5) says the levels would
    raise more than the budget on the next presses about as often as not; a share is kept
    only when its count plus one standard error stays within (about 5 in 6 of the time)."""
    return false_alarms + math.sqrt(false_alarms) <= allowed


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
    data: Dataset, comp: str, strength: np.ndarray, rows: np.ndarray
) -> list[tuple[Any, ComponentMetrics]]:
    """Candidate baselines of `comp` with their metrics on `rows`."""

    def tracks_of(scores: np.ndarray) -> list[ScoredTrack]:
        return _tracks(data, rows, comp, scores)

    return list(baseline_options(data.X[rows], strength, tracks_of))


def _component_card(data: Dataset, cm: ComponentModel, config: dict[str, Any]) -> dict[str, Any]:
    lab = data.labels[cm.component]
    return {
        "config": config,
        "alarm_rule": cm.rule.to_json() if math.isfinite(cm.rule.on) else None,
        "baseline": cm.baseline.to_json() if cm.baseline else None,
        "top_features": [
            FEATURE_NAMES[int(j)] for j in np.argsort(-cm.weight)[:10] if cm.weight[j] > 0
        ],
        "training_rows": int(lab.trainable.sum()),
        "training_positives_24h": int((lab.trainable & lab.y24).sum()),
    }
