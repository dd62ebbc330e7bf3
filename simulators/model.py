"""An injection-moulding machine, cycle by cycle: process physics, production life and wear.

Pure code: the caller passes the time in (`advance`) and gets events out; `sample` gives the
continuous signals at the model's time. All randomness comes from the injected source, drawn
only at events and on a fixed thermal grid, so the events do not depend on how often the
caller advances or samples, and one seed gives the same run bit for bit. Measurement noise
comes from a second source derived from the first.

The cycle: mould close, injection, hold, cooling with dosing in parallel (dosing lengthens the
cycle only when it outlasts cooling), mould open, ejection. Scrap has process causes: a cold
melt needs more pressure than the limit allows (short shot), a worn check ring lets the
cushion run out and hold pressure go nowhere (sink marks), a fouled mould runs hot (warpage),
a long standstill degrades the melt in the barrel (start-up scrap). Every
`test_sample_interval_h` of running a quality-control sample is taken: the next cycle whose
parts are fine gives test parts, counted neither good nor bad.

Jobs: the machine works through orders, one mould each. When an order's good parts are made
(job finished) the next mould goes in (set-up active), the first parts after it are
start-up (start-up active) until one is good (job in production): EUROMAP 77's JobStatus,
announced by a JobChanged event at each change. With an `order_gap_median_h` the next order
is not always waiting: the machine stands in a planned stop, "no_order", until it comes.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime

from contracts import Job, JobStatus, MachineState, PartQuality
from simulators.faults import BREAKDOWN, HEATERS, Component, Health, Maintenance
from simulators.specs import AMBIENT_C, SHEAR_HEATING_C, MachineSpec, Mould
from simulators.thermal import HeaterZone, relax

THERMAL_STEP_S = 5.0  # the fixed grid of temperatures, heater control and wear
HEATER_KW = 3.0  # per heated zone at 100 % output
STARTUP_SCRAP_AFTER_S = 600.0  # a standstill this long degrades the melt left in the barrel
PREHEAT_S = 2700.0  # the heating timer switches the barrel on this long before a shift
READY_BAND_C = 10.0  # a stopped machine restarts only with every zone this close to setpoint
READY_MOULD_BAND_C = 8.0
TRIP_BAND_C = 30.0  # a running zone this far below its setpoint trips the machine
RECHECK_S = 60.0  # how often a machine heating up checks whether it is ready
HEAT_UP_LIMIT_S = 2700.0  # a zone not at temperature after this long has a failed band
_BACK_PRESSURE_BAR = 4.3  # hydraulic, while dosing (43 bar specific)
_DECOMPRESSION_MM = 3.0
# Shear heating by zone (2, 3, 4, nozzle) while the machine runs, in degC.
_SHEAR_C = (3.0, 6.0, 6.0, 2.0)


@dataclass(frozen=True, slots=True)
class CycleDone:
    ts: datetime
    shot: int
    quality: PartQuality
    parts: int
    parameters: dict[str, float]
    mould: str
    defect: str | None  # ground truth: why the parts are bad (None unless quality is bad)
    job: str | None = None  # the JobName of the order the parts are for


@dataclass(frozen=True, slots=True)
class JobChanged:
    """The machine's job, its mould or its JobStatus changed (and when it comes up)."""

    ts: datetime
    job: Job


@dataclass(frozen=True, slots=True)
class StateEntered:
    ts: datetime
    state: MachineState
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ComponentFailed:
    """Ground truth: a component reached its failure threshold."""

    ts: datetime
    component: Component
    reason: str


@dataclass(frozen=True, slots=True)
class ComponentRestored:
    """Ground truth: repair or maintenance made components as new."""

    ts: datetime
    components: tuple[Component, ...]
    why: str  # "repair" or "maintenance"


Event = CycleDone | StateEntered | ComponentFailed | ComponentRestored | JobChanged

