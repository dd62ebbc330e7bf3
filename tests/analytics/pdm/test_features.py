"""Features: NaN-safe, independent of the sampling rate, robust to stuck sensors, cached."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest

from analytics.pdm.features import (
    FEATURE_NAMES,
    STUCK_RUN,
    FeatureCache,
    _unstuck,
    features_at,
    scoring_times,
)
from analytics.pdm.history import MachineHistory, read_export, read_truth

HOUR_US = 3_600_000_000


@pytest.fixture(scope="module")
def history(export_dir: Path) -> MachineHistory:
    return next(iter(read_export(export_dir)))


@pytest.fixture(scope="module")
def times(export_dir: Path, history: MachineHistory) -> np.ndarray:
    truth = read_truth(export_dir)
    t = scoring_times(history, truth.start_us, truth.end_us)
    return t[t >= truth.start_us + 48 * HOUR_US][::7]  # a sample past the first two days


# Signals that swing through every cycle (0 to peak pressure): a mean of 10 s samples of them
# is a different sample of the cycle than a mean of 1 s readings, whatever the features do.
_THROUGH_THE_CYCLE = ("sig:PressureHydraulic|", "sig:MotorPower|")


def _signal_cols() -> list[int]:
    return [
        i
        for i, n in enumerate(FEATURE_NAMES)
        if n.startswith("sig:") and not n.startswith(_THROUGH_THE_CYCLE)
    ]


def _minute_means(h: MachineHistory) -> MachineHistory:
    """The signals as a database gives them: 60 s means stamped at the minute's start."""
    minute = h.signals["ts"] // 60_000_000
    keys, first = np.unique(minute, return_index=True)
    counts = np.diff(np.append(first, len(minute)))
    out: dict[str, np.ndarray] = {"ts": keys * 60_000_000}
    for name, x in h.signals.items():
        if name == "ts":
            continue
        ok = np.isfinite(x)
        sums = np.add.reduceat(np.where(ok, x, 0.0), first)
        n = np.add.reduceat(ok.astype(float), first)
        out[name] = np.where(n > 0, sums / np.maximum(n, 1), np.nan)
    assert len(counts) == len(keys)
    return dataclasses.replace(h, signals=out)


def test_features_do_not_depend_on_the_signal_rate(
    history: MachineHistory, times: np.ndarray
) -> None:
    end = int(times.max()) + HOUR_US
    fast = features_at(history, times, end)
    slow = features_at(_minute_means(history), times, end)
    cols = _signal_cols()
    a, b = fast[:, cols], slow[:, cols]
    both = np.isfinite(a) & np.isfinite(b)
    assert both.sum() > 200
    assert (np.isfinite(a) == np.isfinite(b)).mean() > 0.95  # known at the same times
    # Each feature's difference against how much it varies over the times scored: small.
    with warnings.catch_warnings():  # a pace is all NaN where no deviation reached a spread
        warnings.simplefilter("ignore", RuntimeWarning)
        q75, q25 = np.nanpercentile(a, [75, 25], axis=0)
    spread = np.maximum(q75 - q25, 1e-6)
    rel = np.abs(a - b) / spread
    assert np.median(rel[both]) < 0.05
    assert np.quantile(rel[both], 0.95) < 0.3
    # cycle features come from cycles, which the rate does not touch
    other = [i for i, n in enumerate(FEATURE_NAMES) if not n.startswith(("sig:", "alarm|"))]
    np.testing.assert_allclose(fast[:, other], slow[:, other], equal_nan=True)


def test_dropouts_leave_the_features_finite_and_close(
    history: MachineHistory, times: np.ndarray
) -> None:
    rng = np.random.default_rng(3)
    holes = dict(history.signals)
    n = len(holes["ts"])
    for name in list(holes):
        if name != "ts":
            x = holes[name].copy()
            x[rng.random(n) < 0.2] = np.nan  # a fifth of the readings lost
            start = int(rng.integers(0, n - 400))
            x[start : start + 360] = np.nan  # and an hour gone
            holes[name] = x
    cycles = dict(history.cycles)
    cushion = cycles["CushionStroke"].copy()
    cushion[rng.random(len(cushion)) < 0.1] = np.nan
    cycles["CushionStroke"] = cushion
    end = int(times.max()) + HOUR_US
    clean = features_at(history, times, end)
    lossy = features_at(dataclasses.replace(history, signals=holes, cycles=cycles), times, end)
    assert not np.isinf(lossy).any()
    assert np.isfinite(lossy).sum() >= 0.95 * np.isfinite(clean).sum()
    both = np.isfinite(clean) & np.isfinite(lossy)
    assert np.median(np.abs(clean[both] - lossy[both])) < 0.1


