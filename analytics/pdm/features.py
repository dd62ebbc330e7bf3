"""Features of one machine at a scoring time, from its own history only (never the truth).

Two steps. First the history is cut into 10-minute bins (`aggregate_bins`): per bin the
running seconds, cycles, scrap and defect causes, the median and interquartile range of
every cycle parameter, and the mean of every signal over its samples taken while running
(stuck runs and dropouts left out). A bin mean is the same whether the signal came every
10 s or as 60 s means, so nothing downstream depends on the sampling rate. Then the window
features at time t (`window_features`) compare the last 2 h and 8 h of running with the
machine's own baseline: the median of the same quantity over the lookback with the same
mould (after the last repair or maintenance when enough of it is left), scaled by its
spread across bins. So a feature says "3 spreads above what this press does with this
mould", whatever press or mould it is. A drift compares the last 8 h with the same mould
more than a day ago (slow wear moves the rolling baseline along with it). A rise (fall)
compares each parameter's median over the last 2 h with its lowest (highest) level with the
same mould before them, as a share of that level. Slopes over the
last day and the last 8 h (over the running bins, per hour of the clock), a pace (the hours
the deviation took at the day's slope: wear that shows fast is near its end), an EWMA,
scrap, alarms and running hours since each kind of repair, since maintenance and since the
mould change complete them.

`FeatureCache` keeps the bins of each machine: the scorer's `predict` aggregates only the
bins that are new or changed since its last call.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from analytics.pdm.history import LOOKBACK_H, PARAMETERS, MachineHistory
from contracts import CYCLE_PARAMETERS, DEFECT_CAUSES, SIGNALS, STANDSTILL_REASONS, MachineState

__all__ = [
    "BIN_US",
    "FEATURE_NAMES",
    "QUANTITIES",
    "SCORE_INTERVAL_US",
    "Bins",
    "FeatureCache",
    "aggregate_bins",
    "describe",
    "features_at",
    "scoring_times",
    "window_features",
]

HOUR_US = 3_600_000_000
BIN_US = 600_000_000  # 10 min
SCORE_INTERVAL_US = 1_800_000_000  # a score every 30 min of wall time
_LOOKBACK_BINS = int(LOOKBACK_H * HOUR_US // BIN_US)
_RUNNING_BIN_S = 120.0  # a bin with less running than this says nothing of the process
_MIN_BASE_BINS = 36  # 6 running hours: enough for a baseline after a repair
_STEADY_US = 60_000_000  # a sample this close to a change of state is not steady
STUCK_RUN = 6  # this many identical readings in a row: a stuck sensor, not a process value

# Signals averaged per bin: the analog ones (counters and the alarm word are not levels).
_LEVEL_SIGNALS = (
    "TempZone1", "TempZone2", "TempZone3", "TempZone4", "TempNozzle",
    "HeaterOutputZone2", "HeaterOutputZone3", "HeaterOutputZone4", "HeaterOutputNozzle",
    "TempMould", "TempOil", "PressureHydraulic", "MotorPower",
)  # fmt: skip
# Heater outputs sit at 0 or 100 % for long when saturated: a repeat there is no stuck sensor.
_NO_STUCK_CHECK = {"HeaterOutputZone2", "HeaterOutputZone3", "HeaterOutputZone4"}
_NO_STUCK_CHECK |= {"HeaterOutputNozzle"}
# Levels that mean the same on every press whatever the hall's temperature: heater outputs
# (100 % is a band giving all it has). Temperatures are compared with the press's own
# baseline only, so that summer or a warm hall is no warning.
_ABSOLUTE = ("HeaterOutputZone2", "HeaterOutputZone3", "HeaterOutputZone4", "HeaterOutputNozzle")
_SIGNAL_UNITS = {spec.name: spec.unit for spec in SIGNALS}
_FAULT_REASONS = STANDSTILL_REASONS[MachineState.FAULT]
_DEFECTS = tuple(DEFECT_CAUSES)

# Per-bin quantities: process levels whose deviation from the baseline is a feature.
QUANTITIES: tuple[str, ...] = (
    *(f"p50:{p}" for p in PARAMETERS),
    *(f"iqr:{p}" for p in PARAMETERS),
    *(f"sig:{s}" for s in _LEVEL_SIGNALS),
)
_COUNTS = ("run_s", "n_cycles", "n_bad", "n_alarm", "n_samples", *(f"def:{d}" for d in _DEFECTS))
_BIN_COLUMNS = (*_COUNTS, *QUANTITIES)
_COL = {name: i for i, name in enumerate(_BIN_COLUMNS)}
_Q0 = len(_COUNTS)
_NQ = len(QUANTITIES)
_PER_Q = 7  # features per quantity: dev2h, dev8h, ewma, slope24h, drift, slope8h, pace
_PACE_MAX_H = 500.0  # a pace beyond this says "slow" as well as any larger number
_LOW, _HIGH = 0.1, 0.9  # the quantiles of a parameter's bins taken as its lowest and highest
_IQR_COLS = np.array([QUANTITIES.index(f"iqr:{p}") for p in PARAMETERS])
_P50_COLS = np.array([QUANTITIES.index(f"p50:{p}") for p in PARAMETERS])


def _feature_names() -> tuple[str, ...]:
    names: list[str] = []
    for q in QUANTITIES:
        names += [f"{q}|dev2h", f"{q}|dev8h", f"{q}|ewma", f"{q}|slope24h", f"{q}|drift"]
        names += [f"{q}|slope8h", f"{q}|pace"]
    names += [f"sig:{s}|level2h" for s in _ABSOLUTE]
    names += ["scrap|2h", "scrap|8h", "scrap|base", "alarm|2h", "alarm|8h", "run|8h", "run|24h"]
    names += [f"def:{d}|8h" for d in _DEFECTS]
    names += [f"p50:{p}|rise" for p in PARAMETERS] + [f"p50:{p}|fall" for p in PARAMETERS]
    names += [f"since:{r}" for r in _FAULT_REASONS]
    names += ["since:planned_maintenance", "since:service", "since:mould_change"]
    return tuple(names)


FEATURE_NAMES = _feature_names()
_F = {name: i for i, name in enumerate(FEATURE_NAMES)}
_RISE = np.array([_F[f"p50:{p}|rise"] for p in PARAMETERS])
_FALL = np.array([_F[f"p50:{p}|fall"] for p in PARAMETERS])


@dataclass(frozen=True, slots=True)
class Bins:
    """Dense 10-minute bins of one machine: bin `first + i` is row i."""

    first: int
    values: np.ndarray  # (n, len(_BIN_COLUMNS)) float64
    moulds: np.ndarray  # (n,) object: the mould of the bin's last cycle (or the one before)

    @property
    def end(self) -> int:
        return self.first + len(self.values)


# --- step 1: bins ---------------------------------------------------------------------------


def _running_seconds(history: MachineHistory, edges_us: np.ndarray, until_us: int) -> np.ndarray:
    """Seconds of running in each interval between consecutive `edges_us`."""
    ts = history.states["ts"]
    if len(ts) == 0:
        return np.zeros(len(edges_us) - 1)
    run = (history.states["state"] == MachineState.RUNNING.value).astype(np.float64)
    ends = np.append(ts[1:], max(int(until_us), int(ts[-1])))
    cum = np.concatenate(([0.0], np.cumsum(run * (ends - ts) / 1e6)))
    x = np.clip(edges_us, ts[0], ends[-1])
    i = np.clip(np.searchsorted(ts, x, side="right") - 1, 0, len(ts) - 1)
    at = cum[i] + run[i] * (x - ts[i]) / 1e6
    at = np.minimum(at, cum[i + 1])
    return np.diff(at)


def _steady_running(history: MachineHistory, sample_ts: np.ndarray) -> np.ndarray:
    """Samples taken while running, at least a minute away from any change of state.

    A minute's mean from the database and the six 10 s samples it averages then agree:
    neither mixes the standstill's readings (pressure 0, power 0) into the process level.
    """
    ts = history.states["ts"]
    if len(ts) == 0:
        return np.zeros(len(sample_ts), bool)
    run = history.states["state"] == MachineState.RUNNING.value
    i = np.searchsorted(ts, sample_ts, side="right") - 1
    ic = np.clip(i, 0, None)
    nxt = np.append(ts[1:], np.iinfo(np.int64).max)[ic]
    steady = (sample_ts - ts[ic] >= _STEADY_US) & (nxt - sample_ts >= _STEADY_US)
    return np.asarray((i >= 0) & run[ic] & steady)


def _unstuck(x: np.ndarray) -> np.ndarray:
    """`x` with NaN over every run of at least STUCK_RUN identical readings."""
    n = len(x)
    if n < STUCK_RUN:
        return x
    same = np.concatenate(([False], x[1:] == x[:-1]))
    starts = np.flatnonzero(~same)  # each run begins where a value differs from the last
    lengths = np.diff(np.append(starts, n))
    long_runs = lengths >= STUCK_RUN
    if not long_runs.any():
        return x
    mask = np.repeat(long_runs, lengths)
    out = x.copy()
    out[mask] = np.nan
    return out


def _binned_quantiles(
    bin_idx: np.ndarray, values: np.ndarray, nbins: int, qs: tuple[float, ...]
) -> np.ndarray:
    """Per bin the quantiles `qs` of the finite `values` (lower interpolation); NaN if none."""
    out = np.full((nbins, len(qs)), np.nan)
    ok = np.isfinite(values)
    if not ok.any():
        return out
    b, v = bin_idx[ok], values[ok]
    order = np.lexsort((v, b))
    b, v = b[order], v[order]
    counts = np.bincount(b, minlength=nbins)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    has = counts > 0
    for j, q in enumerate(qs):
        k = starts + np.floor(q * (counts - 1)).astype(np.int64)
        out[has, j] = v[k[has]]
    return out


def aggregate_bins(history: MachineHistory, first: int, end: int, until_us: int) -> Bins:
    """The bins `first` .. `end - 1` (bin i covers [i, i + 1) x BIN_US) of `history`.

    `until_us`: how far the last state row lasts (the end of what is known).
    """
    n = max(end - first, 0)
    values = np.zeros((n, len(_BIN_COLUMNS)))
    values[:, _Q0:] = np.nan
    moulds = np.full(n, None, dtype=object)
    if n == 0:
        return Bins(first, values, moulds)
    lo, hi = first * BIN_US, end * BIN_US
    edges = np.arange(first, end + 1, dtype=np.int64) * BIN_US
    values[:, _COL["run_s"]] = _running_seconds(history, edges, until_us)

    cyc = history.cycles
    a, z = np.searchsorted(cyc["ts"], [lo, hi])
    cb = (cyc["ts"][a:z] // BIN_US - first).astype(np.int64)
    quality = cyc["quality"][a:z]
    counted = quality != "test"
    values[:, _COL["n_cycles"]] = np.bincount(cb[counted], minlength=n)
    values[:, _COL["n_bad"]] = np.bincount(cb[quality == "bad"], minlength=n)
    defects = cyc["defect"][a:z]
    for d in _DEFECTS:
        values[:, _COL[f"def:{d}"]] = np.bincount(cb[defects == d], minlength=n)
    for p in PARAMETERS:
        q = _binned_quantiles(cb, cyc[p][a:z], n, (0.25, 0.5, 0.75))
        values[:, _COL[f"p50:{p}"]] = q[:, 1]
        values[:, _COL[f"iqr:{p}"]] = q[:, 2] - q[:, 0]
    if z > a:
        # The mould of each bin: that of its last cycle, carried over bins without cycles.
        last = np.full(n, -1)
        np.maximum.at(last, cb, np.arange(z - a))
        filled = np.maximum.accumulate(last)
        known = filled >= 0
        moulds[known] = cyc["mould"][a:z][filled[known]]
    if a > 0:
        moulds[moulds == None] = cyc["mould"][a - 1]  # noqa: E711  (elementwise)

    sig = history.signals
    a, z = np.searchsorted(sig["ts"], [lo, hi])
    if z > a:
        ts = sig["ts"][a:z]
        sb = (ts // BIN_US - first).astype(np.int64)
        run = _steady_running(history, ts)
        rb = sb[run]
        values[:, _COL["n_samples"]] = np.bincount(rb, minlength=n)
        alarm = sig["AlarmWord"][a:z][run]
        values[:, _COL["n_alarm"]] = np.bincount(rb[np.nan_to_num(alarm) != 0], minlength=n)
        for s in _LEVEL_SIGNALS:
            x = sig[s][a:z]
            if s not in _NO_STUCK_CHECK:
                x = _unstuck(x)
            x = x[run]
            ok = np.isfinite(x)
            total = np.bincount(rb[ok], weights=x[ok], minlength=n)
            count = np.bincount(rb[ok], minlength=n)
            with np.errstate(invalid="ignore", divide="ignore"):
                values[:, _COL[f"sig:{s}"]] = np.where(count > 0, total / count, np.nan)
    return Bins(first, values, moulds)


# --- step 2: window features ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Services:
    """Ends of the repairs (per fault reason), maintenance and mould changes of one machine."""

    fault_end: dict[str, np.ndarray]
    maintenance_end: np.ndarray
    any_end: np.ndarray
    mould_change: np.ndarray
    run_cum_ts: np.ndarray  # running seconds before each time of run_cum_ts: the state times
    run_cum: np.ndarray
    run_state: np.ndarray


def _services(history: MachineHistory, until_us: int) -> _Services:
    st = history.states
    ts, state, reason = st["ts"], st["state"], st["reason"]
    ends = np.append(ts[1:], max(until_us, int(ts[-1]) if len(ts) else until_us))
    fault = state == MachineState.FAULT.value
    fault_end = {r: ends[fault & (reason == r)] for r in _FAULT_REASONS}
    maint = (state == MachineState.PLANNED_STOP.value) & (reason == "planned_maintenance")
    any_end = np.sort(np.concatenate([ends[fault], ends[maint]]))
    setup = ends[(state == MachineState.SETUP.value)]
    run = (state == MachineState.RUNNING.value).astype(np.float64)
    cum = np.concatenate(([0.0], np.cumsum(run * (ends - ts) / 1e6)))
    return _Services(fault_end, ends[maint], any_end, setup, ts, cum, run)


def _run_s_before(sv: _Services, t: np.ndarray | int) -> np.ndarray:
    ts = sv.run_cum_ts
    x = np.asarray(t, dtype=np.int64)
    if len(ts) == 0:
        return np.zeros(x.shape)
    i = np.clip(np.searchsorted(ts, x, side="right") - 1, 0, len(ts) - 1)
    xc = np.maximum(x, ts[0])
    at = sv.run_cum[i] + sv.run_state[i] * (xc - ts[i]) / 1e6
    return np.asarray(np.minimum(at, sv.run_cum[i + 1]))


def _since_h(sv: _Services, events: np.ndarray, t: int, fallback_us: int | None) -> float:
    """Running hours from the last of `events` before `t` to `t`; NaN if none is known."""
    k = int(np.searchsorted(events, t, side="right"))
    if k > 0:
        last = int(events[k - 1])
    elif fallback_us is not None and fallback_us <= t:
        last = fallback_us
    else:
        return float("nan")
    return float(_run_s_before(sv, t) - _run_s_before(sv, last)) / 3600.0


def _nanmedian(x: np.ndarray) -> np.ndarray:
    """Column medians of the finite values; NaN (silently) where a column has none."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.asarray(np.nanmedian(x, axis=0))


