"""Path and query parameters in the wire contract's shapes: bad input is a 422, never a query."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from contracts import ID_PATTERN as MACHINE_ID_PATTERN
from contracts import SIGNAL_PATTERN as SIGNAL_NAME_PATTERN

_MACHINE_ID = "1-64 letters, digits, _ . or -, starting with a letter or digit"

MachineIdPath = Annotated[
    str, Path(pattern=MACHINE_ID_PATTERN, description=f"the machine id: {_MACHINE_ID}")
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
        pattern=MACHINE_ID_PATTERN,
        description=f"the `next` of the previous page: its last machine id ({_MACHINE_ID})",
    ),
]
