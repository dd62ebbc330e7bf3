"""Master data: the plant file (sites, shift calendars, moulds, machines) and shift arithmetic.

Pure: no database, no network. The simulators take their calendar from here, the store keeps
each version of the plant file, analytics computes OEE per shift with it.

Exceptions::

    PlantFileError (ValueError)   a plant file that is not valid; each line `file:line: field: what`
"""

from plant.calendar import Break, PlannedStop, Shift, ShiftCalendar, ShiftInstance
from plant.plantfile import (
    Machine,
    Mould,
    Plant,
    PlantFileError,
    Site,
    SpecLimits,
    TimeZoneName,
    load_plant,
    parse_plant,
)

__all__ = [
    "Break",
    "Machine",
    "Mould",
    "PlannedStop",
    "Plant",
    "PlantFileError",
    "Shift",
    "ShiftCalendar",
    "ShiftInstance",
    "Site",
    "SpecLimits",
    "TimeZoneName",
    "load_plant",
    "parse_plant",
]