def _quantiles(x: np.ndarray, qs: tuple[float, ...]) -> list[np.ndarray]:
    """Per column the (lower) `qs` quantiles of the values that are not NaN; NaN where a
    column has none (one sort for all: np.nanpercentile goes column by column)."""
    s = np.sort(x, axis=0)  # NaN last
    n = (~np.isnan(x)).sum(axis=0)
    cols = np.arange(x.shape[1])
    return [
        np.where(n > 0, s[np.maximum(np.floor(q * (n - 1)).astype(np.int64), 0), cols], np.nan)
        for q in qs
    ]


def _slope(x: np.ndarray, dev: np.ndarray) -> np.ndarray:
    """Per column the least-squares slope of dev against x over its finite values (NaN
    with fewer than 6)."""
    ok = np.isfinite(dev)
    cnt = ok.sum(axis=0)
    xm = (x[:, None] * ok).sum(axis=0) / np.maximum(cnt, 1)
    dx = np.where(ok, x[:, None] - xm, 0.0)
    dm = np.where(ok, dev, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ym = dm.sum(axis=0) / np.maximum(cnt, 1)
        slope = (dx * (dm - ym * ok)).sum(axis=0) / (dx * dx).sum(axis=0)
    return np.asarray(np.where(cnt >= 6, slope, np.nan))


def window_features(
    bins: Bins,
    t_us: int,
    sv: _Services,
    last_service_us: dict[str, int] | None = None,
    reason_of: dict[str, str] | None = None,
    levels: dict[str, np.ndarray] | None = None,
) -> np.ndarray:
    """The feature vector (FEATURE_NAMES) at `t_us` from the complete bins before it.

    `levels`, when given, receives per quantity (QUANTITIES) the baseline and the median of
    the last 8 h in the quantity's own unit ("base", "recent8"): what evidence texts quote.
    """
    out = np.full(len(FEATURE_NAMES), np.nan)
    t_bin = int(t_us // BIN_US)
    lo = max(t_bin - _LOOKBACK_BINS, bins.first)
    hi = min(t_bin, bins.end)
    if hi <= lo:
        return out
    v = bins.values[lo - bins.first : hi - bins.first]
    moulds = bins.moulds[lo - bins.first : hi - bins.first]
    n = len(v)
    age_h = (hi - np.arange(lo, hi) - 0.5) * (BIN_US / HOUR_US)  # hours before t (bin middle)
    running = v[:, _COL["run_s"]] >= _RUNNING_BIN_S
    q = v[:, _Q0:]

    # The baseline: the same mould, after the last service when enough of that is left.
    mould = moulds[-1]
    same = running & (moulds == mould) if mould is not None else running
    k = int(np.searchsorted(sv.any_end, t_us, side="right"))
    if k > 0:
        service_bin = int(sv.any_end[k - 1] // BIN_US) + 1
        after = same & (np.arange(lo, hi) >= service_bin)
        if after.sum() >= _MIN_BASE_BINS:
            same = after
    if same.sum() >= 6:
        ref = q[same]
        base = _nanmedian(ref)
        spread = 1.4826 * _nanmedian(np.abs(ref - base))
        # Values logged with few digits give bins that never differ (spread 0): a floor of
        # 1 % of the level, and for a spread (IQR) 0.2 % of its parameter's level, keeps a
        # tick of rounding from reading as dozens of spreads.
        floor = 0.01 * np.abs(base)
        floor[_IQR_COLS] = np.maximum(floor[_IQR_COLS], 0.002 * np.abs(base[_P50_COLS]))
        scale = np.maximum(spread, np.where(np.isfinite(floor), floor, 0.0) + 1e-9)
        recent2 = running & (age_h < 2)
        recent8 = running & (age_h < 8)
        now2 = _nanmedian(q[recent2]) if recent2.any() else None
        if now2 is not None:
            out[0 : _PER_Q * _NQ : _PER_Q] = (now2 - base) / scale
        if recent8.any():
            r8 = _nanmedian(q[recent8])
            out[1 : _PER_Q * _NQ : _PER_Q] = (r8 - base) / scale
            if levels is not None:
                levels["base"], levels["recent8"] = base, r8
            # Drift: the last 8 h against the same mould more than a day ago (after the last
            # service), where slow wear has not yet moved the baseline along with it.
            old = same & (age_h >= 24)
            if old.sum() >= _MIN_BASE_BINS:
                out[4 : _PER_Q * _NQ : _PER_Q] = (r8 - _nanmedian(q[old])) / scale
        # EWMA (half-life 3 running hours) of the deviation, over the last day's running bins
        day = running & (age_h < 24)
        if day.any():
            w = np.exp(-np.log(2) * np.cumsum(running[::-1])[::-1][day] / 18.0)
            dev = (q[day] - base) / scale
            ok = np.isfinite(dev)
            wsum = (w[:, None] * ok).sum(axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[2 : _PER_Q * _NQ : _PER_Q] = np.where(
                    wsum > 0, (w[:, None] * np.where(ok, dev, 0.0)).sum(axis=0) / wsum, np.nan
                )
            # Slopes (spreads per hour of the clock) over the running bins of the last day and 8 h
            for col, hours in ((3, 24.0), (5, 8.0)):
                span = age_h[day] < hours
                if span.sum() >= 6:
                    out[col : _PER_Q * _NQ : _PER_Q] = _slope(-age_h[day][span], dev[span])
            # Pace: the hours the deviation took at the day's slope. The same deviation reached
            # in a few hours (a P-F curve near its end) or over days (near its start) says
            # how near the failure is; only a deviation of a spread or more moving away from
            # the baseline has one.
            d8 = out[1 : _PER_Q * _NQ : _PER_Q]
            s24 = out[3 : _PER_Q * _NQ : _PER_Q]
            with np.errstate(invalid="ignore", divide="ignore"):
                pace = np.where((np.abs(d8) >= 1) & (d8 * s24 > 0), d8 / s24, np.nan)
            out[6 : _PER_Q * _NQ : _PER_Q] = np.minimum(pace, _PACE_MAX_H)

        # Rise and fall: the last 2 h against the lowest (highest) level with the same mould
        # before them in the lookback, as a share of it. Wear that multiplies a level (an
        # ejector that sticks needs more force) reads the same on any mould, and a baseline
        # that days of wear have moved along with it does not hide it.
        before = same & ~recent2
        if now2 is not None and before.any():
            low, high = _quantiles(q[before][:, _P50_COLS], (_LOW, _HIGH))
            now = now2[_P50_COLS]
            with np.errstate(invalid="ignore", divide="ignore"):
                out[_RISE] = np.where(np.abs(low) > 0, (now - low) / np.abs(low), np.nan)
                out[_FALL] = np.where(np.abs(high) > 0, (high - now) / np.abs(high), np.nan)

    i = _PER_Q * _NQ
    recent2 = running & (age_h < 2)
    if recent2.any():
        out[i : i + len(_ABSOLUTE)] = _nanmedian(
            v[recent2][:, [_COL[f"sig:{s}"] for s in _ABSOLUTE]]
        )
    i += len(_ABSOLUTE)

    def ratio(num: str, den: str, mask: np.ndarray) -> float:
        d = float(v[mask, _COL[den]].sum())
        return float(v[mask, _COL[num]].sum()) / d if d > 0 else float("nan")

    m8 = age_h < 8
    out[_F["scrap|2h"]] = ratio("n_bad", "n_cycles", age_h < 2)
    out[_F["scrap|8h"]] = ratio("n_bad", "n_cycles", m8)
    out[_F["scrap|base"]] = ratio("n_bad", "n_cycles", np.ones(n, bool))
    out[_F["alarm|2h"]] = ratio("n_alarm", "n_samples", age_h < 2)
    out[_F["alarm|8h"]] = ratio("n_alarm", "n_samples", m8)
    out[_F["run|8h"]] = float(v[m8, _COL["run_s"]].sum()) / (8 * 3600)
    out[_F["run|24h"]] = float(v[age_h < 24, _COL["run_s"]].sum()) / (24 * 3600)
    for d in _DEFECTS:
        out[_F[f"def:{d}|8h"]] = ratio(f"def:{d}", "n_cycles", m8)
    known = last_service_us or {}
    by_reason: dict[str, int] = {}
    for comp, ts in known.items():
        r = (reason_of or {}).get(comp)
        if r is not None:
            by_reason[r] = max(by_reason.get(r, ts), ts)
    for r in _FAULT_REASONS:
        out[_F[f"since:{r}"]] = _since_h(sv, sv.fault_end[r], t_us, by_reason.get(r))
    out[_F["since:planned_maintenance"]] = _since_h(sv, sv.maintenance_end, t_us, None)
    fallback = max(known.values()) if known else None
    out[_F["since:service"]] = _since_h(sv, sv.any_end, t_us, fallback)
    out[_F["since:mould_change"]] = _since_h(sv, sv.mould_change, t_us, None)
    return out


def scoring_times(history: MachineHistory, start_us: int, end_us: int) -> np.ndarray:
    """Times on the 30-minute grid in [start, end] after which the machine made a cycle
    within the last 30 min: a machine standing still (nights, weekends, repairs) is not
    scored, as the scoring service does not score it either."""
    first = -(-start_us // SCORE_INTERVAL_US) * SCORE_INTERVAL_US
    grid = np.arange(first, end_us + 1, SCORE_INTERVAL_US, dtype=np.int64)
    ts = history.cycles["ts"]
    if len(ts) == 0:
        return grid[:0]
    a = np.searchsorted(ts, grid - SCORE_INTERVAL_US)
    z = np.searchsorted(ts, grid)
    return grid[z > a]


def features_at(
    history: MachineHistory,
    times_us: np.ndarray,
    until_us: int,
    reason_of: dict[str, str] | None = None,
) -> np.ndarray:
    """The feature matrix (len(times), FEATURE_NAMES) of `history` at each of `times_us`."""
    times_us = np.asarray(times_us, dtype=np.int64)
    if len(times_us) == 0:
        return np.zeros((0, len(FEATURE_NAMES)))
    first = int(times_us.min() // BIN_US) - _LOOKBACK_BINS
    end = int(times_us.max() // BIN_US) + 1
    bins = aggregate_bins(history, first, end, until_us)
    sv = _services(history, until_us)
    return np.stack(
        [window_features(bins, int(t), sv, history.last_service_us, reason_of) for t in times_us]
    )


class FeatureCache:
    """Bins per machine kept between calls, so one more score costs one or two new bins."""

    def __init__(self) -> None:
        self._bins: dict[str, tuple[Bins, np.ndarray]] = {}

    def features(
        self,
        history: MachineHistory,
        t_us: int,
        reason_of: dict[str, str] | None = None,
        levels: dict[str, np.ndarray] | None = None,
    ) -> np.ndarray:
        """The feature vector of `history` at `t_us` (`levels`: see window_features)."""
        t_bin = int(t_us // BIN_US)
        first, end = t_bin - _LOOKBACK_BINS, t_bin
        sig = _signature(history, first, end)
        cached = self._bins.get(history.machine_id)
        values = np.empty((end - first, len(_BIN_COLUMNS)))
        moulds = np.empty(end - first, dtype=object)
        stale = np.ones(end - first, bool)
        if cached is not None:
            old, old_sig = cached
            a, z = max(first, old.first), min(end, old.end)
            if z > a:
                same = np.all(
                    old_sig[a - old.first : z - old.first] == sig[a - first : z - first], axis=1
                )
                rows = np.arange(a, z)[same]
                values[rows - first] = old.values[rows - old.first]
                moulds[rows - first] = old.moulds[rows - old.first]
                stale[rows - first] = False
        for lo, hi in _runs(stale):
            part = aggregate_bins(history, first + lo, first + hi, t_us)
            values[lo:hi] = part.values
            moulds[lo:hi] = part.moulds
        bins = Bins(first, values, moulds)
        # A bin is kept only when complete: its end lies before the time scored.
        self._bins[history.machine_id] = (bins, sig)
        sv = _services(history, t_us)
        return window_features(bins, t_us, sv, history.last_service_us, reason_of, levels)

    def forget(self, machine_id: str) -> None:
        self._bins.pop(machine_id, None)


def _signature(history: MachineHistory, first: int, end: int) -> np.ndarray:
    """Per bin what decides its aggregate: rows of each table in it, the state at its start."""
    edges = np.arange(first, end + 1, dtype=np.int64) * BIN_US
    cols = []
    for table in (history.cycles, history.signals, history.states):
        idx = np.searchsorted(table["ts"], edges)
        cols.append(np.diff(idx))
    st = history.states["ts"]
    cols.append(np.searchsorted(st, edges[:-1], side="right"))
    last_cycle = np.searchsorted(history.cycles["ts"], edges[:-1])  # the mould carried over
    cols.append(last_cycle)
    return np.stack(cols, axis=1)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[lo, hi) of each run of True in `mask`."""
    d = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist(), strict=True))


def describe(
    feature: str, value: float, recent: float | None = None, base: float | None = None
) -> str:
    """One line an engineer can check for a feature's value.

    recent, base: for a deviation from the baseline, the quantity's median over the last
    8 h and its baseline, in its own unit (window_features' `levels`).
    """
    quantity, _, kind = feature.partition("|")
    what = _quantity_text(quantity)
    unit = _unit(quantity)
    head = what
    if recent is not None and base is not None and math.isfinite(recent) and math.isfinite(base):
        head = f"{what} {recent:.4g}{unit} over the last 8 h, usually {base:.4g}{unit} here"
    side = "above" if value >= 0 else "below"
    if kind in ("dev2h", "dev8h"):
        span = "2 h" if kind == "dev2h" else "8 h"
        return f"{head}: {abs(value):.1f} spreads {side} its baseline over the last {span}"
    if kind == "ewma":
        return f"{head}: {abs(value):.1f} spreads {side} its baseline, smoothed"
    if kind == "drift":
        return f"{head}: {abs(value):.1f} spreads {side} where it was more than a day ago"
    if kind == "slope24h":
        return f"{head}: trending {value:+.2f} spreads per hour over the last day"
    if kind == "slope8h":
        return f"{head}: trending {value:+.2f} spreads per hour over the last 8 h"
    if kind == "pace":
        return f"{head}: at the last day's pace its deviation took {value:.0f} h"
    if kind == "level2h":
        return f"{what} at {value:.1f}{unit} over the last 2 h"
    if kind in ("rise", "fall"):
        where = "above its lowest" if kind == "rise" else "below its highest"
        return f"{what}: {100 * value:.0f} % {where} with this mould in {LOOKBACK_H / 24:g} days"
    if quantity == "scrap" or quantity.startswith("def:"):
        span = {"2h": "last 2 h", "8h": "last 8 h", "base": f"last {LOOKBACK_H / 24:g} days"}.get(
            kind, kind
        )
        return f"{what} {100 * value:.1f} % of cycles over the {span}"
    if quantity == "alarm":
        return f"alarms active {100 * value:.0f} % of running time over the last {kind}"
    if quantity == "run":
        return f"running {100 * value:.0f} % of the last {kind}"
    if quantity.startswith("since:"):
        return f"{value:.0f} running hours since the last {quantity[6:].replace('_', ' ')}"
    return f"{feature} = {value:.3g}"


def _unit(quantity: str) -> str:
    name = quantity.partition(":")[2]
    unit = CYCLE_PARAMETERS.get(name) or _SIGNAL_UNITS.get(name, "")
    if not unit or unit == "1":
        return ""
    return {"degC": " °C", "%": " %"}.get(unit, f" {unit}")


def _quantity_text(quantity: str) -> str:
    kind, _, name = quantity.partition(":")
    if kind == "p50":
        return f"{name} (median)"
    if kind == "iqr":
        return f"{name} spread (IQR)"
    if kind == "sig":
        return name
    if kind == "def":
        return f"defect {name.replace('_', ' ')}"
    if kind == "scrap":
        return "scrap"
    return quantity
