"""Statistical process control of one cycle parameter: I-MR and EWMA charts, rules, capability.

Pure: plain numbers in, frozen dataclasses out. The definitions, for an engineer:

- Individuals / moving-range (I-MR) chart, limits from a baseline: centre line = the baseline's
  mean; MR-bar = mean of its moving ranges |x_i - x_(i-1)|; sigma (within) = MR-bar / d2 with
  d2 = 1.128 (subgroups of 2); individuals limits = mean +- 3 sigma; MR chart UCL = D4 x MR-bar
  with D4 = 3.267, LCL = 0. Zones C, B, A lie within 1, 2, 3 sigma of the centre line.
- EWMA chart: z_i = lambda x_i + (1 - lambda) z_(i-1), z_0 = the baseline mean; limits
  mean +- L sigma sqrt(lambda / (2 - lambda) (1 - (1 - lambda)^(2i))), the exact
  time-varying factor (i = 1 for the first point), with the baseline's sigma as above.
- Western Electric rules (see `western_electric`): 1 beyond 3 sigma; 2 two of three beyond
  2 sigma on one side; 3 four of five beyond 1 sigma on one side; 4 eight in a row on one side.
- Capability against specification limits LSL < USL: Cp = (USL - LSL) / 6 sigma_within,
  Cpk = min(USL - mean, mean - LSL) / 3 sigma_within, with sigma_within = MR-bar / d2; Pp and
  Ppk the same with sigma_overall, the sample standard deviation (n - 1).

"Beyond" is strict: a point exactly on a limit or zone boundary is inside it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from analytics.errors import SpcError

D2 = 1.128  # E[range] / sigma for subgroups of 2: MR-bar / d2 estimates sigma
D4 = 3.267  # MR chart upper limit factor for subgroups of 2
MIN_POINTS = 2  # one moving range at least
RULES = {
    1: "one point beyond 3 sigma",
    2: "two of three consecutive points beyond 2 sigma on the same side",
    3: "four of five consecutive points beyond 1 sigma on the same side",
    4: "eight consecutive points on the same side of the centre line",
}


@dataclass(frozen=True, slots=True)
class ImrLimits:
    """The I-MR chart's limits, computed from a baseline of `points` values."""

    points: int
    mean: float
    mr_bar: float
    sigma: float  # within: MR-bar / d2

    @property
    def ucl(self) -> float:
        return self.mean + 3 * self.sigma

    @property
    def lcl(self) -> float:
        return self.mean - 3 * self.sigma

    @property
    def mr_ucl(self) -> float:
        return D4 * self.mr_bar

    @property
    def mr_lcl(self) -> float:
        return 0.0


@dataclass(frozen=True, slots=True)
class EwmaPoint:
    """The EWMA statistic at one point and its limits there."""

    z: float
    lcl: float
    ucl: float

    @property
    def beyond(self) -> bool:
        return self.z > self.ucl or self.z < self.lcl


@dataclass(frozen=True, slots=True)
class Capability:
    """Process capability of `points` values against LSL `lower` and USL `upper`."""

    points: int
    mean: float
    sigma_within: float  # MR-bar / d2, for Cp and Cpk
    sigma_overall: float  # sample standard deviation (n - 1), for Pp and Ppk
    lower: float
    upper: float
    cp: float
    cpk: float
    pp: float
    ppk: float
    out_of_spec: int  # values below LSL or above USL

    @property
    def out_of_spec_fraction(self) -> float:
        return self.out_of_spec / self.points


def _enough(values: Sequence[float], what: str) -> None:
    if len(values) < MIN_POINTS:
        raise SpcError(
            f"{what} has {len(values)} point{'' if len(values) == 1 else 's'}; at least "
            f"{MIN_POINTS} are needed (sigma comes from the moving range of consecutive points)"
        )


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def moving_ranges(values: Sequence[float]) -> list[float]:
    """|x_i - x_(i-1)| for i = 1 .. n-1: one fewer than the values."""
    return [abs(b - a) for a, b in itertools.pairwise(values)]


def _mr_bar(values: Sequence[float]) -> float:
    return _mean(moving_ranges(values))


def imr_limits(baseline: Sequence[float]) -> ImrLimits:
    """The I-MR limits of a baseline (oldest first). SpcError: fewer than 2 values, no spread."""
    _enough(baseline, "the baseline")
    mr_bar = _mr_bar(baseline)
    if mr_bar == 0:
        raise SpcError(
            f"the baseline's {len(baseline)} values do not vary (moving range 0): sigma is 0 "
            "and the control limits are undefined; choose a baseline with the process running"
        )
    return ImrLimits(len(baseline), _mean(baseline), mr_bar, mr_bar / D2)


