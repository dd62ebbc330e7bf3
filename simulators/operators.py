"""The setters who run a press: three crews on rotating shifts, each with its own habits.

A crew looks at its press every so often (a good setter often, a poor one seldom) and
corrects what it sees: as the cushion falls (a leaking check ring), it raises the shot size
(the plastification stroke) to bring the cushion back; it also tweaks setpoints now and then
(hold pressure, barrel temperatures, cooling time), which a new mould's setup sheet undoes.
A good setter on a shift hides a wearing check ring for days: the cushion stays where it
should, only the shot size creeps up and the cushion's spread grows.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class Skill:
    name: str
    check_every_h: float  # running hours between looks at the process
    cushion_tolerance_mm: float  # how far the cushion may fall before the crew corrects it
    tweak_share: float  # of looks that end in a setpoint tweak
    watches_scrap: bool = True  # stops for a quality check when scrap runs high


SKILLS = {
    "good": Skill("good", 0.5, 0.3, 0.05),
    "average": Skill("average", 1.5, 1.0, 0.15),
    "poor": Skill("poor", 4.0, 2.0, 0.3),
}
MAX_SHOT_OFFSET_MM = 5.0  # a setter raises the shot by this much at most before calling for help
_CREWS = 3
_SHIFT_H = 8.0
_FIRST_SHIFT_H = 6.0
_CACHE_S = 900.0


class Crews:
    """The crews of one press and the setpoint changes they have made to the current job."""

    def __init__(self, rng: random.Random, timezone: str) -> None:
        self._rng = rng
        self._zone = ZoneInfo(timezone)
        names = ["good", "average", "poor"]
        rng.shuffle(names)
        if rng.random() < 0.3:  # some presses have two good setters, some none
            names[rng.randrange(_CREWS)] = rng.choice(["good", "poor"])
        self.skills = tuple(SKILLS[n] for n in names)
        self.shot_offset_mm = 0.0
        self.hold_factor = 1.0
        self.barrel_offset_c = 0.0
        self.cool_offset_s = 0.0
        self.since_check_h = 0.0
        self._cached = (-1, 0)  # (quarter-hour, crew) of the last look-up

    def crew_at(self, t: float) -> int:
        """The crew on shift at `t`: 06-14, 14-22, 22-06 local time, rotating every week."""
        key = int(t // _CACHE_S)  # shifts change on the hour: a quarter-hour is one crew
        if key != self._cached[0]:
            local = datetime.fromtimestamp(key * _CACHE_S, UTC).astimezone(self._zone)
            hours = (local.hour + local.minute / 60.0 - _FIRST_SHIFT_H) % 24.0
            week = local.isocalendar()[1]
            self._cached = (key, (int(hours // _SHIFT_H) + week) % _CREWS)
        return self._cached[1]

    def skill_at(self, t: float) -> Skill:
        return self.skills[self.crew_at(t)]

    def due(self, t: float) -> Skill | None:
        """The crew's skill when its next look at the process is due (else None)."""
        skill = self.skill_at(t)
        return skill if self.since_check_h >= skill.check_every_h else None

    def look(self, skill: Skill, cushion_mm: float, target_mm: float) -> bool:
        """The crew looks at the mean cushion of the last shots; True if it changed the setup."""
        self.since_check_h = 0.0
        changed = False
        rng = self._rng
        fall = target_mm - cushion_mm
        if fall > skill.cushion_tolerance_mm and self.shot_offset_mm < MAX_SHOT_OFFSET_MM:
            # Back to the target, rounded to what the setter types in (0.1 mm).
            wanted = self.shot_offset_mm + fall * rng.uniform(0.8, 1.1)
            self.shot_offset_mm = round(min(MAX_SHOT_OFFSET_MM, wanted), 1)
            changed = True
        elif fall < -1.0 and self.shot_offset_mm > 0.0:
            self.shot_offset_mm = round(max(0.0, self.shot_offset_mm + fall), 1)  # too much
            changed = True
        if rng.random() < skill.tweak_share:
            what = rng.randrange(3)
            if what == 0:
                self.hold_factor = min(
                    1.15, max(0.85, self.hold_factor * math.exp(rng.gauss(0, 0.04)))
                )
            elif what == 1:
                self.barrel_offset_c = min(
                    8.0, max(-8.0, self.barrel_offset_c + rng.choice((-3.0, -2.0, 2.0, 3.0)))
                )
            else:
                self.cool_offset_s = min(
                    2.0, max(-1.0, self.cool_offset_s + rng.choice((-0.5, 0.5)))
                )
            changed = True
        return changed

    def after_quality_stop(self, cushion_mm: float, target_mm: float) -> None:
        """After a quality stop every crew checks the cushion, whatever its habits."""
        self.look(SKILLS["good"], cushion_mm, target_mm)

    def new_setup(self) -> None:
        """A mould change: the setup sheet's values again."""
        self.hold_factor = 1.0
        self.barrel_offset_c = 0.0
        self.cool_offset_s = 0.0
        self.shot_offset_mm = 0.0

    def new_check_ring(self) -> None:
        """A new check ring does not leak: the shot goes back to the setup sheet's."""
        self.shot_offset_mm = 0.0
