"""SPC's arithmetic on plain values, each case worked by hand in its comment."""

from __future__ import annotations

import math

import pytest

from analytics import SpcError
from analytics.spc import (
    D2,
    D4,
    capability,
    ewma,
    imr_limits,
    moving_ranges,
    western_electric,
)


def exactly(value: float) -> object:
    return pytest.approx(value, abs=1e-9, rel=0)


def test_imr_limits_of_a_small_baseline() -> None:
    # 10, 12, 11, 13, 12: mean = 58 / 5 = 11.6; moving ranges 2, 1, 2, 1, MR-bar = 6 / 4 = 1.5;
    # sigma = 1.5 / 1.128 = 1.329787234...; UCL = 11.6 + 3 x 1.329787234 = 15.589361702...,
    # LCL = 11.6 - 3.989361702 = 7.610638297...; MR UCL = 3.267 x 1.5 = 4.9005, MR LCL = 0.
    limits = imr_limits([10.0, 12.0, 11.0, 13.0, 12.0])
    assert moving_ranges([10.0, 12.0, 11.0, 13.0, 12.0]) == [2.0, 1.0, 2.0, 1.0]
    assert (D2, D4) == (1.128, 3.267)
    assert limits.points == 5
    assert limits.mean == exactly(11.6)
    assert limits.mr_bar == exactly(1.5)
    assert limits.sigma == exactly(1.5 / 1.128)
    assert limits.sigma == exactly(1.3297872340425532)
    assert limits.ucl == exactly(15.589361702127659)
    assert limits.lcl == exactly(7.610638297872341)
    assert limits.mr_ucl == exactly(4.9005)
    assert limits.mr_lcl == 0.0


def test_ewma_values_and_exact_limits_of_the_first_three_points() -> None:
    # mean 10, sigma 1, lambda 0.2, L 3; lambda / (2 - lambda) = 0.2 / 1.8 = 1/9.
    # i=1: z = 0.2 x 12 + 0.8 x 10 = 10.4;  factor 1/9 x (1 - 0.8^2 = 0.36) = 0.04,
    #      sqrt = 0.2, half width 3 x 0.2 = 0.6: limits 9.4 .. 10.6 (z beyond: 10.4 is not).
    # i=2: z = 0.2 x 8 + 0.8 x 10.4 = 1.6 + 8.32 = 9.92; 1 - 0.8^4 = 0.5904, / 9 = 0.0656,
    #      half width 3 x sqrt(0.0656) = 0.768374908...: 9.231625091 .. 10.768374908.
    # i=3: z = 0.2 x 11 + 0.8 x 9.92 = 2.2 + 7.936 = 10.136; 1 - 0.8^6 = 0.737856, / 9 =
    #      0.081984, half width 3 x sqrt(0.081984) = 0.858986...: 9.141014 .. 10.858986.
    points = ewma([12.0, 8.0, 11.0], mean=10.0, sigma=1.0, lam=0.2, width=3.0)
    assert [p.z for p in points] == [exactly(10.4), exactly(9.92), exactly(10.136)]
    assert [p.lcl for p in points] == [
        exactly(9.4),
        exactly(10 - 3 * math.sqrt(0.0656)),
        exactly(10 - 3 * math.sqrt(0.081984)),
    ]
    assert [p.ucl for p in points] == [
        exactly(10.6),
        exactly(10.768374908491942),
        exactly(10 + 3 * math.sqrt(0.081984)),
    ]
    assert [p.beyond for p in points] == [False, False, False]


def test_ewma_flags_a_shift_beyond_its_limits() -> None:
    # mean 0, sigma 1, lambda 0.5, L 3; lambda / (2 - lambda) = 1/3.
    # i=1: z = 0.5 x 4 = 2.0; half width 3 x sqrt(1/3 x (1 - 0.25)) = 3 x 0.5 = 1.5: beyond.
    # i=2: z = 0.5 x -4 + 0.5 x 2 = -1.0; half width 3 x sqrt(1/3 x 0.9375) = 1.677...: inside.
    points = ewma([4.0, -4.0], mean=0.0, sigma=1.0, lam=0.5, width=3.0)
    assert [p.z for p in points] == [exactly(2.0), exactly(-1.0)]
    assert points[0].ucl == exactly(1.5)
    assert points[1].ucl == exactly(3 * math.sqrt(0.9375 / 3))
    assert [p.beyond for p in points] == [True, False]