def test_a_stuck_sensor_is_not_read_as_a_level() -> None:
    x = np.array([1.0, 1.1, 1.2] + [5.0] * STUCK_RUN + [1.3, 1.3, 1.4])
    out = _unstuck(x)
    assert np.isnan(out[3 : 3 + STUCK_RUN]).all()
    assert out[-3:].tolist() == [1.3, 1.3, 1.4]  # a short repeat is a value
    assert out[:3].tolist() == [1.0, 1.1, 1.2]


def test_a_stuck_oil_temperature_does_not_move_its_features(
    history: MachineHistory, times: np.ndarray
) -> None:
    stuck = dict(history.signals)
    oil = stuck["TempOil"].copy()
    t = stuck["ts"]
    frozen = (t >= times[-1] - 6 * HOUR_US) & (t < times[-1])
    oil[frozen] = 90.0  # the sensor hangs at a value far from the truth
    stuck["TempOil"] = oil
    end = int(times.max()) + HOUR_US
    at = times[-1:]
    clean = features_at(history, at, end)[0]
    hung = features_at(dataclasses.replace(history, signals=stuck), at, end)[0]
    # 90 degC would be dozens of spreads above the baseline: read as a dropout instead
    for name in ("sig:TempOil|dev2h", "sig:TempOil|dev8h", "sig:TempOil|ewma"):
        i = FEATURE_NAMES.index(name)
        assert np.isnan(hung[i]) or abs(hung[i] - clean[i]) < 1.0, name


def test_the_cache_gives_the_same_features_as_a_batch(
    history: MachineHistory, times: np.ndarray
) -> None:
    cache = FeatureCache()
    for t in times[-5:]:
        # the scorer's view: only what was known at t
        known = _until(history, int(t))
        got = cache.features(known, int(t))
        want = features_at(known, np.array([t]), int(t))[0]
        np.testing.assert_allclose(got, want, equal_nan=True)


