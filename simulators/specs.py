"""Frozen descriptions of materials, moulds, machines and their stop behaviour."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from contracts import MachineState
from plant import ShiftCalendar
from simulators.faults import Maintenance
from simulators.life import ComponentLife

AMBIENT_C = 22.0  # the hall's mean temperature (simulators.environment moves it)


@dataclass(frozen=True, slots=True)
class Material:
    """A moulding material and the barrel and mould temperatures it is run at."""

    name: str
    zone_setpoints_c: tuple[float, float, float, float]  # feed throat, zones 2-4
    nozzle_setpoint_c: float
    mould_setpoint_c: float
    melt_density_g_cm3: float
    viscosity_per_c: float = 0.018  # relative fall of melt viscosity per degC hotter
    abrasion: float = 1.0  # how fast it wears screw and check ring, relative to PP

    @property
    def melt_nominal_c(self) -> float:
        """The melt temperature the setpoints give (zones weighted towards the front)."""
        _, _, z3, z4 = self.zone_setpoints_c
        return 0.25 * z3 + 0.35 * z4 + 0.4 * self.nozzle_setpoint_c + SHEAR_HEATING_C


SHEAR_HEATING_C = 3.5  # the screw's rotation and back pressure heat the melt this much

MATERIALS: dict[str, Material] = {
    "PP": Material("PP", (45.0, 200.0, 215.0, 225.0), 230.0, 35.0, 0.74),
    "ABS": Material("ABS", (50.0, 215.0, 230.0, 240.0), 245.0, 60.0, 0.95, abrasion=1.6),
    "HDPE": Material("HDPE", (45.0, 190.0, 205.0, 215.0), 220.0, 30.0, 0.74, 0.015, 0.9),
}


@dataclass(frozen=True, slots=True)
class Mould:
    """A mould: what it makes, how many at once, and the cycle it was set up to run."""

    name: str
    material: Material
    cavities: int
    part_weight_g: float
    close_s: float = 1.2
    inject_s: float = 0.6
    hold_s: float = 3.0
    cool_s: float = 8.0
    dose_s: float = 3.5  # runs during cooling; lengthens the cycle only when it outlasts it
    open_s: float = 1.2
    eject_s: float = 0.8
    peak_pressure_bar: float = 900.0  # specific injection pressure the mould needs, hot melt
    hold_fraction: float = 0.5  # hold pressure as a share of the peak
    ejection_force_kn: float = 8.0
    runner_fraction: float = 0.08  # sprue and runner weight per shot, as a share of the parts
    lifetime_shots: int = 0  # shots the mould had made before the simulation starts

    @property
    def ideal_cycle_s(self) -> float:
        """The planned cycle (ISO 22400 planned run time per shot), with no losses."""
        return (
            self.close_s
            + self.inject_s
            + self.hold_s
            + max(self.cool_s, self.dose_s)
            + self.open_s
            + self.eject_s
        )

    @property
    def shot_weight_g(self) -> float:
        return self.part_weight_g * self.cavities * (1 + self.runner_fraction)

    @property
    def shot_volume_cm3(self) -> float:
        return self.shot_weight_g / self.material.melt_density_g_cm3


MOULDS: dict[str, Mould] = {
    m.name: m
    for m in (
        Mould("bracket-pp-4", MATERIALS["PP"], 4, 12.0, lifetime_shots=182_000),
        Mould(
            "cap-pp-8", MATERIALS["PP"], 8, 2.9, 1.0, 0.4, 1.5, 4.5, 2.5, 1.0, 0.6,
            peak_pressure_bar=1050.0, ejection_force_kn=6.0, lifetime_shots=1_240_000,
        ),
        Mould(
            "housing-abs-2", MATERIALS["ABS"], 2, 45.0, 1.4, 0.9, 4.0, 12.0, 5.0, 1.4, 1.0,
            peak_pressure_bar=1100.0, hold_fraction=0.55, ejection_force_kn=14.0,
            lifetime_shots=96_000,
        ),
        Mould(
            "lid-hdpe-1", MATERIALS["HDPE"], 1, 60.0, 1.3, 0.9, 5.0, 14.0, 6.0, 1.4, 1.0,
            peak_pressure_bar=750.0, hold_fraction=0.45, ejection_force_kn=10.0,
            lifetime_shots=410_000,
        ),
        Mould(
            "crate-clip-pp-2", MATERIALS["PP"], 2, 18.0, 1.2, 0.7, 3.5, 9.0, 4.0, 1.2, 0.8,
            peak_pressure_bar=950.0, lifetime_shots=55_000,
        ),
    )
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class StopCause:
    """A kind of stop: time between them in running hours, time to repair in minutes."""

    state: MachineState
    reason: str
    mtbf_h: float
    repair_median_min: float
    repair_sigma: float = 0.6  # of the log-normal repair time


# What stops a moulding cell in a small plastics plant, besides its own components wearing.
DEFAULT_STOPS: tuple[StopCause, ...] = (
    StopCause(MachineState.UNPLANNED_STOP, "material_shortage", 16.0, 12.0),
    StopCause(MachineState.UNPLANNED_STOP, "mould_fault", 10.0, 15.0, 0.8),
    StopCause(MachineState.UNPLANNED_STOP, "robot_fault", 20.0, 8.0, 0.7),
    StopCause(MachineState.UNPLANNED_STOP, "quality_check", 12.0, 10.0, 0.5),
    StopCause(MachineState.UNPLANNED_STOP, "operator_absent", 24.0, 6.0),
    StopCause(MachineState.IDLE, "starved", 8.0, 4.0, 0.7),
    StopCause(MachineState.IDLE, "blocked", 12.0, 3.0),
)


@dataclass(frozen=True, slots=True)
class MachineSpec:
    """One machine of the floor: where it stands, what it runs and how it wears."""

    machine_id: str
    site: str = "demo"
    area: str = "hall-a"
    line: str = "line-1"
    moulds: tuple[Mould, ...] = (MOULDS["bracket-pp-4"],)
    calendar: ShiftCalendar = field(default_factory=ShiftCalendar.around_the_clock)
    break_offset_min: float = 0.0  # staggers this machine's breaks against its neighbours'
    screw_diameter_mm: float = 40.0
    max_pressure_bar: float = 1400.0  # specific pressure the hydraulics can give when new
    pressure_limit: float = 1.2  # the process's injection pressure limit, times the mould's peak
    intensification: float = 10.0  # specific (melt) pressure per bar of hydraulic pressure
    cushion_mm: float = 5.0
    speed_factor: float = 1.0  # > 1: a slower (older) machine's movements
    stops: tuple[StopCause, ...] = DEFAULT_STOPS
    micro_stops_per_h: float = 3.0
    job_parts: tuple[int, int] = (20_000, 60_000)  # order sizes, parts
    setup_median_min: float = 40.0
    # Hours of running between quality-control samples, whose parts are test parts
    # (neither good nor bad); 0: none taken.
    test_sample_interval_h: float = 2.0
    # Median wait (log-normal) for the next order once one is finished, a planned stop
    # "no_order"; 0: the next order is always waiting.
    order_gap_median_h: float = 0.0
    # Every component wears, on the lives of simulators.life.DEFAULT_LIVES unless one is
    # given here; `wear_time_factor` makes every life that many times shorter (training runs).
    lives: tuple[ComponentLife, ...] = ()
    wear_time_factor: float = 1.0
    maintenance: tuple[Maintenance, ...] = ()
    lot_mean_h: float = 24.0  # running hours between material lots (mean, exponential)
    # The share of cycles scrapped for causes a healthy process still has (contamination,
    # moisture, ...), drawn per machine within this range.
    baseline_scrap: tuple[float, float] = (0.003, 0.010)
    weather_seed: int = 0  # varies the site's weather (the same for every press of a site)
    ideal_sensors: bool = False  # True: signals without sensor noise, offsets or faults (tests)

    @property
    def screw_area_cm2(self) -> float:
        return math.pi * (self.screw_diameter_mm / 20.0) ** 2


def demo_floor(count: int, site: str = "demo") -> list[MachineSpec]:
    """`count` machines over two lines, each with its own copies of three of `MOULDS`.

    They follow the demo plant file's calendar (around the clock, breaks at the same time
    for all), which `moldlab demo` loads whichever floor it runs.
    """
    names = list(MOULDS)
    return [
        MachineSpec(
            machine_id=f"imm-{i + 1:02d}",
            site=site,
            line=f"line-{i % 2 + 1}",
            # each press its own moulds: two of a kind are two moulds, counted apart
            moulds=tuple(
                replace(
                    MOULDS[names[(i + k) % len(names)]],
                    name=f"{names[(i + k) % len(names)]}#{i + 1}",
                )
                for k in range(3)
            ),
            speed_factor=1.0 + 0.04 * (i % 3),
        )
        for i in range(count)
    ]