_truth_log = logging.getLogger("simulators.truth")


def log_truth(machine_id: str, event: Event) -> None:
    """One log line per ground-truth event of a real-time run (the export has them in files)."""
    if isinstance(event, ComponentFailed):
        _truth_log.info(
            "ground truth: machine %s %s broke down (%s) at %s",
            machine_id, event.component.value, event.reason, event.ts.isoformat(),
        )  # fmt: skip
    elif isinstance(event, ComponentRestored):
        _truth_log.info(
            "ground truth: machine %s %s restored by %s at %s",
            machine_id, ", ".join(c.value for c in event.components), event.why,
            event.ts.isoformat(),
        )  # fmt: skip


class _Cycle:
    """The plan of one cycle, drawn when it starts: phase times and process values."""

    __slots__ = (
        "cool_s",
        "cushion_mm",
        "defect",
        "dose_s",
        "eject_kn",
        "end",
        "energy_kwh",
        "hold_bar",
        "inject_s",
        "melt_c",
        "mould_c",
        "peak_bar",
        "start",
        "stroke_mm",
        "t_cool",
        "t_done",
        "t_dose_end",
        "t_eject",
        "t_hold",
        "t_inject",
        "t_open",
        "weight_g",
    )  # fmt: skip

    start: float
    t_inject: float
    t_hold: float
    t_cool: float
    t_dose_end: float
    t_open: float
    t_eject: float
    t_done: float
    end: float
    peak_bar: float
    hold_bar: float
    cushion_mm: float
    stroke_mm: float
    melt_c: float
    mould_c: float
    weight_g: float
    eject_kn: float
    defect: str | None
    energy_kwh: float
    inject_s: float
    dose_s: float
    cool_s: float