def _until(h: MachineHistory, t: int) -> MachineHistory:
    def cut(table: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        k = int(np.searchsorted(table["ts"], t))
        return {name: col[:k] for name, col in table.items()}

    return dataclasses.replace(
        h, cycles=cut(h.cycles), signals=cut(h.signals), states=cut(h.states)
    )


def test_features_ignore_what_comes_after_the_time(
    history: MachineHistory, times: np.ndarray
) -> None:
    t = int(times[len(times) // 2])
    full = features_at(history, np.array([t]), t)[0]
    cut = features_at(_until(history, t), np.array([t]), t)[0]
    np.testing.assert_allclose(full, cut, equal_nan=True)


def test_slow_wear_shows_in_the_drift_where_the_rolling_baseline_follows_it(
    history: MachineHistory, times: np.ndarray
) -> None:
    # The oil warms by 20 degC over the last three days, as a pump that wears slowly heats it
    # (simulators: 26 degC at the end of its life). The rolling baseline takes in much of the
    # ramp; the last 8 h against the same mould more than a day ago (drift) sees more of it.
    drift = FEATURE_NAMES.index("sig:TempOil|drift")
    dev8h = FEATURE_NAMES.index("sig:TempOil|dev8h")
    every = features_at(history, times, int(times[-1]))[:, drift]
    (ok,) = np.nonzero(np.isfinite(every))  # times with a day-old stretch of the same mould
    assert len(ok) > 0
    t = int(times[ok[-1]])
    warm = dict(history.signals)
    ramp = np.clip((warm["ts"] - (t - 72 * HOUR_US)) / (72 * HOUR_US), 0.0, 1.0)
    warm["TempOil"] = warm["TempOil"] + 20.0 * ramp
    clean = features_at(history, np.array([t]), t)[0]
    worn = features_at(dataclasses.replace(history, signals=warm), np.array([t]), t)[0]
    assert worn[drift] - clean[drift] > 0.8  # spreads
    assert worn[drift] - clean[drift] > 1.5 * (worn[dev8h] - clean[dev8h])


def test_wear_that_shows_fast_has_a_steep_8h_slope_and_a_short_pace(
    history: MachineHistory, times: np.ndarray
) -> None:
    # The same 10 degC of oil warming, reached over the last 60 h (a P-F curve near its
    # start) or over the last 6 h (near its end): the 8 h slope and the pace tell them apart.
    name = {k: FEATURE_NAMES.index(f"sig:TempOil|{k}") for k in ("dev8h", "slope24h")}
    name |= {k: FEATURE_NAMES.index(f"sig:TempOil|{k}") for k in ("slope8h", "pace")}
    t = int(times[-1])

    def warmed(hours: float) -> dict[str, float]:
        warm = dict(history.signals)
        ramp = np.clip((warm["ts"] - (t - hours * HOUR_US)) / (hours * HOUR_US), 0.0, 1.0)
        warm["TempOil"] = warm["TempOil"] + 10.0 * ramp
        x = features_at(dataclasses.replace(history, signals=warm), np.array([t]), t)[0]
        return {k: float(x[j]) for k, j in name.items()}

    slow, fast = warmed(60.0), warmed(6.0)
    assert fast["slope8h"] > 0.3  # spreads per running hour
    assert fast["slope8h"] > 10 * abs(slow["slope8h"])
    for f in (slow, fast):  # a deviation of a spread or more, moving away from the baseline
        assert f["dev8h"] >= 1
        assert f["slope24h"] > 0
        assert f["pace"] == pytest.approx(f["dev8h"] / f["slope24h"])
    assert fast["pace"] < 0.8 * slow["pace"]  # hours the deviation took at its pace
    clean = warmed(1e-3 / 3600)  # the ramp over a millisecond before t: nothing seen yet
    assert not (abs(clean["dev8h"]) >= 1 and clean["dev8h"] * clean["slope24h"] > 0)
    assert np.isnan(clean["pace"])  # no pace without a deviation of a spread


def test_a_rise_is_a_share_of_the_lowest_level_whatever_the_mould_needs(
    history: MachineHistory, times: np.ndarray
) -> None:
    # An ejector that sticks: the force it needs 50 % up over the last 4 h. Its rise says
    # so, and says the same on a mould that needs twice the force throughout.
    t = int(times[-1])
    rise = FEATURE_NAMES.index("p50:EjectionForceMaximum|rise")
    fall = FEATURE_NAMES.index("p50:EjectionForceMaximum|fall")

    def with_force(factor: np.ndarray) -> np.ndarray:
        cycles = dict(history.cycles)
        cycles["EjectionForceMaximum"] = cycles["EjectionForceMaximum"] * factor
        return features_at(dataclasses.replace(history, cycles=cycles), np.array([t]), t)[0]

    ts = history.cycles["ts"]
    clean = with_force(np.ones(len(ts)))
    sticking = np.where(ts >= t - 4 * HOUR_US, 1.5, 1.0)
    worn = with_force(sticking)
    assert abs(clean[rise]) < 0.1
    assert abs(clean[fall]) < 0.1
    assert 0.4 < worn[rise] - clean[rise] < 0.6
    assert worn[fall] < -0.3  # above its highest level before them too
    assert with_force(2.0 * sticking)[rise] == pytest.approx(worn[rise], rel=1e-9)
    # the other parameters have not moved
    others = [i for i, n in enumerate(FEATURE_NAMES) if n.endswith(("|rise", "|fall"))]
    others = [i for i in others if i not in (rise, fall)]
    np.testing.assert_allclose(worn[others], clean[others], equal_nan=True)


def test_a_rise_or_fall_from_a_level_of_zero_is_missing_not_infinite(
    history: MachineHistory, times: np.ndarray
) -> None:
    # A parameter that read 0 before the last 2 h (a mould with no ejection, a sensor that
    # was unplugged) has no share to rise by: the feature is missing, never infinite, and
    # the other parameters keep theirs.
    t = int(times[-1])
    rise = FEATURE_NAMES.index("p50:EjectionForceMaximum|rise")
    fall = FEATURE_NAMES.index("p50:EjectionForceMaximum|fall")
    cycles = dict(history.cycles)
    ts = cycles["ts"]
    force = cycles["EjectionForceMaximum"]
    cycles["EjectionForceMaximum"] = np.where(ts >= t - 2 * HOUR_US, force, 0.0)
    zeroed = features_at(dataclasses.replace(history, cycles=cycles), np.array([t]), t)[0]
    clean = features_at(history, np.array([t]), t)[0]
    assert np.isnan(zeroed[rise])
    assert np.isnan(zeroed[fall])
    assert not np.isinf(zeroed).any()
    others = [i for i, n in enumerate(FEATURE_NAMES) if n.endswith(("|rise", "|fall"))]
    others = [i for i in others if i not in (rise, fall)]
    np.testing.assert_allclose(zeroed[others], clean[others], equal_nan=True)
