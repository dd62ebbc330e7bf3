"""What surrounds a press: the hall's air, the cooling water, and the material lots it runs.

The hall follows the season (coolest in mid-January, warmest in mid-July), the day (warmest
mid-afternoon, site local time) and the weather (a smooth random offset per local day, the
same for every press of the site and seed). The cooling water comes from a tower that
follows the air. Material comes in lots, each with its own melt viscosity, and a job runs
with its own share of regrind, which makes the melt flow more easily.
"""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

HALL_MEAN_C = 22.0
HALL_SEASON_C = 5.0  # half the swing from winter to summer
HALL_DAY_C = 2.5  # half the swing from dawn to mid-afternoon
WEATHER_C = 1.8  # standard deviation of a day's weather offset
WATER_MEAN_C = 16.0
WATER_PER_AIR = 0.6  # degC of cooling water per degC of hall air
_YEAR_DAYS = 365.2425
_COLDEST_DOY = 15.0
_WARMEST_HOUR = 15.0


class Climate:
    """The hall air and cooling water at a site (`seed` varies the weather, not the climate)."""

    __slots__ = ("_offsets", "_seed", "_weather", "_zone")

    def __init__(self, site: str, timezone: str, seed: int = 0) -> None:
        self._zone = ZoneInfo(timezone)
        self._seed = zlib.crc32(site.encode()) ^ (seed & 0xFFFFFFFF)
        self._offsets: dict[int, float] = {}
        self._weather: dict[int, float] = {}

    def _offset_s(self, day: int) -> float:
        offset = self._offsets.get(day)
        if offset is None:
            at = datetime.fromtimestamp(day * 86_400.0 + 43_200.0, UTC)
            delta = at.astimezone(self._zone).utcoffset()
            offset = delta.total_seconds() if delta is not None else 0.0
            self._offsets[day] = offset
        return offset

    def _day_weather(self, day: int) -> float:
        value = self._weather.get(day)
        if value is None:
            value = random.Random(self._seed * 1_000_003 + day).gauss(0.0, WEATHER_C)
            self._weather[day] = value
        return value

    def air_c(self, t: float) -> float:
        """The hall's air temperature at epoch second `t`."""
        local = t + self._offset_s(int(t // 86_400.0))
        day_f = local / 86_400.0
        day = math.floor(day_f)
        frac = day_f - day
        # Days since 1970-01-01 as the day of the year, near enough for a climate.
        season = -math.cos(2.0 * math.pi * (t / 86_400.0 - _COLDEST_DOY) / _YEAR_DAYS)
        daily = math.cos(2.0 * math.pi * (frac * 24.0 - _WARMEST_HOUR) / 24.0)
        # Weather between one day's value and the next: no jump at midnight.
        w0, w1 = self._day_weather(day), self._day_weather(day + 1)
        weather = w0 + (w1 - w0) * frac
        return HALL_MEAN_C + HALL_SEASON_C * season + HALL_DAY_C * daily + weather

    def water_c(self, air_c: float) -> float:
        """The cooling water's supply temperature, with the hall at `air_c`."""
        return WATER_MEAN_C + WATER_PER_AIR * (air_c - HALL_MEAN_C)


@dataclass(frozen=True, slots=True)
class Lot:
    """A lot of material: its melt viscosity relative to the grade's nominal, its moisture."""

    number: int
    viscosity: float  # 1.0: the grade's nominal melt viscosity
    moisture: float  # 0-1: how much more splay it risks if not dried well


def draw_lot(rng: random.Random, number: int) -> Lot:
    """A new lot: viscosity within a few percent of nominal (the melt flow index spread)."""
    return Lot(number, math.exp(rng.gauss(0.0, 0.05)), rng.random())


def draw_regrind(rng: random.Random) -> float:
    """The regrind share of a job: most run virgin or 10-30 % regrind."""
    return 0.0 if rng.random() < 0.4 else rng.uniform(0.05, 0.3)


REGRIND_VISCOSITY = 0.25  # relative fall of melt viscosity per unit share of regrind
