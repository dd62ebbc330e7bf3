"""The plant file: what a machine cannot tell (sites, shift calendars, moulds, machines), in YAML.

Validated when read: unknown keys, duplicate keys, unknown time zones, breaks outside their
shift, overlapping shifts, limits with lower >= upper and references to a site that is not
there are refused, each with `file:line: field: what`. Times of day are local to the site
and may be written unquoted (`start: 06:00`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
)

from contracts import CYCLE_PARAMETERS
from contracts.configfile import field_path, line_of, located
from contracts.topics import check_segment
from plant.calendar import WEEKDAY_NAMES, Break, Shift, ShiftCalendar


def _known_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (an IANA name: Europe/Rome)") from None
    return value


TimeZoneName = Annotated[str, AfterValidator(_known_zone)]


class PlantFileError(ValueError):
    """A plant file that cannot be read or is not valid; one `file:line: field: what` a line."""


_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def _clock(value: object) -> object:
    if isinstance(value, time):
        return value
    if not isinstance(value, str) or not (m := _CLOCK.match(value.strip())):
        raise ValueError(f"a time of day is HH:MM (e.g. 06:00), not {value!r}")
    return time(int(m[1]), int(m[2]))


# A local time of day, written HH:MM, kept as such in JSON (the store's copy).
ClockTime = Annotated[
    time,
    BeforeValidator(_clock),
    PlainSerializer(lambda t: t.strftime("%H:%M"), return_type=str, when_used="json"),
]


def _weekday(value: object) -> object:
    if isinstance(value, str) and value.lower()[:3] in WEEKDAY_NAMES:
        return value.lower()[:3]
    raise ValueError(f"a weekday is one of {', '.join(WEEKDAY_NAMES)}, not {value!r}")


_Weekday = Annotated[str, BeforeValidator(_weekday)]
_Segment = Annotated[str, AfterValidator(lambda value: check_segment("id", value))]
_Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^\S(.*\S)?$")]
_Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PlantBreak(_Model):
    start: ClockTime
    end: ClockTime

    @property
    def minutes(self) -> int:
        return (_minute(self.end) - _minute(self.start)) % 1440


class PlantShift(_Model):
    name: _Id
    start: ClockTime
    end: ClockTime = Field(description="at or before start: the next day")
    weekdays: list[_Weekday] = Field(default=list(WEEKDAY_NAMES), min_length=1)
    breaks: list[PlantBreak] = []

    def shift(self) -> Shift:
        return Shift(
            self.name,
            self.start,
            self.end,
            tuple(sorted(WEEKDAY_NAMES.index(d) for d in set(self.weekdays))),
            tuple(Break(b.start, b.minutes) for b in self.breaks),
        )


class PlantCalendar(_Model):
    shifts: list[PlantShift] = Field(min_length=1)
    holidays: list[date] = Field(default=[], description="local dates with no shift starting")


class Site(_Model):
    id: _Segment
    name: str = Field(default="", max_length=200)
    timezone: TimeZoneName = Field(description="IANA time zone, e.g. Europe/Rome")
    calendar: PlantCalendar

    def shift_calendar(self) -> ShiftCalendar:
        return ShiftCalendar(
            self.timezone,
            tuple(s.shift() for s in self.calendar.shifts),
            frozenset(self.calendar.holidays),
        )


class SpecLimits(_Model):
    """Specification limits of one cycle parameter, in its contracts unit."""

    lower: float = Field(allow_inf_nan=False)
    upper: float = Field(allow_inf_nan=False)
    target: float | None = Field(default=None, allow_inf_nan=False)


class Mould(_Model):
    id: _Id
    cavities: int = Field(ge=1, le=512)
    ideal_cycle_s: _Positive = Field(description="planned time per shot, all cavities")
    part_weight_g: _Positive
    material: str = Field(min_length=1, max_length=64)
    # Keyed by the EUROMAP 77 name of contracts.CYCLE_PARAMETERS (PartWeight among them).
    limits: dict[str, SpecLimits] = {}


class Machine(_Model):
    site: _Segment
    area: _Segment
    line: _Segment
    id: _Segment
    clamp_force_kn: _Positive | None = None
    screw_diameter_mm: _Positive | None = None
    max_shot_volume_cm3: _Positive | None = None

    @property
    def place(self) -> tuple[str, str, str, str]:
        return (self.site, self.area, self.line, self.id)


class Plant(_Model):
    effective_from: AwareDatetime | None = Field(
        default=None, description="when it takes effect (moldlab plant load may say otherwise)"
    )
    sites: list[Site] = Field(min_length=1)
    moulds: list[Mould] = []
    machines: list[Machine] = []

    def site(self, site_id: str) -> Site | None:
        return next((s for s in self.sites if s.id == site_id), None)

    def mould(self, mould_id: str) -> Mould | None:
        return next((m for m in self.moulds if m.id == mould_id), None)


Where = tuple[int | str, ...]


def _minute(t: time) -> int:
    return t.hour * 60 + t.minute


def _duplicates(values: Sequence[object]) -> list[int]:
    """Indexes of values seen before."""
    return [i for i, v in enumerate(values) if v in values[:i]]


def _check_shifts(here: Where, shifts: list[PlantShift]) -> list[tuple[Where, str]]:
    found: list[tuple[Where, str]] = []
    for j in _duplicates([s.name for s in shifts]):
        found.append(((*here, j, "name"), f"shift name {shifts[j].name!r} used more than once"))
    week: list[tuple[int, int, int]] = []  # (start, end, shift index) in minutes from Monday
    for j, ps in enumerate(shifts):
        shift = ps.shift()
        length = shift.nominal_minutes
        spans: list[tuple[int, int]] = []
        for k, brk in enumerate(ps.breaks):
            into = shift.break_offset_minutes(Break(brk.start, brk.minutes))
            if brk.minutes == 0:
                found.append(((*here, j, "breaks", k, "end"), "a break ends after it starts"))
            elif into + brk.minutes > length:
                field = "start" if into >= length else "end"
                found.append(
                    (
                        (*here, j, "breaks", k, field),
                        f"the break {brk.start:%H:%M}-{brk.end:%H:%M} is not inside the shift "
                        f"{ps.start:%H:%M}-{ps.end:%H:%M}",
                    )
                )
            elif any(s < into + brk.minutes and into < e for s, e in spans):
                found.append(((*here, j, "breaks", k), "overlaps an earlier break of the shift"))
            spans.append((into, into + brk.minutes))
        for day in shift.weekdays:
            start = day * 1440 + _minute(ps.start)
            week.append((start, start + length, j))
    clashes: set[tuple[int, int]] = set()
    for a_start, a_end, a in week:
        for b_start, b_end, b in week:
            if a < b and any(
                a_start < b_end + shift_by and b_start + shift_by < a_end
                for shift_by in (-7 * 1440, 0, 7 * 1440)  # the week wraps around
            ):
                clashes.add((a, b))
    for a, b in sorted(clashes):
        found.append(((*here, b), f"shift {shifts[b].name!r} overlaps shift {shifts[a].name!r}"))
    return found


def check_references(plant: Plant) -> list[tuple[Where, str]]:
    """What pydantic cannot see field by field: uniqueness, references, order of limits."""
    found: list[tuple[Where, str]] = []
    for i in _duplicates([s.id for s in plant.sites]):
        found.append((("sites", i, "id"), f"site {plant.sites[i].id!r} is defined more than once"))
    for i, site in enumerate(plant.sites):
        found += _check_shifts(("sites", i, "calendar", "shifts"), site.calendar.shifts)
        for k in _duplicates(site.calendar.holidays):
            found.append((("sites", i, "calendar", "holidays", k), "holiday listed twice"))
    for i in _duplicates([m.id for m in plant.moulds]):
        found.append(
            (("moulds", i, "id"), f"mould {plant.moulds[i].id!r} is defined more than once")
        )
    for i, mould in enumerate(plant.moulds):
        for name, lim in mould.limits.items():
            here: Where = ("moulds", i, "limits", name)
            if name not in CYCLE_PARAMETERS:
                found.append(
                    (here, f"unknown cycle parameter; known: {', '.join(CYCLE_PARAMETERS)}")
                )
            elif lim.lower >= lim.upper:
                found.append(
                    ((*here, "upper"), f"upper {lim.upper:g} is not above lower {lim.lower:g}")
                )
            elif lim.target is not None and not lim.lower <= lim.target <= lim.upper:
                found.append(
                    (
                        (*here, "target"),
                        f"target {lim.target:g} is outside {lim.lower:g}..{lim.upper:g}",
                    )
                )
    sites = {s.id for s in plant.sites}
    for i, machine in enumerate(plant.machines):
        if machine.site not in sites:
            found.append(
                (
                    ("machines", i, "site"),
                    f"no site {machine.site!r} in this file; sites: {', '.join(sorted(sites))}",
                )
            )
    for i in _duplicates([m.place for m in plant.machines]):
        found.append(
            (("machines", i, "id"), f"machine {'/'.join(plant.machines[i].place)} is listed twice")
        )
    return found


class _Loader(yaml.SafeLoader):
    """Safe YAML where 06:00 is a time of day (not 360, base 60) and a key may appear once."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.yaml_implicit_resolvers = {
    first: list(resolvers) for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _digit in "0123456789":
    _Loader.yaml_implicit_resolvers.setdefault(_digit, []).insert(
        0, ("tag:yaml.org,2002:str", re.compile(r"^\d{1,2}:\d{2}$"))
    )


def parse_plant(text: str, source: str = "<plant>") -> Plant:
    """The plant in YAML `text`; PlantFileError names `source`, the line and the field."""
    try:
        data: Any = yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise PlantFileError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    try:
        plant = Plant.model_validate(data)
    except ValidationError as exc:
        raise PlantFileError(located(exc, yaml.compose(text, Loader=_Loader), source)) from None
    if found := check_references(plant):
        root = yaml.compose(text, Loader=_Loader)
        raise PlantFileError(
            "\n".join(
                f"{source}:{line_of(root, loc)}: {field_path(loc)}: {msg}" for loc, msg in found
            )
        )
    return plant


def load_plant(path: Path | str) -> Plant:
    """The validated plant file at `path`."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise PlantFileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PlantFileError(
            f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}"
        ) from None
    return parse_plant(text, str(path))


def effective(plant: Plant, given: datetime | None, now: datetime) -> datetime:
    """When a load takes effect: the time given to `plant load`, else the file's, else now."""
    return given or plant.effective_from or now