def _flagged(values: list[float]) -> dict[int, tuple[int, ...]]:
    """The points (by index) that violate a rule, centre 0 and sigma 1; the others have none."""
    return {i: rules for i, rules in enumerate(western_electric(values, 0.0, 1.0)) if rules}


def test_rule_1_one_point_beyond_3_sigma() -> None:
    # 3.5 and -3.2 lie beyond 3 sigma; 3.0 lies on the limit, which is not beyond it. No two
    # of three beyond 2 sigma on one side: 3.5 and 3.0 have -3.2 between them on the other.
    assert _flagged([0.5, -0.5, 3.5, 0.5, -3.2, 3.0]) == {2: (1,), 4: (1,)}


def test_rule_2_two_of_three_beyond_2_sigma_on_one_side() -> None:
    # 2.5 (0) and 2.2 (2) are two of the three points 0..2: the 2.2 completes it. -2.1 (4)
    # has 2.2 on the other side before it; -2.5 (6) completes -2.1, 1.0, -2.5. 2.5 (7) has
    # only -2.1 .. 2.5 before it, one on its side. Nothing lies beyond 3 sigma.
    assert _flagged([2.5, 0.0, 2.2, 0.0, -2.1, 1.0, -2.5, 2.5]) == {2: (2,), 6: (2,)}


def test_rule_2_needs_the_pair_within_three_points() -> None:
    # 2.5 and 2.4 are four points apart: never two of three.
    assert _flagged([2.5, 0.0, 0.0, 2.4]) == {}


def test_rule_3_four_of_five_beyond_1_sigma_on_one_side() -> None:
    # 1.5, 1.2, 0.5, 1.1, 1.3: four of the five beyond 1 sigma, completed by 1.3 (index 4);
    # at index 3 only three are. The points after stay within 1 sigma.
    assert _flagged([1.5, 1.2, 0.5, 1.1, 1.3, -0.5, 0.2, 0.3, -0.4]) == {4: (3,)}


def test_rule_4_eight_on_one_side() -> None:
    # Nine points above the centre line (0..8): the 8th (7) and the 9th (8) complete runs of
    # eight; -0.3 ends the run; 0.4 starts a new one.
    assert _flagged([0.5] * 7 + [0.1, 0.2, -0.3, 0.4]) == {7: (4,), 8: (4,)}


def test_rule_4_a_point_on_the_centre_line_breaks_the_run() -> None:
    # Four above, one on the line, seven above: no eight in a row.
    assert _flagged([0.5] * 4 + [0.0] + [0.5] * 7) == {}


def test_a_point_lists_every_rule_it_violates() -> None:
    # 2.5 then 3.5: the 3.5 is beyond 3 sigma (rule 1) and the second of two beyond 2 sigma.
    assert _flagged([2.5, 3.5]) == {1: (1, 2)}


def test_rules_use_the_given_centre_and_sigma() -> None:
    # Centre 100, sigma 2: 106.5 is 3.25 sigma above (rule 1); 105 is exactly 2.5 sigma.
    assert western_electric([100.0, 106.5, 105.0], 100.0, 2.0) == [(), (1,), (2,)]


