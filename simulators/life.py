"""Component lives: Weibull lifetimes, a P-F curve of visible wear, and sudden failures.

Each life of a component (from new, or from its last repair or maintenance) is drawn when it
begins: its length in running hours at reference load from a Weibull distribution (the
component's scale and shape), whether it ends in a wear-out or suddenly, and the shape of its
P-F curve. Damage accumulates while the machine runs, faster under load (the machine passes
the load factors in); health stays almost at 1.0 for most of the life (a drift too small to
see) and falls, accelerating, over the last 10-20 % of it to the failure threshold (0 for a
heater band, which burns out). A sudden life ends at a random point with no visible wear
before it. `wear_time_factor` runs every life that many times faster (training data).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from simulators.faults import HEATERS, Component

THRESHOLD = 0.15  # health at which a worn component breaks down
_DRIFT = 0.03  # health lost over a life before its P-F interval: too little to see
_PF_SHARE = (0.10, 0.20)  # the share of a life over which wear is visible, drawn per life
_PF_POWER = (1.7, 2.6)  # how sharply wear accelerates towards the failure, drawn per life
_SUDDEN_AT = (0.1, 0.97)  # where in its life a sudden failure strikes (share of the life)
_FIRST_AGE = 0.75  # a component's age at the start is drawn up to this share of its life

WEAR = "wear"
SUDDEN = "sudden"
COMPONENTS: tuple[Component, ...] = tuple(Component)


@dataclass(frozen=True, slots=True)
class LifeSpec:
    """A component's life: Weibull scale (running hours at reference load) and shape."""

    scale_h: float
    shape: float
    sudden_share: float  # of lives that end suddenly, with little or no warning


# Realistic lives on a press running around the clock (a month is ~600 running hours).
DEFAULT_LIVES: dict[Component, LifeSpec] = {
    Component.HEATER_ZONE2: LifeSpec(3000.0, 1.8, 0.20),
    Component.HEATER_ZONE3: LifeSpec(3000.0, 1.8, 0.20),
    Component.HEATER_ZONE4: LifeSpec(3000.0, 1.8, 0.20),
    Component.HEATER_NOZZLE: LifeSpec(2600.0, 1.8, 0.20),
    Component.CHECK_RING: LifeSpec(1500.0, 2.5, 0.10),
    Component.SCREW_BARREL: LifeSpec(6000.0, 3.0, 0.05),
    Component.HYDRAULIC_PUMP: LifeSpec(4000.0, 2.2, 0.15),
    Component.COOLING_CHANNELS: LifeSpec(2000.0, 2.0, 0.05),
    Component.EJECTOR: LifeSpec(2500.0, 2.0, 0.15),
}


@dataclass(frozen=True, slots=True)
class ComponentLife:
    """A machine's own life for one component (None: the default), and its state at the start.

    `initial_health` below 1 starts the component visibly worn, in the P-F interval of a
    life that ends in a wear-out; `initial_age_h` starts it that many reference-load hours
    into its life (default: drawn, up to three quarters of a life).
    """

    component: Component
    scale_h: float | None = None
    shape: float | None = None
    sudden_share: float | None = None
    initial_health: float | None = None
    initial_age_h: float | None = None


@dataclass(frozen=True, slots=True)
class Failure:
    component: Component
    mode: str  # WEAR or SUDDEN


class _Life:
    """One life of one component: when it fails, how, and where its wear becomes visible."""

    __slots__ = ("fail_at", "length", "mode", "pf_at", "power")

    def __init__(self, length: float, mode: str, fail_at: float, pf_at: float, power: float):
        self.length = length  # damage (reference-load running hours) of the wear-out
        self.mode = mode
        self.fail_at = fail_at  # damage at which it fails (earlier than length if sudden)
        self.pf_at = pf_at  # damage from which the wear shows
        self.power = power

    def worn(self, damage: float) -> float:
        """1 - health at `damage`: a slight drift, then the accelerating P-F curve."""
        x = damage / self.length
        worn = _DRIFT * min(x, 1.0)
        if damage > self.pf_at and self.mode == WEAR:
            span = self.length - self.pf_at
            worn += (1.0 - THRESHOLD - _DRIFT) * min(
                1.0, (damage - self.pf_at) / span
            ) ** self.power
        return worn


