"""The components of a press that wear, their breakdowns, and planned maintenance.

How they wear (lives, P-F curves, sudden failures) is simulators.life's. A component that
breaks down puts the machine into fault with the component's standstill reason; repair (after
a breakdown) and maintenance (planned) make it as new.
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
class Maintenance:
    """Planned maintenance `at_h` hours after the start: restores `components`."""

    at_h: float
    components: tuple[Component, ...]
    duration_h: float = 2.0
