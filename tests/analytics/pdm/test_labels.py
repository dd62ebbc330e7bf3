"""Labels on hand-made failure histories."""

from __future__ import annotations

import numpy as np

from analytics.pdm.history import Failure
from analytics.pdm.labels import RUL_CAP_H, ComponentLabels, label_component

H = 3_600_000_000


def _running(from_h: float, to_h: float) -> np.ndarray:
    """Scoring times every 30 min of a machine running from `from_h` to `to_h` (µs)."""
    return (np.arange(from_h, to_h, 0.5) * H).astype(np.int64)


def _at(times: np.ndarray, hours: list[float]) -> np.ndarray:
    return np.searchsorted(times, (np.array(hours) * H).astype(np.int64))


def _pick(lab: ComponentLabels, rows: np.ndarray) -> ComponentLabels:
    return ComponentLabels(*(getattr(lab, f)[rows] for f in ComponentLabels.__slots__))


def test_horizons_rul_and_broken_times() -> None:
    # A failure at 30 h, repaired at 33 h; the data end at 300 h.
    fails = [Failure(30 * H, "check_ring", "check_ring_failure", "wear", 33 * H)]
    times = _running(0, 300)
    lab = label_component(times, fails, 300 * H)
    lab = _pick(lab, _at(times, [1, 6, 21, 22, 25, 30, 32, 33, 40, 140]))
    # fails within 24 h: from 6 h on (30 - 24); within 8 h: from 22 h on
    assert lab.y24.tolist() == [False, True, True, True, True, False, False, False, False, False]
    assert lab.y8.tolist() == [False, False, False, True, True, False, False, False, False, False]
    # broken from the failure to the end of the repair: no label, no training
    assert lab.broken.tolist() == [False] * 5 + [True, True] + [False] * 3
    assert not lab.trainable[5:7].any()
    # RUL in (running) hours to the next failure, capped; known (capped) when the data run a week on
    np.testing.assert_allclose(lab.rul_h[:5], [29, 24, 9, 8, 5])
    assert np.isnan(lab.rul_h[5:7]).all()
    assert lab.rul_h[7] == RUL_CAP_H
    assert lab.rul_h[8] == RUL_CAP_H
    # 140 h + 168 h > 300 h and no failure follows: unknown
    assert np.isnan(lab.rul_h[9])


def test_times_before_a_sudden_failure_are_kept_out_of_training() -> None:
    fails = [Failure(50 * H, "ejector", "ejector_failure", "sudden", 51 * H)]
    times = _running(0, 400)
    lab = _pick(label_component(times, fails, 400 * H), _at(times, [10, 30, 45, 52]))
    assert lab.y24.tolist() == [False, True, True, False]  # still labelled (for evaluation)
    assert lab.trainable.tolist() == [True, False, False, True]


def test_after_a_repair_the_next_failure_counts() -> None:
    fails = [
        Failure(10 * H, "ejector", "ejector_failure", "wear", 12 * H),
        Failure(40 * H, "ejector", "ejector_failure", "wear", None),  # not repaired in the data
    ]
    times = _running(0, 60)
    lab = _pick(label_component(times, fails, 60 * H), _at(times, [11, 13, 20, 41, 59.5]))
    assert lab.broken.tolist() == [True, False, False, True, True]
    assert lab.y24.tolist() == [False, False, True, False, False]
    np.testing.assert_allclose(lab.rul_h[1:3], [27, 20])


def test_a_standstill_does_not_count_towards_the_horizons_or_the_rul() -> None:
    # Running to 20 h (Friday), standing still for 48 h (a weekend), running again from 68 h;
    # the pump fails 2 h after the restart. It wore 10 h + 2 h after the score at 10 h.
    fails = [Failure(70 * H, "hydraulic_pump", "hydraulic_pump_failure", "wear", 72 * H)]
    times = np.concatenate([_running(0, 20), _running(68, 80)])
    lab = _pick(label_component(times, fails, 80 * H), _at(times, [1, 10, 19.5, 68, 69.5]))
    # running hours to the failure: to 20 h (the last score, 19.5 h, and its step) + 2 h
    np.testing.assert_allclose(lab.rul_h, [21.0, 12.0, 2.5, 2.0, 0.5])
    assert lab.y24.all()
    assert lab.y8.tolist() == [False, False, True, True, True]
    # in wall-clock hours the score at 10 h would have been 60 h before: no warning due


def test_a_standstill_at_the_end_of_the_data_leaves_the_rul_unknown() -> None:
    # Healthy, running 0-30 h, then standing still to the data's end at 400 h: the week
    # after 10 h was not run, so whether the part would last it is not known.
    times = _running(0, 30)
    lab = label_component(times, [], 400 * H)
    assert np.isnan(lab.rul_h).all()
    assert not lab.y24.any()
