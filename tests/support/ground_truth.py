"""OEE per machine and local day from a simulator run's own events, computed from scratch.

The check on analytics: nothing here imports it (nor plant's calendar). Instants are whole
microseconds since 1970 (the events' own resolution, and the database's), so every time below
is exact integer arithmetic; only the final ratios are floats. The definitions are ISO
22400-2's as analytics.oee's docstring states them:

- planned windows: each shift of the plant file's calendar less its breaks, in the site's
  time zone (wall-clock times; on the night the clocks go back an hour that happens twice is
  read the first time, `fold=0`), belonging to the local day the shift starts on;
- PBT: planned windows less the time the machine reported a planned stop and the time it
  reported nothing (or offline); APT: the time it ran inside the planned windows (ISO: short
  stops are availability losses; TPM: idle and unplanned stops shorter than the threshold,
  as a whole, count as production time);
- parts count in the window their cycle ended in; ideal time = the plant file's ideal cycle
  time of the cycle's mould / the active cavities of the cycle's job (its newest job event)
  * parts; quality = good / parts (test samples and scrap are not good).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from contracts import MachineState, PartQuality
from simulators.model import CycleDone, Event, JobChanged, StateEntered

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SHORT_STOPS = (MachineState.IDLE, MachineState.UNPLANNED_STOP)


def us(t: datetime) -> int:
    """An aware instant as whole microseconds since 1970 (exact)."""
    return (t - _EPOCH) // _US


def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def _local(day: date, at: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, at, zone)  # fold=0: the first of an hour that happens twice


@dataclass(frozen=True, slots=True)
class Window:
    """A planned window [start, end) (us) of a shift that started on the local date `day`."""

    start: int
    end: int
    day: date


def planned_windows(site: dict[str, Any], lo: datetime, hi: datetime) -> list[Window]:
    """The plant file's `site` (as YAML gives it) as planned windows clipped to [lo, hi)."""
    zone = ZoneInfo(site["timezone"])
    cal = site["calendar"]
    holidays = {date.fromisoformat(str(d)) for d in cal.get("holidays", [])}
    out: list[Window] = []
    day = lo.astimezone(zone).date() - timedelta(days=1)  # a night shift from the day before
    while day <= hi.astimezone(zone).date():
        for shift in cal["shifts"] if day not in holidays else ():
            if _WEEKDAYS[day.weekday()] not in shift.get("weekdays", _WEEKDAYS):
                continue
            start, end = _clock(shift["start"]), _clock(shift["end"])
            s0 = _local(day, start, zone)
            s1 = _local(day + timedelta(days=end <= start), end, zone)
            cuts = []
            for brk in shift.get("breaks", []):
                b_start, b_end = _clock(brk["start"]), _clock(brk["end"])
                on = day + timedelta(days=b_start < start)  # after midnight: the next day
                b0 = datetime.combine(on, b_start)
                b1 = datetime.combine(on + timedelta(days=b_end < b_start), b_end)
                cuts.append((us(b0.replace(tzinfo=zone)), us(b1.replace(tzinfo=zone))))
            at = us(s0)
            for b0_us, b1_us in sorted(cuts):
                out.append(Window(at, b0_us, day))
                at = b1_us
            out.append(Window(at, us(s1), day))
        day += timedelta(days=1)
    lo_us, hi_us = us(lo), us(hi)
    clipped = (Window(max(w.start, lo_us), min(w.end, hi_us), w.day) for w in out)
    return sorted((w for w in clipped if w.end > w.start), key=lambda w: w.start)


@dataclass(slots=True)
class Truth:
    """The times (us) and counts of one machine over one local day."""

    planned_us: int = 0
    planned_stop_us: int = 0
    unknown_us: int = 0
    running_us: int = 0
    short_stop_us: int = 0  # idle and unplanned stops shorter than the threshold, as a whole
    by_state_us: dict[str, int] = field(default_factory=dict)
    parts: int = 0
    good: int = 0
    test: int = 0
    bad: int = 0
    ideal_us: float = 0.0  # ideal cycle time (s) * 1e6 / cavities * parts: not always whole

    @property
    def pbt_us(self) -> int:
        return self.planned_us - self.planned_stop_us - self.unknown_us

    def ratios(self, tpm: bool = False) -> dict[str, float]:
        """Availability, effectiveness, quality and OEE (ISO convention, or TPM's)."""
        apt = self.running_us + (self.short_stop_us if tpm else 0)
        a = apt / self.pbt_us
        e = self.ideal_us / apt
        q = self.good / self.parts
        return {"availability": a, "effectiveness": e, "quality": q, "oee": a * e * q}


def _overlap(a0: int, a1: int, b0: int, b1: int) -> int:
    return max(0, min(a1, b1) - max(a0, b0))


def per_day(
    events: Sequence[Event],
    end: datetime,
    windows: Sequence[Window],
    ideal_cycle_s: dict[str, float],
    micro_stop_s: float,
) -> dict[date, Truth]:
    """One machine's `events` (its whole run, in order, ending at `end`) as truths per day.

    `ideal_cycle_s`: the plant file's, by mould. Days are those of `windows`.
    """
    out: dict[date, Truth] = defaultdict(Truth)
    for w in windows:
        out[w.day].planned_us += w.end - w.start
    states = [e for e in events if isinstance(e, StateEntered)]
    first = us(states[0].ts) if states else us(end)
    for w in windows:  # before the machine's first word: no data
        out[w.day].unknown_us += _overlap(w.start, w.end, -(2**62), first)
    for i, st in enumerate(states):
        s0 = us(st.ts)
        s1 = us(states[i + 1].ts) if i + 1 < len(states) else us(end)
        short = st.state in _SHORT_STOPS and (s1 - s0) < micro_stop_s * 1_000_000
        for w in windows:
            inside = _overlap(w.start, w.end, s0, s1)
            if not inside:
                continue
            t = out[w.day]
            key = f"{st.state.value}/{st.reason}"
            t.by_state_us[key] = t.by_state_us.get(key, 0) + inside
            if st.state is MachineState.OFFLINE:
                t.unknown_us += inside
            elif st.state is MachineState.PLANNED_STOP:
                t.planned_stop_us += inside
            elif st.state is MachineState.RUNNING:
                t.running_us += inside
            elif short:
                t.short_stop_us += inside
    cavities: dict[str, int] = {}  # the job's active cavities, by JobName, as last announced
    for ev in events:
        if isinstance(ev, JobChanged):
            cavities[ev.job.job_name] = ev.job.active_cavities
        elif isinstance(ev, CycleDone):
            t_us = us(ev.ts)
            within = _window_of(windows, t_us)
            if within is None:
                continue  # ended in a break, outside the shifts or outside the range
            assert ev.job is not None
            t = out[within.day]
            t.parts += ev.parts
            t.good += ev.parts if ev.quality is PartQuality.GOOD else 0
            t.test += ev.parts if ev.quality is PartQuality.TEST else 0
            t.bad += ev.parts if ev.quality is PartQuality.BAD else 0
            t.ideal_us += ideal_cycle_s[ev.mould] * 1e6 / cavities[ev.job] * ev.parts
    return dict(out)


def _window_of(windows: Iterable[Window], t_us: int) -> Window | None:
    return next((w for w in windows if w.start <= t_us < w.end), None)
