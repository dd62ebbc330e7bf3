"""Barrel heater zones under closed-loop PI control, and first-order temperatures.

Each zone is a first-order plant, heated by its band (up to HEATER_GAIN_C above ambient at
100 % output, times the band's health) and by the screw's shear while it doses. The controller is
a PI with anti-windup. Steps use the exact solution for a constant output over the step, so
the fixed step of the model stays stable.
"""

from __future__ import annotations

import math

from simulators.specs import AMBIENT_C

HEATER_GAIN_C = 430.0  # degC above ambient a healthy band reaches at 100 % output


class HeaterZone:
    """One heated barrel zone (or the nozzle) and its temperature controller."""

    __slots__ = ("_integral", "_ki", "_kp", "_tau_s", "output", "setpoint", "temp")

    def __init__(self, setpoint_c: float, tau_s: float = 2400.0) -> None:
        self.setpoint = setpoint_c
        self.temp = setpoint_c
        # A healthy band holds a PP or ABS setpoint at 40-50 % output.
        self.output = (setpoint_c - AMBIENT_C) / HEATER_GAIN_C
        self._tau_s = tau_s
        self._kp = 0.05  # output per degC of error
        self._ki = self._kp / 300.0
        self._integral = self.output

    def retarget(self, setpoint_c: float) -> None:
        """A new material's setpoint (after a mould change); the band stays the same."""
        self.setpoint = setpoint_c

    def step(
        self,
        dt_s: float,
        health: float,
        shear_c: float,
        enabled: bool = True,
        ambient_c: float = AMBIENT_C,
    ) -> None:
        """Control and heat for `dt_s` seconds; `shear_c`: heating by the screw, in degC.

        A wearing band gives less power (70 % of its loss is in its health; a band at the
        failure threshold is far below what a hot zone needs); a burnt-out one (health 0)
        gives none. `enabled` False: heating switched off (nights, weekends): the controller
        outputs nothing and holds its integral for the morning.
        """
        power = 0.3 + 0.7 * health if health > 0.0 else 0.0
        if enabled:
            error = self.setpoint - self.temp
            wanted = self._kp * error + self._integral
            output = min(1.0, max(0.0, wanted))
            if output == wanted or (output >= 1.0) != (error > 0):  # anti-windup
                self._integral += self._ki * error * dt_s
                self._integral = min(1.0, max(0.0, self._integral))
        else:
            output = 0.0
        self.output = output
        equilibrium = ambient_c + HEATER_GAIN_C * output * power + shear_c
        self.temp = equilibrium + (self.temp - equilibrium) * math.exp(-dt_s / self._tau_s)


def relax(value: float, target: float, dt_s: float, tau_s: float) -> float:
    """A first-order lag: `value` moved towards `target` over `dt_s` with time constant `tau_s`."""
    return target + (value - target) * math.exp(-dt_s / tau_s)
