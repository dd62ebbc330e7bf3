"""Sensors as a press has them: offsets, slow drift, coloured noise, dropouts and stuck values.

Each press gets its own sensors when it is built: a fixed offset per thermocouple (and a gain
error per transducer), a drift that grows by a fixed amount per day, and noise that is not
white (the sum of a fast and a slow AR(1) process on the model's grid: close to 1/f over
the minutes to hours that matter). Now and then a sensor drops out (a broken wire, a
fieldbus timeout: the reading is NaN, which the live paths do not send) or sticks at its
last value for hours. All randomness is the sensors' own stream, drawn on the fixed grid,
so sampling more or less often changes nothing.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

TEMPS = (
    "TempZone1", "TempZone2", "TempZone3", "TempZone4", "TempNozzle", "TempMould", "TempOil",
)  # fmt: skip
TRANSDUCERS = ("PressureHydraulic", "MotorPower", "ScrewPosition")
ANALOG = TEMPS + TRANSDUCERS

FAST_STEP_S = 10.0  # the fast noise moves every 10 s ...
SLOW_STEP_S = 60.0  # ... the slow noise every minute
_FAST_TAU_S, _FAST_SD = 60.0, 0.25  # degC
_SLOW_TAU_S, _SLOW_SD = 1800.0, 0.3
_OFFSET_SD_C = 0.8
_DRIFT_SD_C_PER_DAY = 0.04
_GAIN_SD = 0.015  # relative, pressure and power
_POSITION_OFFSET_SD_MM = 0.2
DROPOUT_EVERY_S = 2 * 86_400.0  # per sensor, mean calendar time between dropouts
DROPOUT_MEAN_S = 180.0
STUCK_EVERY_S = 10 * 86_400.0  # per thermocouple
STUCK_MEAN_S = 2 * 3600.0


class Sensors:
    """The sensors of one press and their faults, advanced on the model's fixed grid."""

    def __init__(self, rng: random.Random, start_t: float) -> None:
        self._rng = rng
        self._t0 = start_t
        g = rng.gauss
        self.offset = {name: g(0.0, _OFFSET_SD_C) for name in TEMPS}
        self.drift_per_day = {name: g(0.0, _DRIFT_SD_C_PER_DAY) for name in TEMPS}
        self.gain = {name: 1.0 + g(0.0, _GAIN_SD) for name in TRANSDUCERS[:2]}
        self.position_offset = g(0.0, _POSITION_OFFSET_SD_MM)
        n = len(TEMPS)
        self._fast = [g(0.0, _FAST_SD) for _ in range(n)]
        self._slow = [g(0.0, _SLOW_SD) for _ in range(n)]
        self._fast_phi = math.exp(-FAST_STEP_S / _FAST_TAU_S)
        self._slow_phi = math.exp(-SLOW_STEP_S / _SLOW_TAU_S)
        self._fast_sd = _FAST_SD * math.sqrt(1.0 - self._fast_phi**2)
        self._slow_sd = _SLOW_SD * math.sqrt(1.0 - self._slow_phi**2)
        self._next_fast = start_t + FAST_STEP_S
        self._next_slow = start_t + SLOW_STEP_S
        # Episodes: when the next starts, and until when the current one lasts.
        ex = rng.expovariate
        self._drop_next = {name: start_t + ex(1.0 / DROPOUT_EVERY_S) for name in ANALOG}
        self._drop_until: dict[str, float] = {}
        self._stuck_next = {name: start_t + ex(1.0 / STUCK_EVERY_S) for name in TEMPS}
        self._stuck_until: dict[str, float] = {}
        self.stuck_value: dict[str, float] = {}
        self._first_episode = min(min(self._drop_next.values()), min(self._stuck_next.values()))

    def step(self, t: float, temps: Callable[[], tuple[float, ...]]) -> None:
        """Advance the noise and the episodes to grid time `t`; `temps`: the true TEMPS now."""
        rng = self._rng
        if t >= self._next_fast:
            self._next_fast += FAST_STEP_S
            phi, sd, g = self._fast_phi, self._fast_sd, rng.gauss
            self._fast = [phi * x + g(0.0, sd) for x in self._fast]
            if t >= self._next_slow:
                self._next_slow += SLOW_STEP_S
                phi, sd = self._slow_phi, self._slow_sd
                self._slow = [phi * x + g(0.0, sd) for x in self._slow]
        if t < self._first_episode:
            return
        for name, at in self._drop_next.items():
            if t >= at:
                self._drop_until[name] = t + rng.expovariate(1.0 / DROPOUT_MEAN_S)
                self._drop_next[name] = t + rng.expovariate(1.0 / DROPOUT_EVERY_S)
        for i, name in enumerate(TEMPS):
            if t >= self._stuck_next[name]:
                self._stuck_until[name] = t + rng.expovariate(1.0 / STUCK_MEAN_S)
                self._stuck_next[name] = t + rng.expovariate(1.0 / STUCK_EVERY_S)
                self.stuck_value[name] = round(self._read(i, name, temps()[i], t), 2)
        self._first_episode = min(min(self._drop_next.values()), min(self._stuck_next.values()))

    def _read(self, i: int, name: str, true: float, t: float) -> float:
        drift = self.drift_per_day[name] * (t - self._t0) / 86_400.0
        return true + self.offset[name] + drift + self._fast[i] + self._slow[i]

    def bias_c(self, name: str, t: float) -> float:
        """The thermocouple's offset and drift at `t` (a cycle's own readings share them)."""
        return self.offset[name] + self.drift_per_day[name] * (t - self._t0) / 86_400.0

    def apply(self, values: dict[str, float], t: float) -> None:
        """Turn the true values in `values` into readings (NaN: dropped out), in place."""
        for i, name in enumerate(TEMPS):
            if name in self._stuck_until and t < self._stuck_until[name]:
                values[name] = self.stuck_value[name]
            else:
                values[name] = round(self._read(i, name, values[name], t), 2)
        for name, gain in self.gain.items():
            values[name] = round(values[name] * gain, 2)
        values["ScrewPosition"] = round(values["ScrewPosition"] + self.position_offset, 2)
        for name, until in self._drop_until.items():
            if t < until:
                values[name] = math.nan
