"""Feature rows and labels of whole exports, and the split by machine and time.

One row per machine and scoring time (every 30 min with data). Rows of one machine are
contiguous and in time order, so the alarm rule can be run over them as the scorer would.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analytics.pdm.features import FEATURE_NAMES, features_at, scoring_times
from analytics.pdm.history import ExportTruth, Failure, read_export, read_manifest, read_truth
from analytics.pdm.labels import ComponentLabels, label_component

__all__ = ["Dataset", "Folds", "Machine", "build_dataset", "folds_by_press"]

Progress = Callable[[float, float], None]


@dataclass(frozen=True, slots=True)
class Machine:
    """One machine of one export: its rows [lo, hi) and its truth."""

    key: str  # "EXPORT#i/machine_id": unique over exports
    machine_id: str
    lo: int
    hi: int
    start_us: int
    end_us: int
    failures: dict[str, tuple[Failure, ...]]  # per component, by time


@dataclass(frozen=True, slots=True)
class Dataset:
    X: np.ndarray  # (rows, FEATURE_NAMES)
    times: np.ndarray  # int64 µs
    machines: tuple[Machine, ...]
    components: tuple[str, ...]
    labels: dict[str, ComponentLabels]  # per component, over all rows
    reason_of: dict[str, str]  # component -> its breakdown reason (from the failures seen)


def _concat_labels(parts: list[ComponentLabels]) -> ComponentLabels:
    return ComponentLabels(
        *(np.concatenate([getattr(p, f) for p in parts]) for f in ComponentLabels.__slots__)
    )


def build_dataset(
    directories: Sequence[Path],
    progress: Progress | None = None,
    reason_of: dict[str, str] | None = None,
) -> Dataset:
    """Rows of every machine of every export in `directories` (each checked first)."""
    manifests = [read_manifest(Path(d)) for d in directories]
    total = float(sum(len(m.get("machines", [])) for m in manifests)) or 1.0
    truths: list[ExportTruth] = [read_truth(Path(d)) for d in directories]
    components = sorted({c for t in truths for c in t.components})
    reasons = dict(reason_of or {})
    for t in truths:
        for fs in t.failures.values():
            for f in fs:
                reasons.setdefault(f.component, f.reason)
    xs: list[np.ndarray] = []
    ts: list[np.ndarray] = []
    machines: list[Machine] = []
    labels: dict[str, list[ComponentLabels]] = {c: [] for c in components}
    row = 0
    done = 0.0
    for e, (directory, truth) in enumerate(zip(directories, truths, strict=True)):
        for history in read_export(Path(directory)):
            times = scoring_times(history, truth.start_us, truth.end_us)
            X = features_at(history, times, truth.end_us, reasons)
            # An absurd reading can make an infinite feature; the estimators take NaN (missing),
            # as the scorer gives them (PdmModel.features).
            X = np.where(np.isfinite(X), X, np.nan)
            fails = truth.failures.get(history.machine_id, ())
            per_comp = {
                c: tuple(sorted((f for f in fails if f.component == c), key=lambda f: f.ts_us))
                for c in components
            }
            for c in components:
                labels[c].append(label_component(times, per_comp[c], truth.end_us))
            xs.append(X)
            ts.append(times)
            machines.append(
                Machine(
                    key=f"{e}/{history.machine_id}",
                    machine_id=history.machine_id,
                    lo=row,
                    hi=row + len(times),
                    start_us=truth.start_us,
                    end_us=truth.end_us,
                    failures=per_comp,
                )
            )
            row += len(times)
            done += 1
            if progress is not None:
                progress(done, total)
    return Dataset(
        X=np.concatenate(xs) if xs else np.zeros((0, len(FEATURE_NAMES))),
        times=np.concatenate(ts) if ts else np.zeros(0, np.int64),
        machines=tuple(machines),
        components=tuple(components),
        labels={c: _concat_labels(v) for c, v in labels.items()},
        reason_of=reasons,
    )


@dataclass(frozen=True, slots=True)
class Folds:
    """The presses in groups: a group's rows are scored by models fitted without its presses."""

    of_row: np.ndarray  # int: the group of each row
    presses: tuple[tuple[str, ...], ...]  # the machine ids of each group

    def __len__(self) -> int:
        return len(self.presses)


def folds_by_press(data: Dataset, *, k: int, seed: int) -> Folds:
    """The machines in `k` groups (fewer if there are fewer presses), by press: one press in
    several exports (other seeds of one scenario) is in one group, so no model scores a press
    whose moulds and quirks it learnt from."""
    presses = sorted({m.machine_id for m in data.machines})
    if len(presses) < 2:
        raise ValueError(
            "training needs at least two presses (each is scored by models that never saw it)"
        )
    rng = np.random.default_rng(seed)
    groups = np.array_split(rng.permutation(presses), min(k, len(presses)))
    group_of = {str(p): g for g, members in enumerate(groups) for p in members}
    of_row = np.empty(len(data.times), np.int64)
    for m in data.machines:
        of_row[m.lo : m.hi] = group_of[m.machine_id]
    return Folds(of_row, tuple(tuple(sorted(str(p) for p in g)) for g in groups))
