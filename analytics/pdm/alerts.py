"""The alert state machine: from a prediction and what happened to the component, what to do.

Pure: the scorer gives it the machine and component's active alert (open or acknowledged, as
the database holds it), the newest prediction, and the component's failures and services
from the machine's states; it answers with one decision, which the scorer applies in its
pass's transaction (the database, not this module, makes it exactly once).

    no alert ──alarm──▶ open ──ack (moldlab pdm ack)──▶ acknowledged
                          │                                  │
                          └──────────────┬───────────────────┘
                 failed:   the component broke down (a fault with its breakdown reason)
                 serviced: a planned maintenance started
                 cleared:  the alarm has stayed off for `clear_after_h` (default 6 h)
                          ▼
                        closed

One alert per episode: while an alert is active the alarm only moves its `last_alarm_at`.
An alarm flickering off and on within `clear_after_h` stays the same alert. No alert opens
while the component is being repaired or the machine maintained (that stop's state is in
force), nor from a prediction made before the component's last service ended. A machine
that is not scored (stopped, no recent cycles) keeps its alert: clearing needs the alarm
seen off, not merely not seen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from analytics.pdm.store_reader import BREAKDOWN_REASONS, PLANNED_MAINTENANCE

__all__ = [
    "CLEAR_AFTER_H",
    "ActiveAlert",
    "Close",
    "Decision",
    "Open",
    "Seen",
    "Stop",
    "decide",
    "stops",
]

CLEAR_AFTER_H = 6.0

StopKind = Literal["failed", "serviced"]


@dataclass(frozen=True, slots=True)
class ActiveAlert:
    """An alert that is open or acknowledged, as the scorer read it."""

    id: int
    opened_us: int
    last_alarm_us: int


@dataclass(frozen=True, slots=True)
class Stop:
    """A repair (failed) or planned maintenance (serviced) of the component: start, end."""

    kind: StopKind
    start_us: int
    end_us: int | None  # None: still under way


@dataclass(frozen=True, slots=True)
class Open:
    """Open an alert from the prediction."""


@dataclass(frozen=True, slots=True)
class Seen:
    """The alarm is still on: move the alert's last alarm to the prediction's time."""

    alert_id: int


@dataclass(frozen=True, slots=True)
class Close:
    alert_id: int
    at_us: int
    reason: Literal["failed", "serviced", "cleared"]


Decision = Open | Seen | Close | None


@dataclass(frozen=True, slots=True)
class Alarm:
    """What the scorer takes from a prediction: its time and whether the model warns."""

    ts_us: int
    alarm: bool


def stops(
    component: str,
    states: Mapping[str, np.ndarray],
    reasons: Mapping[str, str] = BREAKDOWN_REASONS,
) -> list[Stop]:
    """The component's repairs and the machine's planned maintenances in `states`, by time."""
    ts: list[int] = states["ts"].tolist()
    state: list[str] = states["state"].tolist()
    reason: list[str | None] = states["reason"].tolist()
    breakdown = reasons.get(component)
    out: list[Stop] = []
    for i, start in enumerate(ts):
        end = ts[i + 1] if i + 1 < len(ts) else None
        if state[i] == "fault" and breakdown is not None and reason[i] == breakdown:
            out.append(Stop("failed", start, end))
        elif state[i] == "planned_stop" and reason[i] == PLANNED_MAINTENANCE:
            out.append(Stop("serviced", start, end))
    return out


def decide(
    alert: ActiveAlert | None,
    prediction: Alarm | None,
    component_stops: Sequence[Stop],
    clear_after_h: float = CLEAR_AFTER_H,
) -> Decision:
    """What to do with one machine and component now (see the module's diagram)."""
    if alert is not None:
        for stop in component_stops:
            if stop.start_us >= alert.opened_us:
                return Close(alert.id, stop.start_us, stop.kind)
        if prediction is None or prediction.ts_us < alert.opened_us:
            return None
        if prediction.alarm:
            return Seen(alert.id)
        if prediction.ts_us - alert.last_alarm_us >= clear_after_h * 3600e6:
            return Close(alert.id, prediction.ts_us, "cleared")
        return None
    if prediction is None or not prediction.alarm:
        return None
    for stop in component_stops:
        if stop.end_us is None or stop.end_us > prediction.ts_us:
            return None  # being repaired or maintained: the alarm tells nothing new
    return Open()
