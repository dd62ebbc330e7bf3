"""Scenario files: the machines of a simulated floor, their moulds, shifts and faults (YAML).

Validated at load: unknown keys, unknown moulds or components and impossible numbers are
refused with the file, line and field. `scenarios/` in this package holds the examples that
`moldlab demo` and the training-data exports use.

A scenario that names a plant file (`plant: demo-plant.yaml`, relative to the scenario) takes
the site, its time zone and shift calendar, each machine's area and line and each mould's
master data (cavities, part weight, material) from it, so that the simulated floor follows the
calendar analytics reads from the database; the scenario keeps the physics (the phases of the
cycle, pressures, wear) and refuses what would contradict the plant file.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime, time, timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from contracts import STANDSTILL_REASONS, MachineState
from contracts.configfile import field_path, line_of, located
from contracts.topics import check_segment
from plant import Break, Plant, PlantFileError, Shift, ShiftCalendar, TimeZoneName, load_plant
from simulators.faults import Component, Maintenance
from simulators.life import THRESHOLD, ComponentLife
from simulators.specs import DEFAULT_STOPS, MATERIALS, MOULDS, MachineSpec, Mould, StopCause

# The packaged scenarios and their plant files (a directory: the package is not zipped).
PACKAGED = Path(str(resources.files("simulators") / "scenarios"))


class ScenarioError(ValueError):
    """A scenario file that cannot be read or is not valid; the text says where."""


_Segment = Annotated[str, AfterValidator(lambda value: check_segment("id", value))]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Break(_Model):
    after_h: float = Field(ge=0, le=24)
    minutes: float = Field(gt=0, le=240)


class _Shift(_Model):
    start: time
    hours: float = Field(gt=0, le=24)
    weekdays: list[Annotated[int, Field(ge=0, le=6)]] = Field(
        default=[0, 1, 2, 3, 4, 5, 6], description="0 = Monday"
    )
    breaks: list[_Break] = []

    @model_validator(mode="after")
    def _breaks_inside(self) -> _Shift:
        for b in self.breaks:
            if b.after_h + b.minutes / 60 > self.hours:
                raise ValueError(f"a break {b.after_h} h into a {self.hours} h shift runs past it")
        return self


class _Calendar(_Model):
    shifts: list[_Shift] = Field(min_length=1)


class _Mould(_Model):
    name: str = Field(min_length=1, max_length=64)
    material: str
    cavities: int = Field(ge=1, le=256)
    part_weight_g: float = Field(gt=0, le=50_000)
    close_s: float = Field(default=1.2, gt=0, le=60)
    inject_s: float = Field(default=0.6, gt=0, le=60)
    hold_s: float = Field(default=3.0, ge=0, le=120)
    cool_s: float = Field(default=8.0, gt=0, le=600)
    dose_s: float = Field(default=3.5, gt=0, le=600)
    open_s: float = Field(default=1.2, gt=0, le=60)
    eject_s: float = Field(default=0.8, gt=0, le=60)
    peak_pressure_bar: float = Field(default=900.0, ge=100, le=2500)
    hold_fraction: float = Field(default=0.5, ge=0.1, le=1.0)
    ejection_force_kn: float = Field(default=8.0, gt=0, le=500)
    lifetime_shots: int = Field(default=0, ge=0)

    @field_validator("material")
    @classmethod
    def _known_material(cls, value: str) -> str:
        if value not in MATERIALS:
            raise ValueError(f"unknown material {value!r}; known: {', '.join(MATERIALS)}")
        return value

    def spec(self) -> Mould:
        fields = self.model_dump(exclude={"material"})
        return Mould(material=MATERIALS[self.material], **fields)


class _Life(_Model):
    """A machine's own life for one component; what is not given is the default's."""

    component: Component
    scale_h: float | None = Field(
        default=None,
        gt=0,
        le=1_000_000,
        description="Weibull scale, running hours at reference load",
    )
    shape: float | None = Field(default=None, ge=0.5, le=20, description="Weibull shape")
    sudden_share: float | None = Field(default=None, ge=0, le=1, description="of lives")
    initial_health: float | None = Field(
        default=None, gt=THRESHOLD, le=1, description="below 1: visibly worn at the start"
    )
    initial_age_h: float | None = Field(
        default=None, ge=0, description="reference-load running hours since new at the start"
    )

    @model_validator(mode="after")
    def _one_start(self) -> _Life:
        if self.initial_health is not None and self.initial_age_h is not None:
            raise ValueError("give initial_health or initial_age_h, not both")
        return self

    def spec(self) -> ComponentLife:
        return ComponentLife(**self.model_dump())


class _Maintenance(_Model):
    at_h: float = Field(ge=0)
    components: list[Component] = Field(min_length=1)
    duration_h: float = Field(default=2.0, gt=0, le=240)


class _Stop(_Model):
    state: MachineState
    reason: str
    mtbf_h: float = Field(gt=0, le=100_000, description="running hours between such stops")
    repair_median_min: float = Field(gt=0, le=10_000)
    repair_sigma: float = Field(default=0.6, ge=0, le=3)

    @model_validator(mode="after")
    def _known_reason(self) -> _Stop:
        allowed = STANDSTILL_REASONS.get(self.state, ())
        if self.state not in (MachineState.IDLE, MachineState.UNPLANNED_STOP):
            raise ValueError("random stops are idle or unplanned_stop")
        if self.reason not in allowed:
            raise ValueError(f"{self.state.value} reasons are {', '.join(allowed)}")
        return self

    def spec(self) -> StopCause:
        return StopCause(**self.model_dump())


class _Machine(_Model):
    id: _Segment
    line: _Segment = "line-1"
    area: _Segment | None = None
    moulds: list[str] = Field(default=["bracket-pp-4"], min_length=1)
    speed_factor: float = Field(default=1.0, ge=0.5, le=2.0)
    break_offset_min: float = Field(default=0.0, ge=0, le=480)
    micro_stops_per_h: float = Field(default=3.0, ge=0, le=120)
    screw_diameter_mm: float = Field(default=40.0, ge=12, le=150)
    setup_median_min: float = Field(default=40.0, gt=0, le=1440)
    job_parts: tuple[int, int] = (20_000, 60_000)
    test_sample_interval_h: float = Field(
        default=2.0, ge=0, le=168, description="running hours between QC samples; 0: none"
    )
    order_gap_median_h: float = Field(
        default=0.0, ge=0, le=720, description="median wait for the next order; 0: none"
    )
    stops: list[_Stop] | None = Field(
        default=None, description="random stops; default: simulators.specs.DEFAULT_STOPS"
    )
    components: list[_Life] = Field(
        default=[], description="own lives of components; every component wears regardless"
    )
    maintenance: list[_Maintenance] = []
    lot_mean_h: float = Field(
        default=24.0, gt=0, le=10_000, description="running hours between material lots"
    )

    @field_validator("job_parts")
    @classmethod
    def _ordered(cls, value: tuple[int, int]) -> tuple[int, int]:
        if not 1 <= value[0] <= value[1]:
            raise ValueError("job_parts is [fewest, most], at least 1")
        return value

    @model_validator(mode="after")
    def _one_life_per_component(self) -> _Machine:
        comps = [d.component for d in self.components]
        if dupes := sorted({c.value for c in comps if comps.count(c) > 1}):
            raise ValueError(f"more than one entry for {dupes}")
        return self


class _Scenario(_Model):
    plant: str | None = Field(default=None, description="a plant file, relative to this file")
    site: _Segment = "demo"
    area: _Segment = "hall-a"
    timezone: TimeZoneName = "Europe/Rome"
    calendar: Literal["around_the_clock", "two_shifts_weekdays"] | _Calendar = "around_the_clock"
    start: AwareDatetime | None = Field(default=None, description="where an export begins")
    seed: int | None = None
    wear_time_factor: float = Field(
        default=1.0, ge=1, le=1000, description="every life this many times shorter (training)"
    )
    moulds: list[_Mould] = []
    machines: list[_Machine] = Field(min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _references(self) -> _Scenario:
        ids = [m.id for m in self.machines]
        if dupes := sorted({i for i in ids if ids.count(i) > 1}):
            raise ValueError(f"machine ids used more than once: {dupes}")
        if clash := sorted({m.name for m in self.moulds} & set(MOULDS)):
            raise ValueError(f"moulds {clash} are built in; give yours other names")
        known = set(MOULDS) | {m.name for m in self.moulds}
        specs = {**MOULDS, **{m.name: m.spec() for m in self.moulds}}
        on: dict[str, str] = {}
        for machine in self.machines:
            area = math.pi * (machine.screw_diameter_mm / 20.0) ** 2
            for name in machine.moulds:
                # A screw doses up to ~4.5 diameters of stroke; beyond that the shot does not fit.
                stroke = specs[name].shot_volume_cm3 / area * 10.0 if name in specs else 0.0
                if stroke > 4.5 * machine.screw_diameter_mm:
                    raise ValueError(
                        f"machine {machine.id}: a shot of mould {name} needs {stroke:.0f} mm "
                        f"of stroke, more than 4.5 diameters of its "
                        f"{machine.screw_diameter_mm:g} mm screw"
                    )
            if unknown := [name for name in machine.moulds if name not in known]:
                raise ValueError(
                    f"machine {machine.id}: unknown moulds {unknown}; known: {sorted(known)}"
                )
            for name in machine.moulds:
                if name in on and on[name] != machine.id:
                    raise ValueError(
                        f"mould {name} is listed on {on[name]} and {machine.id}; a mould is "
                        "on one press at a time (define a second one under another name)"
                    )
                on[name] = machine.id
        return self


class Scenario:
    """A validated scenario: the machine specs and, for exports, its start and seed."""

    def __init__(
        self,
        machines: list[MachineSpec],
        start: datetime | None,
        seed: int | None,
        plant: Plant | None = None,
        plant_path: Path | None = None,
        wear_time_factor: float = 1.0,
    ):
        self.machines = machines
        self.start = start
        self.seed = seed
        self.wear_time_factor = wear_time_factor
        self.plant = plant  # the plant file it names, validated, and where that file is
        self.plant_path = plant_path


def _shift(i: int, s: _Shift) -> Shift:
    begin = datetime.combine(datetime(2000, 1, 1), s.start)
    return Shift(
        f"shift-{i + 1}",
        s.start,
        (begin + timedelta(hours=s.hours)).time(),
        tuple(s.weekdays),
        tuple(Break((begin + timedelta(hours=b.after_h)).time(), b.minutes) for b in s.breaks),
    )


def _build(model: _Scenario, plant: Plant | None = None) -> Scenario:
    site = plant.site(model.site) if plant else None
    if site is not None:
        calendar = site.shift_calendar()
    elif isinstance(model.calendar, _Calendar):
        calendar = ShiftCalendar(
            model.timezone, tuple(_shift(i, s) for i, s in enumerate(model.calendar.shifts))
        )
    elif model.calendar == "two_shifts_weekdays":
        calendar = ShiftCalendar.two_shifts_weekdays(model.timezone)
    else:
        calendar = ShiftCalendar.around_the_clock(model.timezone)
    moulds = {**MOULDS, **{m.name: m.spec() for m in model.moulds}}
    for master in plant.moulds if plant else ():
        if master.id in moulds and master.material in MATERIALS:
            moulds[master.id] = replace(
                moulds[master.id],
                cavities=master.cavities,
                part_weight_g=master.part_weight_g,
                material=MATERIALS[master.material],
            )
    machines = [
        MachineSpec(
            machine_id=m.id,
            site=model.site,
            area=m.area or model.area,
            line=m.line,
            moulds=tuple(moulds[name] for name in m.moulds),
            calendar=calendar,
            break_offset_min=m.break_offset_min,
            speed_factor=m.speed_factor,
            micro_stops_per_h=m.micro_stops_per_h,
            screw_diameter_mm=m.screw_diameter_mm,
            setup_median_min=m.setup_median_min,
            job_parts=m.job_parts,
            test_sample_interval_h=m.test_sample_interval_h,
            order_gap_median_h=m.order_gap_median_h,
            stops=tuple(x.spec() for x in m.stops) if m.stops is not None else DEFAULT_STOPS,
            lives=tuple(d.spec() for d in m.components),
            wear_time_factor=model.wear_time_factor,
            maintenance=tuple(
                Maintenance(x.at_h, tuple(x.components), x.duration_h) for x in m.maintenance
            ),
            lot_mean_h=m.lot_mean_h,
            weather_seed=model.seed or 0,
        )
        for m in model.machines
    ]
    return Scenario(machines, model.start, model.seed, plant, None, model.wear_time_factor)


Where = tuple[int | str, ...]


def _plant_problems(model: _Scenario, plant: Plant) -> list[tuple[Where, str]]:
    """Where the scenario contradicts its plant file (or names what the file lacks)."""
    found: list[tuple[Where, str]] = []
    site = plant.site(model.site)
    if site is None:
        sites = ", ".join(s.id for s in plant.sites)
        return [(("site",), f"no site {model.site!r} in the plant file; its sites: {sites}")]
    for key in ("timezone", "calendar", "area"):
        if key in model.model_fields_set:
            found.append(((key,), "comes from the plant file; remove it here"))
    physics = {**MOULDS, **{m.name: m.spec() for m in model.moulds}}
    for i, machine in enumerate(model.machines):
        here: Where = ("machines", i)
        placed = [m for m in plant.machines if m.site == site.id and m.id == machine.id]
        if len(placed) != 1:
            found.append(
                ((*here, "id"), f"the plant file lists {len(placed)} machines {machine.id!r} at "
                 f"site {site.id}; a scenario machine needs exactly one")
            )  # fmt: skip
        else:
            for key in ("line", "area"):
                said = getattr(placed[0], key)
                if key in machine.model_fields_set and getattr(machine, key) != said:
                    found.append(((*here, key), f"the plant file says {said}"))
        if machine.break_offset_min:
            found.append(
                ((*here, "break_offset_min"), "breaks are the plant calendar's; it has no offset")
            )
        for k, name in enumerate(machine.moulds):
            master = plant.mould(name)
            if master is None:
                found.append(((*here, "moulds", k), f"no mould {name!r} in the plant file"))
            elif master.material not in MATERIALS:
                found.append(
                    ((*here, "moulds", k), f"mould {name}: the simulators know no material "
                     f"{master.material!r}; they know {', '.join(MATERIALS)}")
                )  # fmt: skip
            elif name in physics:
                simulated = physics[name]
                if simulated.ideal_cycle_s < master.ideal_cycle_s - 1e-9:
                    found.append(
                        ((*here, "moulds", k), f"mould {name} cycles in "
                         f"{simulated.ideal_cycle_s:g} s here, faster than its ideal "
                         f"{master.ideal_cycle_s:g} s in the plant file")
                    )  # fmt: skip
    for i, own in enumerate(model.moulds):
        master = plant.mould(own.name)
        for key in ("material", "cavities", "part_weight_g"):
            if master is not None and getattr(own, key) != getattr(master, key):
                found.append(((("moulds", i, key)), f"the plant file says {getattr(master, key)}"))
    return found


def _with_plant(model: _Scenario, plant: Plant) -> _Scenario:
    """The scenario with the plant file's calendar, places and mould master data in it."""
    site = plant.site(model.site)
    assert site is not None
    machines = []
    for machine in model.machines:
        placed = next(m for m in plant.machines if m.site == site.id and m.id == machine.id)
        machines.append(
            machine.model_copy(
                update={
                    "line": placed.line,
                    "area": placed.area,
                    "screw_diameter_mm": placed.screw_diameter_mm or machine.screw_diameter_mm,
                }
            )
        )
    return model.model_copy(update={"timezone": site.timezone, "machines": machines})


