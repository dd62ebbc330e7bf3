"""Labels per component at each scoring time, from the ground truth (never features).

Failure within 8 h and 24 h of running time, and the remaining useful life in running hours
(capped at RUL_CAP_H; unknown when the export ends before the cap and no failure came). Running
time is the machine's wall-clock time with standstills longer than GAP_H left out, as the
metrics count it (evaluate.running_clock): a press does not wear over a weekend standing still.
A time while the component is broken (from its failure to the end of its repair) has no
label: nothing can be predicted of a part already broken. A time within 24 h before a sudden
failure is kept out of training (`trainable`): a failure with no precursors would only teach
the model noise; evaluation still scores those failures, apart.
Times right after a repair are kept: a new part is exactly what the model must learn is healthy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analytics.pdm.evaluate import running_clock
from analytics.pdm.history import Failure

__all__ = ["HORIZONS_H", "RUL_CAP_H", "ComponentLabels", "label_component"]

HOUR_US = 3_600_000_000
HORIZONS_H = (8, 24)
RUL_CAP_H = 168.0  # a week: beyond it "not soon" is all the model needs to say


@dataclass(frozen=True, slots=True)
class ComponentLabels:
    """Labels of one component of one machine at each scoring time."""

    y8: np.ndarray  # bool: fails within 8 h
    y24: np.ndarray  # bool: fails within 24 h
    rul_h: np.ndarray  # running hours to the next failure, capped; NaN where unknown
    broken: np.ndarray  # bool: in fault for this component (no label)
    trainable: np.ndarray  # bool: usable for training (not broken, not before a sudden failure)


def label_component(
    times_us: np.ndarray, failures: list[Failure] | tuple[Failure, ...], end_us: int
) -> ComponentLabels:
    """Labels at `times_us` from one machine's `failures` of the component; data end at end_us."""
    t = np.asarray(times_us, dtype=np.int64)
    fails = sorted(failures, key=lambda f: f.ts_us)
    fts = np.array([f.ts_us for f in fails], dtype=np.int64)
    broken = np.zeros(len(t), bool)
    before_sudden = np.zeros(len(t), bool)
    for f in fails:
        # not repaired within the data: broken to their end and beyond
        restored = f.restored_us if f.restored_us is not None else np.iinfo(np.int64).max
        broken |= (t >= f.ts_us) & (t < restored)
        if f.mode == "sudden":
            before_sudden |= (t < f.ts_us) & (t >= f.ts_us - 24 * HOUR_US)
    k = np.searchsorted(fts, t, side="right")  # the next failure strictly after t
    has_next = k < len(fts)
    nxt = np.where(has_next, fts[np.minimum(k, max(len(fts) - 1, 0))] if len(fts) else 0, 0)
    clock = running_clock(t)
    run = clock(t)
    to_next_h = np.where(has_next, (clock(nxt) - run) / HOUR_US, np.inf)
    y8 = to_next_h <= HORIZONS_H[0]
    y24 = to_next_h <= HORIZONS_H[1]
    to_end_h = (clock(end_us) - run) / HOUR_US
    rul = np.where(has_next, np.minimum(to_next_h, RUL_CAP_H), np.nan)
    rul = np.where(~has_next & (to_end_h >= RUL_CAP_H), RUL_CAP_H, rul)
    rul[broken] = np.nan
    return ComponentLabels(
        y8=y8 & ~broken,
        y24=y24 & ~broken,
        rul_h=rul,
        broken=broken,
        trainable=~broken & ~before_sudden,
    )
