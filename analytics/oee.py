"""OEE and its loss tree for one machine over one slice of time (ISO 22400-2): pure maths.

Everything is time-weighted from state episodes, never counted from samples, and clipped to
the slice and to its planned windows (its shift less the shift's breaks). Times are seconds,
instants are epoch seconds (UTC). The time of a slice falls into exactly one of::

    calendar time
    ├── outside the plan: no shift, holidays, the shift's breaks
    └── shift time less breaks
        ├── planned stops the machine reported (planned maintenance, no order, ...)
        ├── unknown: no data (machine or gateway offline, before its first state)
        └── planned busy time (PBT)
            ├── availability losses: setup, unplanned stops, faults, idle (by reason),
            │   and micro-stops (stops shorter than the threshold) in the ISO convention
            └── actual production time (APT; micro-stops too in the TPM convention)
                ├── speed loss = APT - ideal time
                └── ideal time (ideal cycle time / active cavities * parts made)
                    ├── quality loss: ideal time of scrap (by defect) and test samples
                    └── valuable time = OEE * PBT

Roll-ups add `Figures` (times and counts) and only then take ratios: they never average
ratios. Parts count where their cycle ended inside a planned window, whatever the state.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from contracts import MachineState, PartQuality

# Stops that can be micro-stops: short standstills without a breakdown or a changeover.
MICRO_STOP_STATES = frozenset({MachineState.IDLE, MachineState.UNPLANNED_STOP})
# The time of these states inside planned busy time is an availability loss.
LOSS_STATES = frozenset(
    {MachineState.SETUP, MachineState.UNPLANNED_STOP, MachineState.FAULT, MachineState.IDLE}
)
# ISO 22400's actual unit delay time (ADET), for technical efficiency: disturbances.
DELAY_STATES = frozenset({MachineState.UNPLANNED_STOP, MachineState.FAULT})


class MicroStops(StrEnum):
    """Where stops shorter than the threshold go."""

    ISO = "iso"  # ISO 22400: into availability (they are down time)
    TPM = "tpm"  # the TPM convention (Nakajima): into speed (they count as production time)


@dataclass(frozen=True, slots=True)
class Episode:
    """The machine in one state over [start, end), whole (not clipped); state None: unknown.

    `whole`: when unknown time cut the episode into pieces, the whole episode's [start, end),
    so that each piece is as long as the whole (micro-stops) and the stop is counted once.
    """

    start: float
    end: float
    state: MachineState | None
    reason: str | None = None
    whole: tuple[float, float] | None = None

    @property
    def seconds(self) -> float:
        first, last = self.whole or (self.start, self.end)
        return last - first


@dataclass(frozen=True, slots=True)
class Parts:
    """Cycles of one quality (and defect) that ended in a planned window of the slice."""

    quality: PartQuality
    cycles: int
    parts: int
    ideal_s: float  # sum of ideal cycle time / active cavities * parts (see `unrated`)
    energy_kwh: float = 0.0
    defect: str | None = None
    # Cycles of a mould the plant file does not know: rated at their own cycle time (no speed
    # loss is claimed for them); counted so that a report can say so.
    unrated: int = 0


def _key(state: MachineState, reason: str | None) -> str:
    return f"{state.value}/{reason or 'unspecified'}"


@dataclass(slots=True)
class Figures:
    """Times (s) and counts of one machine, slice or roll-up: everything adds up."""

    calendar_s: float = 0.0
    shift_s: float = 0.0  # shift time, breaks included
    break_s: float = 0.0
    planned_stop_s: dict[str, float] = field(default_factory=dict)  # by reason
    unknown_s: float = 0.0
    production_s: float = 0.0  # running inside planned busy time
    losses_s: dict[str, float] = field(default_factory=dict)  # "state/reason" -> s, not micro
    micro_s: dict[str, float] = field(default_factory=dict)  # micro-stops, "state/reason"
    stops: dict[str, int] = field(default_factory=dict)  # stops begun here, micro ones too
    micro_stops: int = 0
    cycles: int = 0
    parts: int = 0
    good: int = 0
    bad: int = 0
    test: int = 0
    ideal_s: float = 0.0
    scrap: dict[str, int] = field(default_factory=dict)  # bad parts by defect
    energy_kwh: float = 0.0
    unrated_cycles: int = 0

    @property
    def planned_busy_s(self) -> float:
        """Shift time less breaks, reported planned stops and unknown time, to the microsecond
        (its parts are sums of whole microseconds: what is below one is rounding)."""
        pbt = self.shift_s - self.break_s - sum(self.planned_stop_s.values()) - self.unknown_s
        return round(pbt, 6) + 0.0  # + 0.0: never -0.0

    def __iadd__(self, other: Figures) -> Figures:
        for name in _SCALARS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in _MAPS:
            mine = getattr(self, name)
            for key, value in getattr(other, name).items():
                mine[key] = mine.get(key, 0) + value
        return self

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in (*_SCALARS, *_MAPS)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Figures:
        return cls(**{k: v for k, v in data.items() if k in _FIELDS})


_MAPS = ("planned_stop_s", "losses_s", "micro_s", "stops", "scrap")
_SCALARS = tuple(f for f in Figures.__dataclass_fields__ if f not in _MAPS)
_FIELDS = frozenset(Figures.__dataclass_fields__)


def total(figures: Iterable[Figures]) -> Figures:
    """The sum of `figures` (times and counts; ratios are taken afterwards)."""
    out = Figures()
    for f in figures:
        out += f
    return out


def _us(t: float) -> int:
    """Epoch seconds as whole microseconds: exact for any time stored to the microsecond (a
    double holds one to within 0.12 us), so that sums of intervals carry no rounding."""
    return round(t * 1_000_000)


def _within(start: int, end: int, windows: Sequence[tuple[int, int]]) -> int:
    return sum(max(0, min(end, w1) - max(start, w0)) for w0, w1 in windows)


def slice_figures(
    window: tuple[float, float],
    planned: Sequence[tuple[float, float]],
    episodes: Sequence[Episode],
    parts: Sequence[Parts],
    *,
    shift_s: float,
    break_s: float,
    micro_stop_s: float,
    earlier_planned: Sequence[tuple[float, float]] = (),
) -> Figures:
    """The figures of one machine over `window` = [start, end).

    `planned`: the slice's planned windows (its shift less breaks), sorted, inside `window`.
    `episodes`: the machine's states overlapping `window`, sorted, not overlapping; time no
    episode covers is unknown. `earlier_planned`: planned windows before `window` back to the
    first episode's start, so that a stop running on from an earlier slice is counted once,
    in the slice where its planned busy time began. `micro_stop_s`: stops (idle, unplanned)
    shorter than this, as a whole, are micro-stops. Intervals are added in whole
    microseconds and turned into seconds once.
    """
    lo, hi = _us(window[0]), _us(window[1])
    windows = [(_us(a), _us(b)) for a, b in planned]
    before = [(_us(a), _us(b)) for a, b in earlier_planned]
    micro_us = _us(micro_stop_s)
    f = Figures(calendar_s=(hi - lo) / 1e6, shift_s=shift_s, break_s=break_s)
    covered = unknown = production = 0
    planned_stop: Counter[str] = Counter()
    losses: Counter[str] = Counter()
    micro_stops: Counter[str] = Counter()
    stops: Counter[str] = Counter()
    counted: set[tuple[str, int]] = set()  # (key, start of the whole episode)
    for ep in episodes:
        start, end = _us(ep.start), _us(ep.end)
        inside = _within(start, end, windows)
        covered += inside
        if inside <= 0:
            continue
        if ep.state is None or ep.state is MachineState.OFFLINE:
            unknown += inside
        elif ep.state is MachineState.PLANNED_STOP:
            planned_stop[ep.reason or "unspecified"] += inside
        elif ep.state is MachineState.RUNNING:
            production += inside
        elif ep.state in LOSS_STATES:
            key = _key(ep.state, ep.reason)
            first, last = (_us(t) for t in ep.whole) if ep.whole else (start, end)
            micro = ep.state in MICRO_STOP_STATES and last - first < micro_us
            (micro_stops if micro else losses)[key] += inside
            # Its planned busy time began here (of a stop cut by unknown time, in its first piece).
            if (key, first) not in counted and not _within(first, lo, before):
                counted.add((key, first))
                stops[key] += 1
                f.micro_stops += micro
    unknown += _within(lo, hi, windows) - covered  # planned time no episode covers: no data
    f.unknown_s = unknown / 1e6
    f.production_s = production / 1e6
    f.planned_stop_s = {k: v / 1e6 for k, v in planned_stop.items()}
    f.losses_s = {k: v / 1e6 for k, v in losses.items()}
    f.micro_s = {k: v / 1e6 for k, v in micro_stops.items()}
    f.stops = dict(stops)
    for p in parts:
        f.cycles += p.cycles
        f.parts += p.parts
        f.ideal_s += p.ideal_s
        f.energy_kwh += p.energy_kwh
        f.unrated_cycles += p.unrated
        if p.quality is PartQuality.GOOD:
            f.good += p.parts
        elif p.quality is PartQuality.TEST:
            f.test += p.parts
        else:
            f.bad += p.parts
            defect = p.defect or "unspecified"
            f.scrap[defect] = f.scrap.get(defect, 0) + p.parts
    return f


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


@dataclass(frozen=True, slots=True)
class Ratios:
    """ISO 22400-2 ratios of a `Figures`; None where the denominator is zero."""

    convention: MicroStops
    planned_busy_s: float
    production_s: float  # APT, by the convention
    availability: float | None  # APT / PBT
    effectiveness: float | None  # ideal time / APT
    quality: float | None  # good / parts made
    oee: float | None  # availability * effectiveness * quality
    nee: float | None  # OEE with setup time out of PBT: APT / (PBT - setup) * E * Q
    technical_efficiency: float | None  # APT / (APT + faults + unplanned stops)
    setup_ratio: float | None  # setup time / APT
    scrap_ratio: float | None  # bad / parts made
    teep: float | None  # OEE * PBT / calendar time
    speed_loss_s: float  # APT - ideal time
    kwh_per_good_part: float | None


def _state_s(
    f: Figures, states: frozenset[MachineState], maps: Sequence[dict[str, float]]
) -> float:
    prefixes = tuple(f"{s.value}/" for s in states)
    return sum(v for m in maps for k, v in m.items() if k.startswith(prefixes))


def ratios(f: Figures, convention: MicroStops = MicroStops.ISO) -> Ratios:
    """The ratios of `f`; micro-stops count by `convention`."""
    pbt = f.planned_busy_s
    micro = sum(f.micro_s.values())
    apt = f.production_s + (micro if convention is MicroStops.TPM else 0.0)
    setup = _state_s(f, frozenset({MachineState.SETUP}), (f.losses_s,))
    delay_maps = (f.losses_s, f.micro_s) if convention is MicroStops.ISO else (f.losses_s,)
    delay = _state_s(f, DELAY_STATES, delay_maps)
    a = _ratio(apt, pbt)
    e = _ratio(f.ideal_s, apt)
    q = _ratio(f.good, f.parts)
    oee = a * e * q if a is not None and e is not None and q is not None else None
    a_net = _ratio(apt, pbt - setup)
    return Ratios(
        convention=convention,
        planned_busy_s=pbt,
        production_s=apt,
        availability=a,
        effectiveness=e,
        quality=q,
        oee=oee,
        nee=a_net * e * q if a_net is not None and e is not None and q is not None else None,
        technical_efficiency=_ratio(apt, apt + delay),
        setup_ratio=_ratio(setup, apt),
        scrap_ratio=_ratio(f.bad, f.parts),
        teep=oee * pbt / f.calendar_s if oee is not None and f.calendar_s > 0 else None,
        speed_loss_s=apt - f.ideal_s,
        kwh_per_good_part=_ratio(f.energy_kwh, f.good),
    )
