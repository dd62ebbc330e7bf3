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
a long standstill degrades the melt in the barrel (start-up scrap), a mould still cold after
a weekend gives flow lines; a healthy process still scraps 0.5-2 % (contamination, moisture,
...), and when scrap runs high the crew stops for a quality check. Every
`test_sample_interval_h` of running a quality-control sample is taken: the next cycle whose
parts are fine gives test parts, counted neither good nor bad.

Jobs: the machine works through orders, one mould each. When an order's good parts are made
(job finished) the next mould goes in (set-up active), the first parts after it are
start-up (start-up active) until one is good (job in production): EUROMAP 77's JobStatus,
announced by a JobChanged event at each change. With an `order_gap_median_h` the next order
is not always waiting: the machine stands in a planned stop, "no_order", until it comes.

Around it: every component wears at once on its own drawn life, faster under load, with
cross-effects (simulators.life); the hall's air and cooling water follow the day and the
season and move mould and oil temperatures, material comes in lots of varying viscosity
(simulators.environment); crews compensate for wear and tweak setpoints
(simulators.operators); the sensors have offsets, drift, coloured noise, dropouts and stuck
values (simulators.sensors). Each of those draws from its own stream, derived from the
machine's at construction.

Outside shifts the barrel and the mould temperature controller are off; the heating timer
switches the barrel on 45 minutes before the shift (and, after a night, the mould too; after
a weekend the mould is switched on when the shift starts and warms up while the shift
waits: a setup). A repair is worked on during shift hours only: a breakdown at 21:30 on a
Friday is repaired on Monday morning, the machine in fault until then.
"""

from __future__ import annotations

import logging
import math
import random
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime

from contracts import Job, JobStatus, MachineState, PartQuality
from simulators.environment import REGRIND_VISCOSITY, Climate, draw_lot, draw_regrind
from simulators.faults import BREAKDOWN, HEATERS, Component, Maintenance
from simulators.life import COMPONENTS, WEAR, Failure, Wear
from simulators.operators import Crews
from simulators.sensors import TEMPS, Sensors
from simulators.specs import SHEAR_HEATING_C, MachineSpec, Mould
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
LONG_STOP_S = 16 * 3600.0  # after a stop this long (a weekend) the mould was left off
SLOW_STEP_S = 60.0  # the grid of wear and of the hall's air (a multiple of THERMAL_STEP_S)
QUALITY_WINDOW = 40  # cycles the crew keeps an eye on ...
QUALITY_LIMIT = 8  # ... and the bad ones among them that make it stop for a quality check
# Quality stops this close together make the crew call the fitters, who take out the most
# worn part that spoils parts: a failure found by quality (worn past what the crew can set).
QUALITY_CALLS = 3
QUALITY_CALL_WITHIN_S = 6 * 3600.0
RETIRE_WORN = 0.35  # ... if it is at least this worn (else they find nothing and carry on)
_SPOILERS = (
    Component.CHECK_RING,
    Component.SCREW_BARREL,
    Component.HYDRAULIC_PUMP,
    Component.COOLING_CHANNELS,
    Component.EJECTOR,
    *HEATERS,
)
REF_CYCLE_S = 15.0  # the cycle of the reference load of the components' lives
# Causes of the scrap a healthy process still makes, and their weights.
_BASELINE_DEFECTS = (
    ("contamination", 0.3),
    ("splay", 0.2),
    ("dimension_out_of_tolerance", 0.2),
    ("burn_marks", 0.15),
    ("short_shot", 0.1),
    ("flash", 0.05),
)
_I = {c: i for i, c in enumerate(COMPONENTS)}
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
    """Ground truth: a component broke down; `mode` "wear" (worn out, with precursors in the
    signals) or "sudden" (little or no warning)."""

    ts: datetime
    component: Component
    reason: str
    mode: str = WEAR


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
            "ground truth: machine %s %s broke down (%s, %s) at %s",
            machine_id, event.component.value, event.reason, event.mode, event.ts.isoformat(),
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
        # Streams of their own, so that a draw in one never shifts the others.
        life_rng = random.Random(rng.getrandbits(64))
        self._env_rng = random.Random(rng.getrandbits(64))
        sensor_rng = random.Random(rng.getrandbits(64))
        crew_rng = random.Random(rng.getrandbits(64))
        self.t = now.timestamp()
        self._start_t = self.t
        self._grid_t = self.t + THERMAL_STEP_S
        self._slow_t = self.t  # the last step of the slow grid (wear, air)
        self.health = Wear(life_rng, spec.lives, spec.wear_time_factor)
        self.climate = Climate(spec.site, spec.calendar.timezone, spec.weather_seed)
        self._hall_offset_c = self._env_rng.gauss(0.0, 1.0)  # where the press stands
        self.air_c = self.climate.air_c(self.t) + self._hall_offset_c
        self.water_c = self.climate.water_c(self.air_c)
        self.sensors = Sensors(sensor_rng, self.t)
        self.crews = Crews(crew_rng, spec.calendar.timezone)
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
        self._failed: list[Failure] = []
        self._repairing: tuple[Component, ...] = ()
        self._maintenance = sorted(spec.maintenance, key=lambda m: m.at_h)
        self._maintaining: Maintenance | None = None
        self._startup_scrap = 0
        self._since_sample_h = 0.0  # running hours since the last quality-control sample
        self._order_at = self.t  # when the next order comes, once this one is finished
        self._standstill_since: float | None = None
        self._heating_since: float | None = None
        # The heating timer of a stop without a shift: barrel (and mould) on again at these.
        self._preheat_at = -math.inf
        self._mould_on_at = -math.inf
        env = self._env_rng
        self.lot = draw_lot(env, 1)
        self._lot_left_h = env.expovariate(1.0 / spec.lot_mean_h)
        self.regrind = draw_regrind(env)
        self._baseline_scrap = env.uniform(*spec.baseline_scrap)
        self._loads = [1.0] * len(COMPONENTS)
        self._running_s = 0.0  # running time not yet aged into the components
        self._recent_bad: deque[bool] = deque(maxlen=QUALITY_WINDOW)
        self._recent_cushion: deque[float] = deque(maxlen=20)
        self._quality_stop = False
        self._quality_stops: deque[float] = deque(maxlen=QUALITY_CALLS)
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
        """The machine's signals and counters at the model's time, as its sensors read them.

        A sensor that has dropped out reads NaN (the live paths leave it out).
        """
        t = self.t
        self._noise.seed(self._noise_key ^ round(t * 1000.0))
        g = self._noise.gauss
        z2, z3, z4, noz = self.zones

        def pct(output: float) -> float:
            # the controller's output as its display shows it: 100 when saturated, 0 when off
            if output <= 0.0:
                return 0.0
            return (
                100.0 if output >= 1.0 else round(min(99.9, max(0.0, output * 100 + g(0, 0.4))), 1)
            )

        w_pump = self.health.worn(Component.HYDRAULIC_PUMP)
        pressure, position, power = self._phase_values(t)
        if pressure > 6.0:
            pressure += g(0.0, 1.0 + 14.0 * w_pump)  # pump ripple
        values = {
            # Temperatures: their noise is the sensors' (coloured, on the grid).
            "TempZone1": self.feed_c,
            "TempZone2": z2.temp,
            "TempZone3": z3.temp,
            "TempZone4": z4.temp,
            "TempNozzle": noz.temp,
            "HeaterOutputZone2": pct(z2.output),
            "HeaterOutputZone3": pct(z3.output),
            "HeaterOutputZone4": pct(z4.output),
            "HeaterOutputNozzle": pct(noz.output),
            "TempMould": self.mould_c,
            "TempOil": self.oil_c,
            "PressureHydraulic": round(max(0.0, pressure), 1),
            "ScrewPosition": round(position, 2),
            "MotorPower": round(max(0.0, power * (1.0 + g(0.0, 0.03))), 2),
            "CounterShots": float(self.shots),
            "CounterGood": float(self.good),
            "CounterBad": float(self.bad),
            "CounterMould": float(self._mould_shots[self.mould.name]),
            "AlarmWord": float(self.alarms()),
        }
        if self.spec.ideal_sensors:
            for name in TEMPS:
                values[name] = round(values[name], 2)
        else:
            self.sensors.apply(values, t)
        return values

    def _true_temps(self) -> tuple[float, ...]:
        """The true values of sensors.TEMPS now."""
        z2, z3, z4, noz = self.zones
        return (self.feed_c, z2.temp, z3.temp, z4.temp, noz.temp, self.mould_c, self.oil_c)

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
        if running:
            self._running_s += dt
        if t - self._slow_t >= SLOW_STEP_S - 1e-6:
            self._slow_t = t
            self.air_c = self.climate.air_c(t) + self._hall_offset_c
            self.water_c = self.climate.water_c(self.air_c)
            if self._running_s > 0.0:
                failures = health.age(self._running_s / 3600.0, self._loads)
                self._running_s = 0.0
                for failure in failures:
                    self._fail(events, t, failure)
        # Outside shifts barrel and mould are off until the heating timer switches them on.
        off_shift = self.state is MachineState.PLANNED_STOP and self.reason == "no_shift"
        heating = not (off_shift and t < self._preheat_at)
        mould_on = not (off_shift and t < self._mould_on_at)
        air, water = self.air_c, self.water_c
        for zone, comp, shear in zip(self.zones, HEATERS, _SHEAR_C, strict=True):
            zone.step(dt, health.value[comp], shear if running else 0.0, heating, air)
        feed_target = material.zone_setpoints_c[0] + (3.0 if running else 0.0)
        if not heating:
            feed_target = air
        self.feed_c = relax(self.feed_c, feed_target, dt, 600.0)
        w_cool = health.worn(Component.COOLING_CHANNELS)
        if mould_on:
            # The temperature controller holds the setpoint; warmer water and fouled channels
            # take less heat away, and the mould runs warmer.
            mould_target = material.mould_setpoint_c + (0.3 + 0.5 * w_cool) * (water - 16.0)
            if running:
                mould_target += 2.0 + 18.0 * w_cool
            self.mould_c = relax(self.mould_c, mould_target, dt, 600.0)
        else:
            self.mould_c = relax(self.mould_c, air, dt, 7200.0)  # the steel cools slowly
        w_pump = health.worn(Component.HYDRAULIC_PUMP)
        # The oil cooler runs on the cooling water; a worn pump turns more power into heat.
        cooled = 0.5 * (water - 16.0) + 0.1 * (air - 22.0)
        if running:
            oil_target = 44.0 + cooled + 26.0 * w_pump
        elif heating:
            oil_target = 36.0 + cooled
        else:
            oil_target = air
        self.oil_c = relax(self.oil_c, oil_target, dt, 1500.0)
        if not self.spec.ideal_sensors:
            self.sensors.step(t, self._true_temps)
        if running:
            # Temperature band monitoring: a zone far below setpoint stops the machine, and
            # the band that cannot hold it is the failure, whatever its health still says.
            for zone, comp in zip(self.zones, HEATERS, strict=True):
                if zone.setpoint - zone.temp > TRIP_BAND_C and comp not in health.broken:
                    self._fail(events, t, health.fail(comp))

    def _fail(self, events: list[Event], t: float, failure: Failure) -> None:
        self._failed.append(failure)
        comp = failure.component
        events.append(ComponentFailed(_ts(t), comp, BREAKDOWN[comp][0], failure.mode))

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
            self._watch(cycle)
        else:
            if self._repairing:
                self.health.restore(self._repairing)
                events.append(ComponentRestored(_ts(self.t), self._repairing, "repair"))
                self._renewed(self._repairing)
                self._repairing = ()
            if self._maintaining is not None:
                comps = self._maintaining.components
                self.health.restore(comps)
                events.append(ComponentRestored(_ts(self.t), comps, "maintenance"))
                self._renewed(comps)
                self._maintaining = None
        self._next_activity(events)

    def _renewed(self, comps: tuple[Component, ...]) -> None:
        if Component.CHECK_RING in comps or Component.SCREW_BARREL in comps:
            self.crews.new_check_ring()

    def _watch(self, cycle: CycleDone) -> None:
        """The crew's eye on the process: quality stops when scrap runs high, and its looks."""
        bad = cycle.quality is PartQuality.BAD
        recent = self._recent_bad
        recent.append(bad)
        if bad and len(recent) == QUALITY_WINDOW and sum(recent) >= QUALITY_LIMIT:
            self._quality_stop = self.crews.skill_at(self.t).watches_scrap
        self._recent_cushion.append(cycle.parameters["CushionStroke"])
        crews = self.crews
        if crews.since_check_h >= 0.5 and (skill := crews.due(self.t)) is not None:
            cushion = sum(self._recent_cushion) / len(self._recent_cushion)
            if crews.look(skill, cushion, self.spec.cushion_mm):
                self._apply_setpoints()

    def _next_activity(self, events: list[Event]) -> None:
        """Decide, at the end of a cycle or a stop, what the machine does next."""
        t = self.t
        rng = self._rng
        if self._failed:
            comps = tuple(dict.fromkeys(f.component for f in self._failed))
            self._failed = []
            self._repairing = comps
            reason, median_h = BREAKDOWN[comps[0]]
            work_s = median_h * 3600.0 * math.exp(rng.gauss(0.0, 0.5))
            self._enter(events, MachineState.FAULT, reason)
            self._until = self._work_end(t, work_s)
            return
        if self._maintenance and self._start_t + self._maintenance[0].at_h * 3600.0 <= t:
            self._maintaining = self._maintenance.pop(0)
            duration = self._maintaining.duration_h * 3600.0
            self._stand(events, MachineState.PLANNED_STOP, "planned_maintenance", duration, 0.0)
            return
        stop = self.spec.calendar.next_stop(t, self.spec.break_offset_min)
        if stop is not None and stop.start <= t:
            self._enter(events, MachineState.PLANNED_STOP, stop.reason)
            if stop.reason == "no_shift":
                self._off_shift(stop.start, stop.end)
            else:
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
                if self.state is MachineState.PLANNED_STOP:
                    # The shift has begun and waits for barrel or mould: a loss, not a planned
                    # stop. Warming up to start is setup work (TPM's start-up loss).
                    self._enter(events, MachineState.SETUP, "warm_up")
                self._until = t + RECHECK_S  # still heating up (or cooling down): stand on
                return
            # A zone that will not come up to temperature: its band is the fault.
            for zone, comp in zip(self.zones, HEATERS, strict=True):
                if zone.setpoint - zone.temp > READY_BAND_C and comp not in self.health.broken:
                    self._fail(events, t, self.health.fail(comp))
            self._heating_since = None
            if self._failed:
                self._next_activity(events)
                return
        self._heating_since = None
        if self._quality_stop:
            # Scrap ran high: the crew stops, looks, corrects what it can (the shot size).
            self._quality_stop = False
            self._recent_bad.clear()
            stops = self._quality_stops
            stops.append(t)
            if len(stops) == QUALITY_CALLS and t - stops[0] <= QUALITY_CALL_WITHIN_S:
                health = self.health
                worst = max(_SPOILERS, key=health.worn)
                if health.worn(worst) > RETIRE_WORN:
                    stops.clear()
                    self._fail(events, t, health.retire(worst))
                    self._next_activity(events)
                    return
            if self._recent_cushion:
                cushion = sum(self._recent_cushion) / len(self._recent_cushion)
                self.crews.after_quality_stop(cushion, self.spec.cushion_mm)
                self._apply_setpoints()
            self._stand(events, MachineState.UNPLANNED_STOP, "quality_check", 900.0, 0.5)
            return
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

    def _off_shift(self, start: float, end: float) -> None:
        """Stand until the next shift; set the heating timer for barrel and mould.

        The calendar splits a time without shifts at local midnight; the timer counts from
        the shift's start, so the pieces are joined first.
        """
        calendar, offset = self.spec.calendar, self.spec.break_offset_min
        while (nxt := calendar.next_stop(end, offset)) is not None:
            if nxt.start > end or nxt.reason != "no_shift":
                break
            end = nxt.end
        self._until = end
        self._preheat_at = end - PREHEAT_S
        # After a night the mould is switched on with the barrel; after a weekend the crew
        # switches it on when it comes in, and the shift waits for it.
        self._mould_on_at = self._preheat_at if end - start < LONG_STOP_S else end

    def _work_end(self, t: float, work_s: float) -> float:
        """When `work_s` of repair work begun at `t` is done: fitters work during shifts only."""
        calendar = self.spec.calendar
        probe = t
        while True:
            stop = calendar.next_stop(probe)
            if stop is None or stop.start >= t + work_s:
                return t + work_s
            if stop.reason != "no_shift":  # a break: someone stays on the job
                probe = stop.end
                continue
            work_s -= max(0.0, stop.start - t)
            t = probe = max(t, stop.end)

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
        before = self.mould.material
        self._mould_index = (self._mould_index + 1) % len(self.spec.moulds)
        self.crews.new_setup()
        self._apply_setpoints()
        self.mould_c = self.air_c + 5.0  # the mould comes from the rack
        self._job_shots_left = self._job_shots()
        self._job_name = self._new_job_name()
        env = self._env_rng
        self.regrind = draw_regrind(env)
        if self.mould.material is not before:  # another material: another lot of it
            self.lot = draw_lot(env, self.lot.number + 1)
            self._lot_left_h = env.expovariate(1.0 / self.spec.lot_mean_h)

    def _apply_setpoints(self) -> None:
        """The barrel's setpoints: the material's, moved by the crew's offset."""
        material = self.mould.material
        offset = self.crews.barrel_offset_c
        for zone, setpoint in zip(
            self.zones, (*material.zone_setpoints_c[1:], material.nozzle_setpoint_c), strict=True
        ):
            zone.retarget(setpoint + offset)

    def _start_cycle(self) -> None:
        """Plan the next cycle from the machine's condition now."""
        spec, m, h, g = self.spec, self.mould, self.health, self._rng.gauss
        material = m.material
        crews = self.crews
        w_cr = h.worn(Component.CHECK_RING)
        w_sb = h.worn(Component.SCREW_BARREL)
        w_pump = h.worn(Component.HYDRAULIC_PUMP)
        w_ej = h.worn(Component.EJECTOR)
        slow = spec.speed_factor
        z2, z3, z4, noz = self.zones

        melt = 0.25 * z3.temp + 0.35 * z4.temp + 0.4 * noz.temp + SHEAR_HEATING_C
        melt += g(0.0, 0.8 + 4.0 * w_sb)
        hot = melt - material.melt_nominal_c
        # The lot's own viscosity, and regrind (shorter chains) flowing more easily.
        viscosity = (
            math.exp(-material.viscosity_per_c * hot)
            * self.lot.viscosity
            * (1.0 - REGRIND_VISCOSITY * self.regrind)
        )
        cold_mould = max(0.0, material.mould_setpoint_c - self.mould_c)
        needed = m.peak_pressure_bar * viscosity * (1.0 + 0.004 * cold_mould) * (1 + g(0, 0.008))
        available = min(
            spec.pressure_limit * m.peak_pressure_bar, spec.max_pressure_bar * (1 - 0.5 * w_pump)
        )
        peak = min(needed, available)
        fill = min(1.0, available / needed)

        # The crew raises the shot as the check ring leaks: the cushion comes back, the stroke
        # (plastification volume) and the dosing grow.
        offset = crews.shot_offset_mm
        leak = 5.0 * w_cr**1.3
        cushion = spec.cushion_mm + offset - leak + g(0.0, 0.06 + 1.1 * w_cr + 0.15 * w_sb)
        bottomed = cushion < 0.3
        cushion = max(0.0, cushion)
        hold_set = m.peak_pressure_bar * m.hold_fraction * crews.hold_factor
        hold = hold_set * (1.0 - 0.3 * w_pump) * (1.0 + g(0.0, 0.005))
        hold_ratio = 0.0 if bottomed else hold / (m.peak_pressure_bar * m.hold_fraction)
        stroke = m.shot_volume_cm3 / spec.screw_area_cm2 * 10.0 + spec.cushion_mm
        dosed = (stroke + offset) / stroke

        close_s = m.close_s * slow * (1.0 + g(0.0, 0.015))
        inject_s = m.inject_s * viscosity**0.3 * (1.0 + 0.4 * w_pump) * (1.0 + g(0.0, 0.01))
        hold_s = m.hold_s
        # A worn screw conveys less per turn; a cold rear zone melts the pellets slower.
        cold_rear = max(0.0, z2.setpoint - z2.temp)
        dose_s = m.dose_s * dosed * (1.0 + 1.2 * w_sb + 0.006 * cold_rear) * (1.0 + g(0.0, 0.012))
        mould_hot = max(0.0, self.mould_c - material.mould_setpoint_c - 2.0)
        cool_s = (m.cool_s + crews.cool_offset_s) * (1.0 + 0.03 * mould_hot) * (1.0 + g(0, 0.005))
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
        c.stroke_mm = stroke + offset
        c.melt_c, c.mould_c = melt, self.mould_c
        c.inject_s, c.dose_s, c.cool_s = inject_s, dose_s, cool_s
        c.eject_kn = (
            m.ejection_force_kn * (1.0 + 1.5 * w_ej**1.5 + 0.01 * mould_hot) * (1.0 + g(0.0, 0.03))
        )
        sigma_w = 0.0015 + 0.02 * w_cr + 0.003 * w_sb + 0.001 * self.regrind
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
        self._load(cycle_s, melt, peak, mould_hot, cold_rear)

    def _load(
        self, cycle_s: float, melt_c: float, peak_bar: float, mould_hot_c: float, cold_rear_c: float
    ) -> None:
        """How hard this cycle works each component, relative to its life's reference load.

        Cross-effects: a leaking check ring lets melt flow back over the screw flights (screw
        wear); a worn screw lets the ring chatter; hot oil (a worn pump heats it) wears the pump
        faster; a hot mould (fouled channels) makes parts stick, which the ejector pays for;
        warm cooling water scales the channels faster.
        """
        h = self.health
        material = self.mould.material
        w_cr = h.worn(Component.CHECK_RING)
        w_sb = h.worn(Component.SCREW_BARREL)
        rate = REF_CYCLE_S / cycle_s
        abrasion = material.abrasion * (1.0 + 0.8 * self.regrind)
        loads = self._loads
        for zone, comp in zip(self.zones, HEATERS, strict=True):
            loads[_I[comp]] = math.exp((zone.setpoint - 215.0) / 30.0)
        loads[_I[Component.CHECK_RING]] = (
            abrasion * rate**0.8 * math.exp((melt_c - 228.0) / 40.0) * (1.0 + 0.5 * w_sb)
        )
        loads[_I[Component.SCREW_BARREL]] = (
            abrasion * rate**0.5 * (1.0 + 2.0 * w_cr) * (1.0 + 0.01 * cold_rear_c)
        )
        loads[_I[Component.HYDRAULIC_PUMP]] = math.exp((self.oil_c - 44.0) / 15.0) * (
            0.6 + 0.4 * peak_bar / 900.0
        )
        loads[_I[Component.COOLING_CHANNELS]] = math.exp(
            (self.water_c - 16.0) / 8.0 + (material.mould_setpoint_c - 35.0) / 40.0
        )
        loads[_I[Component.EJECTOR]] = rate**0.7 * (1.0 + 0.04 * mould_hot_c)

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
        # One draw every cycle, hit or not: the causes a healthy process still has.
        baseline = self._rng.random() < self._baseline_scrap * (0.7 + 0.6 * self.lot.moisture)
        if self._startup_scrap > 0:
            self._startup_scrap -= 1
            return "startup_scrap"
        if fill < 0.985:
            return "short_shot"
        if cold_nozzle_c > 15.0:
            return "cold_slug"  # the nozzle tip freezes between shots
        if hold_ratio < 0.85:
            return "sink_marks"
        if mould_hot_c > 10.0:
            return "warpage"
        if hot_c > 18.0:
            return "flash"
        if cold_mould_c > 4.0:
            return "flow_lines"  # a mould still warming up (after a weekend)
        if abs(weight_ratio - 1.0) > 0.012:
            return "weight_out_of_tolerance"
        if baseline:
            pick = self._rng.random()
            for cause, weight in _BASELINE_DEFECTS:
                pick -= weight
                if pick < 0.0:
                    return cause
            return _BASELINE_DEFECTS[-1][0]
        return None

    def _finish_cycle(self) -> CycleDone:
        c = self._cycle
        assert c is not None  # only called while running a cycle
        m = self.mould
        self.shots += 1
        self._mould_shots[m.name] += 1
        running_h = (c.end - c.start) / 3600.0
        self._stop_clocks = [clock - running_h for clock in self._stop_clocks]
        self.crews.since_check_h += running_h
        self._lot_left_h -= running_h
        if self._lot_left_h <= 0.0:  # the next lot of the same material goes in the dryer
            self.lot = draw_lot(self._env_rng, self.lot.number + 1)
            self._lot_left_h = self._env_rng.expovariate(1.0 / self.spec.lot_mean_h)
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
        melt_c, mould_c, peak, hold = c.melt_c, c.mould_c, c.peak_bar, c.hold_bar
        if not self.spec.ideal_sensors:  # the cycle's readings come from the same sensors
            sensors = self.sensors
            melt_c += sensors.bias_c("TempNozzle", c.end)
            mould_c += sensors.bias_c("TempMould", c.end)
            peak *= sensors.gain["PressureHydraulic"]
            hold *= sensors.gain["PressureHydraulic"]
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
                "SpecificPressureMaximum": round(peak, 1),
                "HoldPressure": round(hold, 1),
                "MeltTemperature": round(melt_c, 2),
                "MouldTemperature": round(mould_c, 2),
                "EjectionForceMaximum": round(c.eject_kn, 2),
                "CycleEnergy": round(c.energy_kwh, 4),
                "PartWeight": round(c.weight_g, 3),
            },
            mould=m.name,
            defect=c.defect,
            job=self._job_name,
        )