class Wear:
    """The true health of every component of one machine, ageing with its running and load."""

    def __init__(
        self,
        rng: random.Random,
        overrides: tuple[ComponentLife, ...] = (),
        wear_time_factor: float = 1.0,
        lives: dict[Component, LifeSpec] | None = None,
    ) -> None:
        self._rng = rng
        self.factor = wear_time_factor
        base = lives or DEFAULT_LIVES
        own = {o.component: o for o in overrides}
        self.specs: dict[Component, LifeSpec] = {}
        for comp in COMPONENTS:
            spec, o = base[comp], own.get(comp)
            if o is not None:
                spec = LifeSpec(
                    o.scale_h if o.scale_h is not None else spec.scale_h,
                    o.shape if o.shape is not None else spec.shape,
                    o.sudden_share if o.sudden_share is not None else spec.sudden_share,
                )
            self.specs[comp] = spec
        self.value: dict[Component, float] = dict.fromkeys(COMPONENTS, 1.0)
        self.damage: list[float] = [0.0] * len(COMPONENTS)
        self._lives: list[_Life] = []
        self.broken: set[Component] = set()
        for i, comp in enumerate(COMPONENTS):
            o = own.get(comp)
            if o is not None and o.initial_health is not None and o.initial_health < 1.0:
                life = self._draw(comp, wear_only=True)
                self.damage[i] = _damage_for(life, 1.0 - o.initial_health)
            else:
                life = self._draw(comp)
                if o is not None and o.initial_age_h is not None:
                    age = o.initial_age_h
                else:
                    age = life.length * rng.uniform(0.0, _FIRST_AGE)
                # A sudden failure already past is not this life's: it strikes later.
                if life.mode == SUDDEN and life.fail_at <= age:
                    life.fail_at = age + (life.length - age) * rng.random()
                self.damage[i] = min(age, life.fail_at * 0.999)
            self._lives.append(life)
            self.value[comp] = 1.0 - life.worn(self.damage[i])

    def _draw(self, comp: Component, wear_only: bool = False) -> _Life:
        rng = self._rng
        spec = self.specs[comp]
        length = rng.weibullvariate(spec.scale_h, spec.shape)
        pf_at = length * (1.0 - rng.uniform(*_PF_SHARE))
        power = rng.uniform(*_PF_POWER)
        sudden = rng.random() < spec.sudden_share and not wear_only
        if sudden:
            return _Life(length, SUDDEN, length * rng.uniform(*_SUDDEN_AT), pf_at, power)
        return _Life(length, WEAR, length, pf_at, power)

    def life_h(self, comp: Component) -> float:
        """Reference-load running hours at which the current life of `comp` ends."""
        return self._lives[COMPONENTS.index(comp)].fail_at

    def mode(self, comp: Component) -> str:
        """How the current life of `comp` ends: WEAR or SUDDEN."""
        return self._lives[COMPONENTS.index(comp)].mode

    def age(self, running_h: float, loads: list[float]) -> list[Failure]:
        """Run `running_h` hours under `loads` (one per component); the failures on the way."""
        out: list[Failure] = []
        step = running_h * self.factor
        damage, lives, value = self.damage, self._lives, self.value
        for i, comp in enumerate(COMPONENTS):
            if comp in self.broken:
                continue
            life = lives[i]
            d = damage[i] + step * loads[i]
            damage[i] = d
            if d >= life.fail_at:
                self.broken.add(comp)
                value[comp] = 0.0 if comp in HEATERS else THRESHOLD
                out.append(Failure(comp, life.mode))
            elif d > life.pf_at:
                value[comp] = 1.0 - life.worn(d)
            else:
                value[comp] = 1.0 - _DRIFT * d / life.length
        return out

    def fail(self, comp: Component) -> Failure:
        """Broken now: a heater band found dead or unable to hold its zone."""
        self.broken.add(comp)
        self.value[comp] = 0.0
        return Failure(comp, self.mode(comp))

    def retire(self, comp: Component) -> Failure:
        """Taken out of service as it is: too worn to make good parts (found by quality)."""
        self.broken.add(comp)
        return Failure(comp, self.mode(comp))

    def restore(self, components: tuple[Component, ...] | list[Component]) -> None:
        """Repair or maintenance: as new, with a new life drawn."""
        for comp in components:
            i = COMPONENTS.index(comp)
            self._lives[i] = self._draw(comp)
            self.damage[i] = 0.0
            self.value[comp] = 1.0
            self.broken.discard(comp)

    def worn(self, comp: Component) -> float:
        """1 - health: 0 for a new component, 1 for one worn out."""
        return 1.0 - self.value[comp]


def _damage_for(life: _Life, worn: float) -> float:
    """The damage at which `life` (a wear-out) is `worn`; by bisection, the curve rises."""
    lo, hi = 0.0, life.length * 0.999
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        if life.worn(mid) < worn:
            lo = mid
        else:
            hi = mid
    return lo