def test_capability_of_a_small_set() -> None:
    # 9.8, 10.2, 10.0, 10.4, 9.6 against LSL 9.7, USL 11:
    # mean = 50 / 5 = 10.0; moving ranges 0.4, 0.2, 0.4, 0.8, MR-bar = 1.8 / 4 = 0.45;
    # sigma_within = 0.45 / 1.128 = 0.398936170...; deviations -0.2, 0.2, 0, 0.4, -0.4,
    # squares sum 0.4, / (5 - 1) = 0.1, sigma_overall = sqrt(0.1) = 0.316227766...
    # Cp  = (11 - 9.7) / (6 x 0.45 / 1.128) = 1.3 x 1.128 / 2.7 = 1.4664 / 2.7 = 0.543111...
    # Cpk = min(11 - 10, 10 - 9.7) / (3 x 0.45 / 1.128) = 0.3 x 1.128 / 1.35 = 0.250666...
    # Pp  = 1.3 / (6 sqrt(0.1)) = 0.685160...;  Ppk = 0.3 / (3 sqrt(0.1)) = 0.316227766...
    # 9.6 is below LSL: 1 of 5 out of specification, 0.2.
    result = capability([9.8, 10.2, 10.0, 10.4, 9.6], lower=9.7, upper=11.0)
    assert result.points == 5
    assert result.mean == exactly(10.0)
    assert result.sigma_within == exactly(0.45 / 1.128)
    assert result.sigma_overall == exactly(math.sqrt(0.1))
    assert result.cp == exactly(1.4664 / 2.7)
    assert result.cpk == exactly(0.3384 / 1.35)
    assert result.pp == exactly(1.3 / (6 * math.sqrt(0.1)))
    assert result.ppk == exactly(0.3 / (3 * math.sqrt(0.1)))
    assert result.ppk == exactly(0.31622776601683794)
    assert (result.lower, result.upper) == (9.7, 11.0)
    assert result.out_of_spec == 1
    assert result.out_of_spec_fraction == exactly(0.2)


def test_capability_on_the_upper_side() -> None:
    # 1, 3 against LSL 0, USL 4: mean 2, MR-bar 2, sigma_within 2 / 1.128;
    # sigma_overall = sqrt((1 + 1) / 1) = sqrt(2). Cp = 4 / (6 x 2 / 1.128) = 0.376;
    # Cpk = min(2, 2) / (3 x 2 / 1.128) = 0.376; Pp = 4 / (6 sqrt 2); nothing out of spec.
    # Against USL 2.5: Cpk = min(0.5, 2) / (6 / 1.128) = 0.094; 3 is out of spec.
    result = capability([1.0, 3.0], lower=0.0, upper=4.0)
    assert (result.cp, result.cpk) == (exactly(0.376), exactly(0.376))
    assert result.pp == exactly(4 / (6 * math.sqrt(2)))
    assert result.out_of_spec == 0
    tight = capability([1.0, 3.0], lower=0.0, upper=2.5)
    assert tight.cpk == exactly(0.094)
    assert tight.out_of_spec == 1


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([], "the baseline has 0 points; at least 2 are needed"),
        ([5.0], "the baseline has 1 point; at least 2 are needed"),
        ([7.0, 7.0, 7.0], "do not vary .*sigma is 0 and the control limits are undefined"),
    ],
)
def test_a_baseline_too_small_or_without_spread_is_refused(
    values: list[float], message: str
) -> None:
    with pytest.raises(SpcError, match=message):
        imr_limits(values)


def test_capability_without_enough_points_or_spread_is_refused() -> None:
    with pytest.raises(SpcError, match="the capability period has 1 point; at least 2"):
        capability([5.0], lower=0.0, upper=10.0)
    with pytest.raises(SpcError, match="do not vary: sigma is 0 and Cp, Cpk, Pp and Ppk"):
        capability([5.0, 5.0], lower=0.0, upper=10.0)
    with pytest.raises(ValueError, match=r"lower specification limit 10\.0 is not below"):
        capability([4.0, 5.0], lower=10.0, upper=10.0)


def test_ewma_and_rules_refuse_a_zero_sigma_and_bad_parameters() -> None:
    with pytest.raises(SpcError, match="sigma is 0"):
        ewma([1.0], mean=1.0, sigma=0.0)
    with pytest.raises(SpcError, match="sigma is 0"):
        western_electric([1.0], 1.0, 0.0)
    with pytest.raises(ValueError, match="lambda must be in"):
        ewma([1.0], mean=1.0, sigma=1.0, lam=0.0)
    with pytest.raises(ValueError, match="L must be above 0"):
        ewma([1.0], mean=1.0, sigma=1.0, width=0.0)
