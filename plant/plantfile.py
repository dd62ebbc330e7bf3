"""The plant file: what a machine cannot tell (sites, shift calendars, moulds, machines), in YAML.

Validated when read: unknown keys, duplicate keys, unknown time zones, impossible dates,
breaks outside their shift, overlapping shifts, limits with lower >= upper and references to a
site that is not there are refused, each with `file:line: field: what` (the first
MAX_PROBLEMS of them, then a count). Times of day are local to the site and may be written
unquoted (`start: 06:00`), and so may dates (`2026-12-25`) and times (`2026-12-01T06:00Z`).

Bounded, so that a wrong or hostile file is refused quickly rather than read for minutes: at
most MAX_FILE_BYTES, and each list at most as long as its MAX_* below; every check is linear
in the size of the file.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Hashable, Sequence
from datetime import UTC, date, datetime, time, timedelta
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
from contracts.configfile import field_path, line_of, problems
from contracts.topics import check_segment
from plant.calendar import WEEKDAY_NAMES, Break, Shift, ShiftCalendar

try:
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # PyYAML built without libyaml: the same YAML, read about 4 times slower
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]  # same interface

MAX_FILE_BYTES = 1 << 20  # 1 MiB: a plant at every list bound below still fits
MAX_SITES = 100
MAX_SHIFTS = 50  # a site
MAX_BREAKS = 10  # a shift
MAX_HOLIDAYS = 2_000  # a site
MAX_MOULDS = 10_000
MAX_MACHINES = 2_000
MAX_GATEWAYS = 2_000
MAX_PROBLEMS = 20  # shown of a bad file; the rest are counted
# A load may take effect at most this far ahead: until then nothing it holds can be changed.
MAX_AHEAD = timedelta(days=366)
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)

BOUNDS = (
    f"A plant file has at most {MAX_FILE_BYTES >> 20} MiB, {MAX_SITES} sites, {MAX_SHIFTS} "
    f"shifts and {MAX_HOLIDAYS:,} holidays a site, {MAX_BREAKS} breaks a shift, "
    f"{MAX_MOULDS:,} moulds, {MAX_MACHINES:,} machines and {MAX_GATEWAYS:,} gateways; it "
    "takes effect no earlier than "
    f"1970 and at most {MAX_AHEAD.days} days ahead of now."
)


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

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _date(value: object) -> object:
    # Dates arrive as text (the loader leaves them so): an impossible one is then a field
    # error with its line, not a crash inside the YAML library.
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and _DATE.match(value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError as exc:
            raise ValueError(f"{value.strip()} is not a date: {exc}") from None
    raise ValueError(f"a date is YYYY-MM-DD (e.g. 2026-12-25), not {value!r}")


# A calendar date, written YYYY-MM-DD.
_Date = Annotated[date, BeforeValidator(_date)]

_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


def _instant(value: object) -> object:
    if not isinstance(value, str):
        return value  # a datetime from Python code; pydantic judges anything else
    text = value.strip()
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        problem = str(exc)
    if yaml.constructor.SafeConstructor.timestamp_regexp.match(text):
        try:  # YAML's own forms, such as 2026-12-01 06:00:00 +1
            node = yaml.ScalarNode(_TIMESTAMP_TAG, text)
            return yaml.constructor.SafeConstructor().construct_yaml_timestamp(node)
        except ValueError as exc:
            problem = str(exc)
    if not problem.startswith("Invalid isoformat"):  # day is out of range for month, ...
        raise ValueError(f"{text} is not a real time: {problem}")
    raise ValueError(f"a time is ISO 8601 with a zone (2026-12-01T06:00:00+01:00), not {value!r}")


def _since_1970(value: datetime) -> datetime:
    if value < EARLIEST:
        raise ValueError(f"{value.isoformat()} is before 1970")
    return value


# An instant, ISO 8601 with a zone.
_Instant = Annotated[AwareDatetime, BeforeValidator(_instant), AfterValidator(_since_1970)]


def effective_problem(at: datetime, now: datetime) -> str | None:
    """Why master data cannot take effect at `at` (seen at `now`), or None if it can."""
    if at < EARLIEST:
        return f"{at.isoformat()} is before 1970"
    if at > now + MAX_AHEAD:
        return (
            f"{at.isoformat()} is more than {MAX_AHEAD.days} days ahead of now "
            f"({now.astimezone(UTC):%Y-%m-%dT%H:%MZ}): nothing it holds could be changed "
            "before then; load it nearer the time"
        )
    return None


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
    weekdays: list[_Weekday] = Field(default=list(WEEKDAY_NAMES), min_length=1, max_length=7)
    breaks: list[PlantBreak] = Field(default=[], max_length=MAX_BREAKS)

    def shift(self) -> Shift:
        return Shift(
            self.name,
            self.start,
            self.end,
            tuple(sorted(WEEKDAY_NAMES.index(d) for d in set(self.weekdays))),
            tuple(Break(b.start, b.minutes) for b in self.breaks),
        )


class PlantCalendar(_Model):
    shifts: list[PlantShift] = Field(min_length=1, max_length=MAX_SHIFTS)
    holidays: list[_Date] = Field(
        default=[],
        max_length=MAX_HOLIDAYS,
        description=f"local dates with no shift starting, at most {MAX_HOLIDAYS:,}",
    )


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
    limits: dict[str, SpecLimits] = Field(default={}, max_length=len(CYCLE_PARAMETERS))


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


class Gateway(_Model):
    """An edge gateway: the line it serves, whose topics it alone may publish under (the
    broker's ACL, `moldlab broker acl`)."""

    id: _Segment
    site: _Segment
    area: _Segment
    line: _Segment


class Plant(_Model):
    effective_from: _Instant | None = Field(
        default=None,
        description="when it takes effect (moldlab plant load may say otherwise); from 1970, "
        f"at most {MAX_AHEAD.days} days ahead",
    )
    sites: list[Site] = Field(min_length=1, max_length=MAX_SITES)
    moulds: list[Mould] = Field(default=[], max_length=MAX_MOULDS)
    machines: list[Machine] = Field(default=[], max_length=MAX_MACHINES)
    gateways: list[Gateway] = Field(default=[], max_length=MAX_GATEWAYS)

    def site(self, site_id: str) -> Site | None:
        return next((s for s in self.sites if s.id == site_id), None)

    def mould(self, mould_id: str) -> Mould | None:
        return next((m for m in self.moulds if m.id == mould_id), None)


Where = tuple[int | str, ...]


def _minute(t: time) -> int:
    return t.hour * 60 + t.minute


def _duplicates(values: Sequence[Hashable]) -> list[int]:
    """Indexes of values seen before."""
    seen: set[Hashable] = set()
    found: list[int] = []
    for i, value in enumerate(values):
        if value in seen:
            found.append(i)
        seen.add(value)
    return found


_WEEK = 7 * 1440


def _check_shifts(here: Where, shifts: list[PlantShift]) -> list[tuple[Where, str]]:
    found: list[tuple[Where, str]] = []
    for j in _duplicates([s.name for s in shifts]):
        found.append(((*here, j, "name"), f"shift name {shifts[j].name!r} used more than once"))
    # (start, end, shift index) in minutes from Monday 00:00; each also a week later, so that
    # a shift running past Sunday midnight meets the Monday ones of the next week.
    week: list[tuple[int, int, int]] = []
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
            week += [(start, start + length, j), (start + _WEEK, start + _WEEK + length, j)]
    week.sort()
    # A sweep by start: each span meets only the spans that start before it ends.
    first_clash: dict[int, int] = {}  # a shift -> the first shift (by index) it overlaps
    for i, (_, a_end, a) in enumerate(week):
        k = i + 1
        while k < len(week) and week[k][0] < a_end:
            earlier, later = min(a, week[k][2]), max(a, week[k][2])
            if earlier != later and earlier < first_clash.get(later, later):
                first_clash[later] = earlier
            k += 1
    for b, a in sorted(first_clash.items()):
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
    for i, gateway in enumerate(plant.gateways):
        if gateway.site not in sites:
            found.append((("gateways", i, "site"), f"no site {gateway.site!r} in this file"))
    for i in _duplicates([g.id for g in plant.gateways]):
        found.append((("gateways", i, "id"), f"gateway {plant.gateways[i].id!r} is listed twice"))
    for i in _duplicates([m.place for m in plant.machines]):
        found.append(
            (("machines", i, "id"), f"machine {'/'.join(plant.machines[i].place)} is listed twice")
        )
    return found


class _Loader(_SafeLoader):
    """Safe YAML where 06:00 is a time of day (not 360, base 60) and a key may appear once.

    Dates and times stay text, for the model to read: the YAML library would raise on
    2026-02-30 with no field or line to show.
    """

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
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _digit in "0123456789":
    _Loader.yaml_implicit_resolvers.setdefault(_digit, []).insert(
        0, ("tag:yaml.org,2002:str", re.compile(r"^\d{1,2}:\d{2}$"))
    )


def _too_big(source: str, size: int | None) -> PlantFileError:
    limit = f"{MAX_FILE_BYTES:,} bytes ({MAX_FILE_BYTES >> 20} MiB)"
    if size is None:  # a stream: only its first bytes were read
        return PlantFileError(
            f"{source}: the file is more than {limit}, the most a plant file may be"
        )
    return PlantFileError(
        f"{source}: the file is {size:,} bytes, more than {limit}, the most a plant file may be"
    )


def _report(found: Sequence[tuple[Sequence[int | str], str]], root: Any, source: str) -> str:
    """`file:line: field: what` for the first MAX_PROBLEMS problems, then how many more."""
    lines = [
        f"{source}:{line_of(root, loc)}: {field_path(loc)}: {msg}"
        for loc, msg in found[:MAX_PROBLEMS]
    ]
    if (more := len(found) - MAX_PROBLEMS) > 0:
        lines.append(f"... and {more} more problem{'s' if more > 1 else ''}")
    return "\n".join(lines)


def parse_plant(text: str, source: str = "<plant>", *, now: datetime | None = None) -> Plant:
    """The plant in YAML `text`; PlantFileError names `source`, the line and the field.

    With `now`, an effective_from more than MAX_AHEAD after it is refused too.
    """
    if (size := len(text.encode("utf-8", "surrogatepass"))) > MAX_FILE_BYTES:
        raise _too_big(source, size)
    loader = _Loader(text)  # a SafeLoader subclass
    try:
        root = loader.get_single_node()  # parsed once: the nodes give the lines of errors
        data: Any = None if root is None else loader.construct_document(root)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise PlantFileError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    finally:
        loader.dispose()
    try:
        plant = Plant.model_validate(data)
    except ValidationError as exc:
        raise PlantFileError(_report(problems(exc), root, source)) from None
    found = check_references(plant)
    at = plant.effective_from
    if now is not None and at is not None and (problem := effective_problem(at, now)):
        found.insert(0, (("effective_from",), problem))
    if found:
        raise PlantFileError(_report(found, root, source))
    return plant


def load_plant(path: Path | str, *, now: datetime | None = None) -> Plant:
    """The validated plant file at `path` (see parse_plant for `now`).

    At most MAX_FILE_BYTES + 1 bytes are read, so /dev/zero or a pipe is refused too.
    """
    path = Path(path)
    size: int | None = None
    try:
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
            if len(data) > MAX_FILE_BYTES:
                info = os.fstat(file.fileno())
                size = info.st_size if stat.S_ISREG(info.st_mode) else None
    except FileNotFoundError:
        raise PlantFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise PlantFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise _too_big(str(path), size)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PlantFileError(
            f"{path}: cannot read: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    return parse_plant(text, str(path), now=now)


def effective(plant: Plant, given: datetime | None, now: datetime) -> datetime:
    """When a load takes effect: the time given to `plant load`, else the file's, else now."""
    return given or plant.effective_from or now
