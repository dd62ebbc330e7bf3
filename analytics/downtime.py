"""Downtime by reason: the Pareto, MTBF and MTTR, from the times and counts of `Figures`.

A stop is one state episode (setup, unplanned stop, fault, idle) inside planned busy time;
it is counted once, in the slice where its planned busy time began, and its duration is its
time inside planned busy time (a stop across a break or the end of a shift counts only its
planned time). MTBF = actual production time / stops, MTTR = stop time / stops, per reason
and for all faults (breakdowns: state `fault`).
"""

from __future__ import annotations

from dataclasses import dataclass

from analytics.oee import Figures, MicroStops, ratios

FAULT_PREFIX = "fault/"


@dataclass(frozen=True, slots=True)
class DowntimeReason:
    """One reason ("state/reason") of the Pareto."""

    reason: str
    stops: int
    downtime_s: float
    share: float  # of all downtime
    cumulative_share: float  # this and the reasons before it
    mtbf_s: float | None  # APT / stops
    mttr_s: float | None  # downtime / stops
    micro_stops: bool  # whether its time is micro-stops only


def pareto(f: Figures, convention: MicroStops = MicroStops.ISO) -> list[DowntimeReason]:
    """Reasons by downtime, longest first (then by name); micro-stops under their reason."""
    apt = ratios(f, convention).production_s
    seconds: dict[str, float] = dict(f.losses_s)
    for key, value in f.micro_s.items():
        seconds[key] = seconds.get(key, 0.0) + value
    all_s = sum(seconds.values())
    out: list[DowntimeReason] = []
    running = 0.0
    for key in sorted(seconds, key=lambda k: (-seconds[k], k)):
        s, n = seconds[key], f.stops.get(key, 0)
        running += s
        out.append(
            DowntimeReason(
                reason=key,
                stops=n,
                downtime_s=s,
                share=s / all_s if all_s > 0 else 0.0,
                cumulative_share=running / all_s if all_s > 0 else 0.0,
                mtbf_s=apt / n if n else None,
                mttr_s=s / n if n else None,
                micro_stops=key not in f.losses_s,
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class Reliability:
    """Breakdowns (state `fault`) of one machine or roll-up."""

    failures: int
    fault_s: float
    mtbf_s: float | None  # APT / failures
    mttr_s: float | None  # fault time / failures


def reliability(f: Figures, convention: MicroStops = MicroStops.ISO) -> Reliability:
    apt = ratios(f, convention).production_s
    n = sum(v for k, v in f.stops.items() if k.startswith(FAULT_PREFIX))
    s = sum(v for k, v in f.losses_s.items() if k.startswith(FAULT_PREFIX))
    return Reliability(n, s, apt / n if n else None, s / n if n else None)