def _ts(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


class MachineModel:
    """One machine advancing through cycles, stops, mould changes, wear and repairs."""

    def __init__(self, spec: MachineSpec, rng: random.Random, now: datetime) -> None:
        self.spec = spec
        self._rng = rng
        # Measurement noise is seeded by the sample's time, so a sample at one instant is the
        # same whether the caller samples every second or every ten.
        self._noise = random.Random()
        self._noise_key = rng.getrandbits(32) << 42
        self.t = now.timestamp()
        self._start_t = self.t
        self._grid_t = self.t + THERMAL_STEP_S
        self.health = Health(spec.degradations)
        self.state = MachineState.RUNNING
        self.reason: str | None = None
        self.shots = 0
        self.good = 0
        self.bad = 0
        self._mould_index = 0
        self._mould_shots = {m.name: m.lifetime_shots for m in spec.moulds}
        material = self.mould.material
        self.zones = [
            HeaterZone(sp, tau)
            for sp, tau in zip(
                (*material.zone_setpoints_c[1:], material.nozzle_setpoint_c),
                (2400.0, 2400.0, 2400.0, 600.0),
                strict=True,
            )
        ]
        self.feed_c = material.zone_setpoints_c[0]
        self.mould_c = material.mould_setpoint_c + 2.0
        self.oil_c = 44.0
        self._cycle: _Cycle | None = None
        self._last: _Cycle | None = None
        self._until = self.t
        # The order on the machine when it comes up is under way: part of it is made.
        self._job_parts = 0  # the order's nominal parts (set by _job_shots)
        self._job_shots_left = math.ceil(self._job_shots() * rng.uniform(0.1, 1.0))
        self._job_name = self._new_job_name()
        self.job_status = JobStatus.JOB_IN_PRODUCTION
        self._stop_clocks = [rng.expovariate(1.0 / c.mtbf_h) for c in spec.stops]
        self._failed: list[Component] = []
        self._repairing: tuple[Component, ...] = ()
        self._maintenance = sorted(spec.maintenance, key=lambda m: m.at_h)
        self._maintaining: Maintenance | None = None
        self._startup_scrap = 0
        self._since_sample_h = 0.0  # running hours since the last quality-control sample
        self._order_at = self.t  # when the next order comes, once this one is finished
        self._standstill_since: float | None = None
        self._heating_since: float | None = None
        self._next_activity([])  # the state it starts in; start() announces it

    @property
    def mould(self) -> Mould:
        return self.spec.moulds[self._mould_index]

    @property
    def now(self) -> datetime:
        return _ts(self.t)

    @property
    def job(self) -> Job:
        """The job on the machine now, in EUROMAP 77's terms."""
        mould = self.mould
        return Job(
            job_name=self._job_name,
            mould_id=mould.name,
            job_status=self.job_status,
            active_cavities=mould.cavities,
            nominal_parts=self._job_parts,
            material=mould.material.name,
        )

    def start(self) -> list[Event]:
        """The events that announce the machine's state and job when it comes up."""
        ts = _ts(self._start_t)
        return [StateEntered(ts, self.state, self.reason), JobChanged(ts, self.job)]

    def advance(self, to: datetime) -> list[Event]:
        """Run the machine until `to`, returning what happened on the way, in order."""
        return self.advance_to(to.timestamp())

    def advance_to(self, to_t: float) -> list[Event]:
        """`advance` with the time in epoch seconds (what the exporter uses)."""
        events: list[Event] = []
        while True:
            if self._grid_t <= self._until:
                if self._grid_t > to_t:
                    break
                self._thermal_step(self._grid_t, events)
                self._grid_t += THERMAL_STEP_S
            else:
                if self._until > to_t:
                    break
                self.t = self._until
                self._on_activity_end(events)
        self.t = max(self.t, to_t)
        return events

    def truth(self) -> dict[Component, float]:
        """The true health of every component now (1.0: as new)."""
        return dict(self.health.value)

    # --- continuous signals ------------------------------------------------------------

    def sample(self) -> dict[str, float]:
        """The machine's continuous signals and counters at the model's time."""
        t = self.t
        self._noise.seed(self._noise_key ^ round(t * 1000.0))
        g = self._noise.gauss
        z2, z3, z4, noz = self.zones

        def pct(output: float) -> float:
            # the controller's output as its display shows it: 100 when saturated
            return (
                100.0 if output >= 1.0 else round(min(99.9, max(0.0, output * 100 + g(0, 0.4))), 1)
            )

        w_pump = self.health.worn(Component.HYDRAULIC_PUMP)
        pressure, position, power = self._phase_values(t)
        if pressure > 6.0:
            pressure += g(0.0, 1.0 + 14.0 * w_pump)  # pump ripple
        return {
            "TempZone1": round(self.feed_c + g(0.0, 0.3), 2),
            "TempZone2": round(z2.temp + g(0.0, 0.3), 2),
            "TempZone3": round(z3.temp + g(0.0, 0.3), 2),
            "TempZone4": round(z4.temp + g(0.0, 0.3), 2),
            "TempNozzle": round(noz.temp + g(0.0, 0.4), 2),
            "HeaterOutputZone2": pct(z2.output),
            "HeaterOutputZone3": pct(z3.output),
            "HeaterOutputZone4": pct(z4.output),
            "HeaterOutputNozzle": pct(noz.output),
            "TempMould": round(self.mould_c + g(0.0, 0.2), 2),
            "TempOil": round(self.oil_c + g(0.0, 0.1), 2),
            "PressureHydraulic": round(max(0.0, pressure), 1),
            "ScrewPosition": round(position, 2),
            "MotorPower": round(max(0.0, power * (1.0 + g(0.0, 0.03))), 2),
            "CounterShots": float(self.shots),
            "CounterGood": float(self.good),
            "CounterBad": float(self.bad),
            "CounterMould": float(self._mould_shots[self.mould.name]),
            "AlarmWord": float(self.alarms()),
        }

    def alarms(self) -> int:
        """The AlarmWord: bits as contracts.ALARM_BITS."""
        word = 0
        for zone, comp in zip(self.zones, HEATERS, strict=True):
            if abs(zone.temp - zone.setpoint) > 10.0:
                word |= 1 << 0
            if self.health.value[comp] == 0.0 or (
                zone.output >= 0.999 and zone.temp < zone.setpoint - 3.0
            ):
                word |= 1 << 1
        last = self._last
        if last is not None and last.cushion_mm < 1.0:
            word |= 1 << 2
        if self.oil_c > 60.0:
            word |= 1 << 3
        if self.mould_c > self.mould.material.mould_setpoint_c + 10.0:
            word |= 1 << 4
        if last is not None and last.eject_kn > 1.3 * self.mould.ejection_force_kn:
            word |= 1 << 5
        if self.state is MachineState.FAULT:
            word |= 1 << 6
        return word

    def _phase_values(self, t: float) -> tuple[float, float, float]:
        """Hydraulic pressure (bar), screw position (mm) and motor power (kW) at `t`."""
        c = self._cycle
        if c is None or self.state is not MachineState.RUNNING:
            last = self._last
            position = last.stroke_mm + _DECOMPRESSION_MM if last else 0.0
            idle_kw = 0.0 if self.state is MachineState.PLANNED_STOP else 2.0
            return (5.0 if idle_kw else 0.0), position, idle_kw
        intens = self.spec.intensification
        if t < c.t_inject:
            return 60.0, c.stroke_mm + _DECOMPRESSION_MM, 8.0
        if t < c.t_hold:
            frac = (t - c.t_inject) / (c.t_hold - c.t_inject)
            position = c.stroke_mm - (c.stroke_mm - c.cushion_mm) * frac
            return c.peak_bar / intens * min(1.0, 0.3 + frac), position, 16.0 * c.peak_bar / 900
        if t < c.t_cool:
            return c.hold_bar / intens, c.cushion_mm, 9.0
        if t < c.t_dose_end:
            frac = (t - c.t_cool) / (c.t_dose_end - c.t_cool)
            return _BACK_PRESSURE_BAR, c.cushion_mm + (c.stroke_mm - c.cushion_mm) * frac, 12.0
        if t < c.t_open:
            return 8.0, c.stroke_mm + _DECOMPRESSION_MM, 3.0
        if t < c.t_eject:
            return 55.0, c.stroke_mm + _DECOMPRESSION_MM, 7.0
        if t < c.t_done:
            return 35.0, c.stroke_mm + _DECOMPRESSION_MM, 4.0
        return 5.0, c.stroke_mm + _DECOMPRESSION_MM, 2.0  # a micro-stop: waiting

    # --- the fixed grid: temperatures, control, wear -------------------------------------

    def _thermal_step(self, t: float, events: list[Event]) -> None:
        dt = THERMAL_STEP_S
        running = self.state is MachineState.RUNNING
        health = self.health
        material = self.mould.material
        # Outside shifts the barrel is off until the heating timer switches it on again.
        heating = not (
            self.state is MachineState.PLANNED_STOP
            and self.reason == "no_shift"
            and t < self._until - PREHEAT_S
        )
        for zone, comp, shear in zip(self.zones, HEATERS, _SHEAR_C, strict=True):
            zone.step(dt, health.value[comp], shear if running else 0.0, heating)
        feed_target = material.zone_setpoints_c[0] + (3.0 if running else 0.0)
        self.feed_c = relax(self.feed_c, feed_target, dt, 600.0)
        w_cool = health.worn(Component.COOLING_CHANNELS)
        mould_target = material.mould_setpoint_c + (2.0 + 16.0 * w_cool if running else 0.0)
        self.mould_c = relax(self.mould_c, mould_target, dt, 400.0)
        w_pump = health.worn(Component.HYDRAULIC_PUMP)
        oil_target = 44.0 + 22.0 * w_pump if running else (36.0 if heating else AMBIENT_C)
        self.oil_c = relax(self.oil_c, oil_target, dt, 1500.0)
        if running:
            broken = health.wear(dt / 3600.0)
            # Temperature band monitoring: a zone far below setpoint stops the machine, and
            # the band that cannot hold it is the failure, whatever its health still says.
            for zone, comp in zip(self.zones, HEATERS, strict=True):
                cold = zone.setpoint - zone.temp > TRIP_BAND_C
                if cold and comp not in self._failed and comp not in broken:
                    health.fail(comp)
                    broken.append(comp)
            for comp in broken:
                self._failed.append(comp)
                events.append(ComponentFailed(_ts(t), comp, BREAKDOWN[comp][0]))

    # --- activities: cycles and stops ------------------------------------------------------

    def _on_activity_end(self, events: list[Event]) -> None:
        if self.state is MachineState.RUNNING:
            cycle = self._finish_cycle()
            events.append(cycle)
            if self._job_shots_left <= 0:
                self._job_to(events, JobStatus.JOB_FINISHED)
                self._order_at = self.t + self._order_gap_s()
            elif cycle.quality is not PartQuality.BAD:
                self._job_to(events, JobStatus.JOB_IN_PRODUCTION)  # start-up is over
        else:
            if self._repairing:
                self.health.restore(self._repairing)
                events.append(ComponentRestored(_ts(self.t), self._repairing, "repair"))
                self._repairing = ()
            if self._maintaining is not None:
                comps = self._maintaining.components
                self.health.restore(comps)
                events.append(ComponentRestored(_ts(self.t), comps, "maintenance"))
                self._maintaining = None
        self._next_activity(events)

    def _next_activity(self, events: list[Event]) -> None:
        """Decide, at the end of a cycle or a stop, what the machine does next."""
        t = self.t
        rng = self._rng
        if self._failed:
            comps = tuple(self._failed)
            self._failed = []
            self._repairing = comps
            reason, median_h = BREAKDOWN[comps[0]]
            self._stand(events, MachineState.FAULT, reason, median_h * 3600.0, 0.5)
            return
        if self._maintenance and self._start_t + self._maintenance[0].at_h * 3600.0 <= t:
            self._maintaining = self._maintenance.pop(0)
            duration = self._maintaining.duration_h * 3600.0
            self._stand(events, MachineState.PLANNED_STOP, "planned_maintenance", duration, 0.0)
            return
        stop = self.spec.calendar.next_stop(t, self.spec.break_offset_min)
        if stop is not None and stop.start <= t:
            self._enter(events, MachineState.PLANNED_STOP, stop.reason)
            self._until = stop.end
            return
        if self._job_shots_left <= 0 and self._order_at > t:
            self._enter(events, MachineState.PLANNED_STOP, "no_order")
            self._until = self._order_at
            return
        if self._job_shots_left <= 0:
            # The new mould goes in, and the barrel goes to its material, during the setup.
            self._mount_next_mould()
            self._stand(events, MachineState.SETUP, "mould_change", self.spec.setup_median_min * 60)
            self._job_to(events, JobStatus.SET_UP_ACTIVE)
            return
        if self.state is not MachineState.RUNNING and not self._ready():
            if self._heating_since is None:
                self._heating_since = t
            if t - self._heating_since < HEAT_UP_LIMIT_S:
                self._until = t + RECHECK_S  # still heating up (or cooling down): stand on
                return
            # A zone that will not come up to temperature: its band is the fault.
            for zone, comp in zip(self.zones, HEATERS, strict=True):
                if zone.setpoint - zone.temp > READY_BAND_C:
                    self.health.fail(comp)
                    self._failed.append(comp)
                    events.append(ComponentFailed(_ts(t), comp, BREAKDOWN[comp][0]))
            self._heating_since = None
            if self._failed:
                self._next_activity(events)
                return
        self._heating_since = None
        for i, clock in enumerate(self._stop_clocks):
            if clock <= 0.0:
                cause = self.spec.stops[i]
                self._stop_clocks[i] = rng.expovariate(1.0 / cause.mtbf_h)
                self._stand(
                    events,
                    cause.state,
                    cause.reason,
                    cause.repair_median_min * 60.0,
                    cause.repair_sigma,
                )
                return
        if self._standstill_since is not None:
            if t - self._standstill_since >= STARTUP_SCRAP_AFTER_S:
                self._startup_scrap = rng.randint(1, 3)
            self._standstill_since = None
        self._enter(events, MachineState.RUNNING, None)
        if self.job_status is JobStatus.SET_UP_ACTIVE:
            self._job_to(events, JobStatus.START_UP_ACTIVE)
        self._start_cycle()

    def _job_to(self, events: list[Event], status: JobStatus) -> None:
        """Set the job's status; a change is announced."""
        if status is not self.job_status:
            self.job_status = status
            events.append(JobChanged(_ts(self.t), self.job))

    def _stand(
        self,
        events: list[Event],
        state: MachineState,
        reason: str,
        median_s: float,
        sigma: float = 0.3,
    ) -> None:
        duration = median_s * (math.exp(self._rng.gauss(0.0, sigma)) if sigma else 1.0)
        self._enter(events, state, reason)
        self._until = self.t + duration

    def _enter(self, events: list[Event], state: MachineState, reason: str | None) -> None:
        if state is self.state and reason == self.reason:
            return
        if state is not MachineState.RUNNING and self._standstill_since is None:
            self._standstill_since = self.t
        self.state = state
        self.reason = reason
        if state is not MachineState.RUNNING:
            self._cycle = None
        events.append(StateEntered(_ts(self.t), state, reason))

    def _ready(self) -> bool:
        """Barrel and mould at temperature: the machine may start producing."""
        mould_setpoint = self.mould.material.mould_setpoint_c
        return abs(self.mould_c - mould_setpoint) <= READY_MOULD_BAND_C and all(
            abs(z.temp - z.setpoint) <= READY_BAND_C for z in self.zones
        )

    def _order_gap_s(self) -> float:
        """How long after an order is finished the next one comes (no draw if never)."""
        median_h = self.spec.order_gap_median_h
        return median_h * 3600.0 * math.exp(self._rng.gauss(0.0, 0.5)) if median_h else 0.0

    def _job_shots(self) -> int:
        """Shots for a new order of the mounted mould; its parts become the nominal parts."""
        low, high = self.spec.job_parts
        self._job_parts = self._rng.randint(low, high)
        return math.ceil(self._job_parts / self.mould.cavities)

    def _new_job_name(self) -> str:
        """The JobName of an order starting now: the machine and the minute, as an MES might."""
        return f"{self.spec.machine_id}-{_ts(self.t):%y%m%d-%H%M}"

    def _mount_next_mould(self) -> None:
        self._mould_index = (self._mould_index + 1) % len(self.spec.moulds)
        material = self.mould.material
        for zone, setpoint in zip(
            self.zones, (*material.zone_setpoints_c[1:], material.nozzle_setpoint_c), strict=True
        ):
            zone.retarget(setpoint)
        self.mould_c = AMBIENT_C + 5.0  # the mould comes from the rack
        self._job_shots_left = self._job_shots()
        self._job_name = self._new_job_name()

    def _start_cycle(self) -> None:
        """Plan the next cycle from the machine's condition now."""
        spec, m, h, g = self.spec, self.mould, self.health, self._rng.gauss
        material = m.material
        w_cr = h.worn(Component.CHECK_RING)
        w_sb = h.worn(Component.SCREW_BARREL)
        w_pump = h.worn(Component.HYDRAULIC_PUMP)
        w_ej = h.worn(Component.EJECTOR)
        slow = spec.speed_factor
        z2, z3, z4, noz = self.zones

        melt = 0.25 * z3.temp + 0.35 * z4.temp + 0.4 * noz.temp + SHEAR_HEATING_C
        melt += g(0.0, 0.8 + 4.0 * w_sb)
        hot = melt - material.melt_nominal_c
        viscosity = math.exp(-material.viscosity_per_c * hot)
        cold_mould = max(0.0, material.mould_setpoint_c - self.mould_c)
        needed = m.peak_pressure_bar * viscosity * (1.0 + 0.004 * cold_mould) * (1 + g(0, 0.008))
        available = min(
            spec.pressure_limit * m.peak_pressure_bar, spec.max_pressure_bar * (1 - 0.5 * w_pump)
        )
        peak = min(needed, available)
        fill = min(1.0, available / needed)

        cushion = spec.cushion_mm - 4.2 * w_cr**1.3 + g(0.0, 0.06 + 1.1 * w_cr + 0.15 * w_sb)
        bottomed = cushion < 0.3
        cushion = max(0.0, cushion)
        hold_set = m.peak_pressure_bar * m.hold_fraction
        hold = hold_set * (1.0 - 0.3 * w_pump) * (1.0 + g(0.0, 0.005))
        hold_ratio = 0.0 if bottomed else hold / hold_set

        close_s = m.close_s * slow * (1.0 + g(0.0, 0.015))
        inject_s = m.inject_s * viscosity**0.3 * (1.0 + 0.4 * w_pump) * (1.0 + g(0.0, 0.01))
        hold_s = m.hold_s
        # A worn screw conveys less per turn; a cold rear zone melts the pellets slower.
        cold_rear = max(0.0, z2.setpoint - z2.temp)
        dose_s = m.dose_s * (1.0 + 1.2 * w_sb + 0.006 * cold_rear) * (1.0 + g(0.0, 0.012))
        mould_hot = max(0.0, self.mould_c - material.mould_setpoint_c - 2.0)
        cool_s = m.cool_s * (1.0 + 0.03 * mould_hot) * (1.0 + g(0.0, 0.005))
        open_s = m.open_s * slow * (1.0 + g(0.0, 0.015))
        eject_s = m.eject_s * slow * (1.0 + 0.3 * w_ej) * (1.0 + g(0.0, 0.02))
        cycle_s = close_s + inject_s + hold_s + max(cool_s, dose_s) + open_s + eject_s
        micro_p = spec.micro_stops_per_h * cycle_s / 3600.0 * (1.0 + 8.0 * w_ej)
        wait_s = 25.0 * math.exp(g(0.0, 0.7)) if self._rng.random() < micro_p else 0.0

        c = _Cycle()
        c.start = self.t
        c.t_inject = c.start + close_s
        c.t_hold = c.t_inject + inject_s
        c.t_cool = c.t_hold + hold_s
        c.t_dose_end = c.t_cool + dose_s
        c.t_open = c.t_cool + max(cool_s, dose_s)
        c.t_eject = c.t_open + open_s
        c.t_done = c.t_eject + eject_s
        c.end = c.t_done + wait_s
        c.peak_bar, c.hold_bar = peak, hold
        c.cushion_mm = cushion
        c.stroke_mm = m.shot_volume_cm3 / spec.screw_area_cm2 * 10.0 + spec.cushion_mm
        c.melt_c, c.mould_c = melt, self.mould_c
        c.inject_s, c.dose_s, c.cool_s = inject_s, dose_s, cool_s
        c.eject_kn = m.ejection_force_kn * (1.0 + 1.5 * w_ej**1.5) * (1.0 + g(0.0, 0.03))
        sigma_w = 0.0015 + 0.02 * w_cr + 0.003 * w_sb
        c.weight_g = (
            m.part_weight_g * fill * (1.0 - 0.03 * max(0.0, 1.0 - hold_ratio)) * (1 + g(0, sigma_w))
        )
        motor_kws = (
            8.0 * close_s
            + 16.0 * peak / 900.0 * inject_s
            + 9.0 * hold_s
            + 12.0 * dose_s
            + 3.0 * max(0.0, cool_s - dose_s)
            + 7.0 * open_s
            + 4.0 * eject_s
        ) * (1.0 + 0.3 * w_pump)
        heater_kw = HEATER_KW * sum(z.output for z in self.zones)
        c.energy_kwh = (motor_kws + heater_kw * (c.end - c.start)) / 3600.0
        weight_ratio = c.weight_g / m.part_weight_g
        cold_nozzle = noz.setpoint - noz.temp
        c.defect = self._defect(
            fill, hold_ratio, hot, mould_hot, cold_mould, cold_nozzle, weight_ratio
        )
        self._cycle = c
        self._until = c.end

    def _defect(
        self,
        fill: float,
        hold_ratio: float,
        hot_c: float,
        mould_hot_c: float,
        cold_mould_c: float,
        cold_nozzle_c: float,
        weight_ratio: float,
    ) -> str | None:
        """The process cause of this cycle's scrap, or None for good parts."""
        if self._startup_scrap > 0:
            self._startup_scrap -= 1
            return "startup_scrap"
        if fill < 0.985:
            return "short_shot"
        if cold_nozzle_c > 15.0:
            return "cold_slug"  # the nozzle tip freezes between shots
        if hold_ratio < 0.85:
            return "sink_marks"
        if mould_hot_c > 12.0:
            return "warpage"
        if hot_c > 18.0:
            return "flash"
        if cold_mould_c > 8.0:
            return "flow_lines"
        if abs(weight_ratio - 1.0) > 0.012:
            return "weight_out_of_tolerance"
        return None

    def _finish_cycle(self) -> CycleDone:
        c = self._cycle
        assert c is not None  # only called while running a cycle
        m = self.mould
        self.shots += 1
        self._mould_shots[m.name] += 1
        running_h = (c.end - c.start) / 3600.0
        self._stop_clocks = [clock - running_h for clock in self._stop_clocks]
        self._since_sample_h += running_h
        sample_h = self.spec.test_sample_interval_h
        if c.defect is None and sample_h and self._since_sample_h >= sample_h:
            # A quality-control sample: taken out for inspection, neither good nor bad.
            self._since_sample_h = 0.0
            quality = PartQuality.TEST
        elif c.defect is None:
            self.good += m.cavities
            self._job_shots_left -= 1  # an order is done when its good parts are made
            quality = PartQuality.GOOD
        else:
            self.bad += m.cavities
            quality = PartQuality.BAD
        area = self.spec.screw_area_cm2
        self._last = c
        self._cycle = None
        return CycleDone(
            ts=_ts(c.end),
            shot=self.shots,
            quality=quality,
            parts=m.cavities,
            parameters={
                "CycleTime": round(c.end - c.start, 3),
                "InjectionTime": round(c.inject_s, 3),
                "DosingTime": round(c.dose_s, 3),
                "CoolingTime": round(c.cool_s, 3),
                "CushionVolume": round(c.cushion_mm * area / 10.0, 3),
                "CushionStroke": round(c.cushion_mm, 3),
                "PlastificationVolume": round(c.stroke_mm * area / 10.0, 2),
                "SpecificPressureMaximum": round(c.peak_bar, 1),
                "HoldPressure": round(c.hold_bar, 1),
                "MeltTemperature": round(c.melt_c, 2),
                "MouldTemperature": round(c.mould_c, 2),
                "EjectionForceMaximum": round(c.eject_kn, 2),
                "CycleEnergy": round(c.energy_kwh, 4),
                "PartWeight": round(c.weight_g, 3),
            },
            mould=m.name,
            defect=c.defect,
            job=self._job_name,
        )