def parse_scenario(text: str, source: str = "<scenario>", base_dir: Path | None = None) -> Scenario:
    """The scenario in YAML `text`; ScenarioError names `source`, the line and the field.

    A plant file it names is read relative to `base_dir` (default: the working directory).
    """
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise ScenarioError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    try:
        model = _Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(located(exc, yaml.compose(text), source)) from None
    if model.plant is None:
        return _build(model)
    plant_path = (base_dir or Path()) / model.plant
    try:
        plant = load_plant(plant_path)
    except PlantFileError as exc:
        raise ScenarioError(f"{source}: plant file {model.plant}:\n{exc}") from None
    if found := _plant_problems(model, plant):
        root = yaml.compose(text)
        raise ScenarioError(
            "\n".join(
                f"{source}:{line_of(root, loc)}: {field_path(loc)}: {msg}" for loc, msg in found
            )
        )
    scenario = _build(_with_plant(model, plant), plant)
    scenario.plant_path = plant_path
    return scenario


def load_scenario(path: Path | str) -> Scenario:
    """The scenario in the file `path`, or a packaged one by name (`demo`, `faults`)."""
    path = Path(path)
    packaged = resources.files("simulators") / "scenarios" / f"{path}.yaml"
    if not path.exists() and path.parent == Path(".") and packaged.is_file():
        return parse_scenario(packaged.read_text(), f"scenarios/{path}.yaml", PACKAGED)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ScenarioError(f"{path}: no such file") from None
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_scenario(text, str(path), path.parent)