def ewma(
    values: Sequence[float], mean: float, sigma: float, lam: float = 0.2, width: float = 3.0
) -> list[EwmaPoint]:
    """The EWMA of `values` from z_0 = `mean`, with limits mean +- `width` (L) sigma x factor."""
    if not 0 < lam <= 1:
        raise ValueError(f"lambda must be in (0, 1], not {lam}")
    if not width > 0:
        raise ValueError(f"L must be above 0, not {width}")
    if not sigma > 0:
        raise SpcError(f"sigma is {sigma}: the EWMA limits are undefined")
    points: list[EwmaPoint] = []
    z = mean
    ratio = lam / (2 - lam)
    for i, x in enumerate(values, start=1):
        z = lam * x + (1 - lam) * z
        half = width * sigma * math.sqrt(ratio * (1 - (1 - lam) ** (2 * i)))
        points.append(EwmaPoint(z, mean - half, mean + half))
    return points


def western_electric(values: Sequence[float], mean: float, sigma: float) -> list[tuple[int, ...]]:
    """The Western Electric rules each point violates (rule numbers, ascending), per point.

    A point is flagged when it completes the pattern, and so is part of it: rule 1 when it
    lies beyond 3 sigma; rule 2 when it lies beyond 2 sigma and at least one of the two points
    before it lies beyond 2 sigma on the same side; rule 3 when it lies beyond 1 sigma and at
    least three of the four before it lie beyond 1 sigma on its side; rule 4 when it and the
    seven before it lie on the same side of the centre line (a run of 10 flags its 8th, 9th
    and 10th points). The first points need no earlier ones: two of the first two points
    beyond 2 sigma fire rule 2. A point on the centre line is on neither side.
    """
    if not sigma > 0:
        raise SpcError(f"sigma is {sigma}: the zones of the rules are undefined")
    # Each point's distance from the centre line in sigmas, and its side: +1, -1 or 0.
    deviations = [(x - mean) / sigma for x in values]
    side = [(d > 0) - (d < 0) for d in deviations]
    flags: list[tuple[int, ...]] = []
    for i, d in enumerate(deviations):
        rules = []
        s = side[i]
        if abs(d) > 3:
            rules.append(1)
        if abs(d) > 2 and _count(deviations, i, 3, 2, s) >= 2:
            rules.append(2)
        if abs(d) > 1 and _count(deviations, i, 5, 1, s) >= 4:
            rules.append(3)
        if s != 0 and i >= 7 and all(side[k] == s for k in range(i - 7, i + 1)):
            rules.append(4)
        flags.append(tuple(rules))
    return flags


def _count(deviations: Sequence[float], i: int, window: int, beyond: float, side: int) -> int:
    """How many of the `window` points ending at i lie beyond `beyond` sigma on `side`."""
    return sum(1 for d in deviations[max(0, i - window + 1) : i + 1] if d * side > beyond)


def capability(values: Sequence[float], lower: float, upper: float) -> Capability:
    """Cp, Cpk, Pp and Ppk of `values` (in time order) against LSL `lower` and USL `upper`.

    SpcError for fewer than 2 values or values that do not vary (sigma 0); ValueError when
    `lower` is not below `upper`.
    """
    if not lower < upper:
        raise ValueError(f"the lower specification limit {lower} is not below the upper {upper}")
    _enough(values, "the capability period")
    mean = _mean(values)
    within = _mr_bar(values) / D2
    overall = math.sqrt(math.fsum((x - mean) ** 2 for x in values) / (len(values) - 1))
    if within == 0 or overall == 0:
        raise SpcError(
            f"the {len(values)} values do not vary: sigma is 0 and Cp, Cpk, Pp and Ppk are "
            "undefined"
        )
    nearest = min(upper - mean, mean - lower)
    return Capability(
        points=len(values),
        mean=mean,
        sigma_within=within,
        sigma_overall=overall,
        lower=lower,
        upper=upper,
        cp=(upper - lower) / (6 * within),
        cpk=nearest / (3 * within),
        pp=(upper - lower) / (6 * overall),
        ppk=nearest / (3 * overall),
        out_of_spec=sum(1 for x in values if x < lower or x > upper),
    )
