"""Labels on hand-made failure histories."""

from __future__ import annotations

import numpy as np

from analytics.pdm.history import Failure
from analytics.pdm.labels import RUL_CAP_H, label_component

H = 3_600_000_000


def test_horizons_rul_and_broken_times() -> None:
    # A failure at 30 h, repaired at 33 h; the data end at 300 h.
    fails = [Failure(30 * H, "check_ring", "check_ring_failure", "wear", 33 * H)]
    times = np.array([1, 6, 21, 22, 25, 30, 32, 33, 40, 140]) * H
    lab = label_component(times, fails, 300 * H)
    # fails within 24 h: from 6 h on (30 - 24); within 8 h: from 22 h on
    assert lab.y24.tolist() == [False, True, True, True, True, False, False, False, False, False]
    assert lab.y8.tolist() == [False, False, False, True, True, False, False, False, False, False]
    # broken from the failure to the end of the repair: no label, no training
    assert lab.broken.tolist() == [False] * 5 + [True, True] + [False] * 3
    assert not lab.trainable[5:7].any()
    # RUL in wall hours to the next failure, capped; known (capped) when the data run a week on
    np.testing.assert_allclose(lab.rul_h[:5], [29, 24, 9, 8, 5])
    assert np.isnan(lab.rul_h[5:7]).all()
    assert lab.rul_h[7] == RUL_CAP_H
    assert lab.rul_h[8] == RUL_CAP_H
    # 140 h + 168 h > 300 h and no failure follows: unknown
    assert np.isnan(lab.rul_h[9])


def test_times_before_a_sudden_failure_are_kept_out_of_training() -> None:
    fails = [Failure(50 * H, "ejector", "ejector_failure", "sudden", 51 * H)]
    times = np.array([10, 30, 45, 52]) * H
    lab = label_component(times, fails, 400 * H)
    assert lab.y24.tolist() == [False, True, True, False]  # still labelled (for evaluation)
    assert lab.trainable.tolist() == [True, False, False, True]


def test_after_a_repair_the_next_failure_counts() -> None:
    fails = [
        Failure(10 * H, "ejector", "ejector_failure", "wear", 12 * H),
        Failure(40 * H, "ejector", "ejector_failure", "wear", None),  # not repaired in the data
    ]
    times = np.array([11, 13, 20, 41, 60]) * H
    lab = label_component(times, fails, 60 * H)
    assert lab.broken.tolist() == [True, False, False, True, True]
    assert lab.y24.tolist() == [False, False, True, False, False]
    np.testing.assert_allclose(lab.rul_h[1:3], [27, 20])
