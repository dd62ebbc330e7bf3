"""Components that wear, how they degrade, and the true health the simulator records.

Health is 1.0 for a new component and falls, from a degradation's onset, by its rate per
running hour; when it reaches the degradation's threshold the component breaks down and the
machine goes into fault with the component's standstill reason. Repair (after a breakdown)
and maintenance (planned) restore health to 1.0 and start the degradation again.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Component(StrEnum):
    HEATER_ZONE2 = "heater_zone2"
    HEATER_ZONE3 = "heater_zone3"
    HEATER_ZONE4 = "heater_zone4"
    HEATER_NOZZLE = "heater_nozzle"
    CHECK_RING = "check_ring"
    SCREW_BARREL = "screw_barrel"
    HYDRAULIC_PUMP = "hydraulic_pump"
    COOLING_CHANNELS = "cooling_channels"
    EJECTOR = "ejector"


HEATERS = (
    Component.HEATER_ZONE2,
    Component.HEATER_ZONE3,
    Component.HEATER_ZONE4,
    Component.HEATER_NOZZLE,
)

# The standstill reason of each component's breakdown, and its median repair time in hours.
BREAKDOWN: dict[Component, tuple[str, float]] = {
    Component.HEATER_ZONE2: ("heater_burnout", 1.5),
    Component.HEATER_ZONE3: ("heater_burnout", 1.5),
    Component.HEATER_ZONE4: ("heater_burnout", 1.5),
    Component.HEATER_NOZZLE: ("heater_burnout", 1.0),
    Component.CHECK_RING: ("check_ring_failure", 6.0),
    Component.SCREW_BARREL: ("screw_barrel_wear", 12.0),
    Component.HYDRAULIC_PUMP: ("hydraulic_pump_failure", 5.0),
    Component.COOLING_CHANNELS: ("cooling_blocked", 3.0),
    Component.EJECTOR: ("ejector_failure", 2.5),
}


@dataclass(frozen=True, slots=True)
class Degradation:
    """One component wearing: from `onset_h` running hours, `rate_per_h` health per hour."""

    component: Component
    onset_h: float
    rate_per_h: float
    threshold: float = 0.15  # health at which it breaks down
    initial_health: float = 1.0  # a component already worn when the simulation starts

    @property
    def hours_to_failure(self) -> float:
        """Running hours from a new component to its breakdown."""
        return self.onset_h + (1.0 - self.threshold) / self.rate_per_h


@dataclass(frozen=True, slots=True)
class Maintenance:
    """Planned maintenance `at_h` hours after the start: restores `components`."""

    at_h: float
    components: tuple[Component, ...]
    duration_h: float = 2.0


class Health:
    """The true health of every component of one machine as it runs."""

    def __init__(self, degradations: tuple[Degradation, ...]) -> None:
        self.value: dict[Component, float] = dict.fromkeys(Component, 1.0)
        self._modes = {d.component: d for d in degradations}
        # running hours left before each degradation starts; health loss per running hour
        self._until_onset: dict[Component, float] = {}
        for d in degradations:
            self.value[d.component] = d.initial_health
            self._until_onset[d.component] = 0.0 if d.initial_health < 1.0 else d.onset_h

    def wear(self, running_h: float) -> list[Component]:
        """Age the components by `running_h` hours of running; those that just broke down."""
        broken: list[Component] = []
        for comp, mode in self._modes.items():
            left = self._until_onset[comp]
            if left > 0.0:
                self._until_onset[comp] = left - running_h
                if self._until_onset[comp] > 0.0:
                    continue
                hours = -self._until_onset[comp]
            else:
                hours = running_h
            before = self.value[comp]
            if before <= mode.threshold:
                continue  # already broken, waiting for repair
            after = before - mode.rate_per_h * hours
            if after <= mode.threshold:
                # A burnt-out heater band gives nothing; other parts stay worn as they are.
                after = 0.0 if comp in HEATERS else mode.threshold
                broken.append(comp)
            self.value[comp] = after
        return broken

    def fail(self, comp: Component) -> None:
        """Broken now (a heater band found dead by the temperature monitoring)."""
        self.value[comp] = 0.0

    def restore(self, components: tuple[Component, ...] | list[Component]) -> None:
        """Repair or maintenance: as new, and wearing again from the onset."""
        for comp in components:
            self.value[comp] = 1.0
            if comp in self._modes:
                self._until_onset[comp] = self._modes[comp].onset_h

    def worn(self, comp: Component) -> float:
        """1 - health: 0 for a new component, 1 for one worn out."""
        return 1.0 - self.value[comp]
