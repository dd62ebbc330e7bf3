"""Path and query parameters in the wire contract's shapes: bad input is a 422, never a query."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from contracts import ID_PATTERN as SEGMENT_PATTERN
from contracts import PLACE_PATTERN
from contracts import SIGNAL_PATTERN as SIGNAL_NAME_PATTERN

_SEGMENT = "1-64 letters, digits, _ . or -, starting with a letter or digit"


def _segment(what: str) -> str:
    return f"{what}, as in the topic: {_SEGMENT}"


# A machine's place, site/area/line/machine, is four path segments: two sites' imm-01 differ.
SitePath = Annotated[str, Path(pattern=SEGMENT_PATTERN, description=_segment("the site"))]
AreaPath = Annotated[str, Path(pattern=SEGMENT_PATTERN, description=_segment("the area"))]
LinePath = Annotated[str, Path(pattern=SEGMENT_PATTERN, description=_segment("the line"))]
MachineIdPath = Annotated[
    str, Path(pattern=SEGMENT_PATTERN, description=_segment("the machine id"))
]
SignalPath = Annotated[
    str,
    Path(
        pattern=SIGNAL_NAME_PATTERN,
        description="the signal name, e.g. TempNozzle: 1-64 letters, digits, _ or .,"
        " starting with a letter",
    ),
]
AfterQuery = Annotated[
    str | None,
    Query(
        pattern=PLACE_PATTERN,
        description="the `next` of the previous page: its last machine's place,"
        f" site/area/line/machine (each {_SEGMENT})",
    ),
]
