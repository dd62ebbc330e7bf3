"""The alarm rule and event-level metrics on hand-made alarm and failure sequences."""

from __future__ import annotations

import pickle
from dataclasses import replace

import numpy as np
import pytest

from analytics.pdm.evaluate import (
    AlarmRule,
    Track,
    alarm_active,
    episodes,
    event_metrics,
    raised_at,
)
from analytics.pdm.history import Failure

H = 3_600_000_000


def test_hysteresis_gives_one_alarm_per_episode() -> None:
    rule = AlarmRule(on=0.5, off=0.2)
    scores = np.array([0.1, 0.6, 0.4, 0.3, 0.1, 0.45, 0.55, np.nan, 0.25, -np.inf, 0.9])
    active = alarm_active(scores, rule)
    # raised at 0.6, held while >= 0.2, cleared at 0.1; 0.45 is below `on`; raised at 0.55,
    # held over NaN and 0.25, cleared by -inf (the component broke); raised again at 0.9
    assert active.tolist() == [
        False, True, True, True, False, False, True, True, True, False, True,
    ]  # fmt: skip
    times = np.arange(len(scores)) * H
    assert raised_at(times, active).tolist() == [1 * H, 6 * H, 10 * H]


def test_a_rule_asking_for_scores_in_a_row_lets_a_single_high_score_pass() -> None:
    rule = AlarmRule(on=0.5, off=0.2, confirm=2)
    scores = np.array([0.1, 0.6, 0.1, 0.6, np.nan, 0.6, 0.7, 0.3, 0.1, 0.9, 0.9, 0.9])
    # a pause before index 10 starts a new row: 0.9 at 9 and 10 are not in a row
    before = np.zeros(len(scores), bool)
    before[10] = True
    active = alarm_active(scores, rule, before)
    # one 0.6 is not enough; NaN breaks a row; 0.6, 0.7 raise it (at the second), 0.3 holds
    # it, 0.1 clears it; after the pause 0.9, 0.9 raise it again at the second
    assert active.tolist() == [
        False, False, False, False, False, False, True, True, False, False, False, True,
    ]  # fmt: skip
    assert alarm_active(scores, AlarmRule(on=0.5, off=0.2), before)[[1, 3, 9]].all()
    assert AlarmRule(on=0.5, off=0.2).confirm == 1  # a rule raises on one score by default


def test_a_rule_saved_before_scores_in_a_row_existed_raises_on_one() -> None:
    old = AlarmRule.__new__(AlarmRule)
    old.__setstate__([0.5, 0.2, "p_near"])  # the state pickled by earlier versions
    assert old == AlarmRule(on=0.5, off=0.2, score="p_near", confirm=1)
    again = pickle.loads(pickle.dumps(AlarmRule(on=0.5, off=0.2, score="p_near", confirm=3)))
    assert again.confirm == 3


def _fail(at_h: float, mode: str = "wear", repaired_h: float | None = None) -> Failure:
    rep = None if repaired_h is None else int(repaired_h * H)
    return Failure(int(at_h * H), "check_ring", "check_ring_failure", mode, rep)


def test_event_metrics_by_hand() -> None:
    # Machine A over two weeks (336 h), failures at 100 h (wear, repaired 104 h),
    # 200 h (wear, repaired 205 h), 300 h (sudden, repaired 302 h), 10 h (in the warm-up).
    # Alarms raised at 5 h, 70 h, 90 h, 150 h, 195 h, 299 h, 330 h.
    track_a = Track(
        "A",
        np.array([5, 70, 90, 150, 195, 299, 330]) * H,
        (
            _fail(10, repaired_h=11),
            _fail(100, repaired_h=104),
            _fail(200, repaired_h=205),
            _fail(300, "sudden", 302),
        ),
        0,
        336 * H,
    )
    # Machine B over one week (168 h): one wear failure at 60 h, no alarm before it; an alarm
    # at 120 h that nothing follows.
    track_b = Track("B", np.array([120]) * H, (_fail(60, repaired_h=62),), 0, 168 * H)
    m = event_metrics([track_a, track_b], horizon_h=24, warmup_h=24)
    # Wear failures counted: A@100, A@200, B@60 (A@10 is in the warm-up) -> 3.
    assert (m.wear_failures, m.warmup_failures) == (3, 1)
    # A@100: alarms within [76, 100): 90 -> lead 10 h (70 is more than 24 h before).
    # A@200: alarms within [176, 200): 195 -> lead 5 h. B@60: none.
    # >= 2 h: 2 of 3; >= 8 h: 1 of 3. Leads 10, 5: median 7.5, quartiles 6.25 and 8.75.
    assert (m.warned_2h, m.warned_8h) == (2, 1)
    assert m.recall_2h == pytest.approx(2 / 3)
    assert m.recall_8h == pytest.approx(1 / 3)
    assert (m.lead_median_h, m.lead_q1_h, m.lead_q3_h) == pytest.approx((7.5, 6.25, 8.75))
    # Sudden A@300: alarm at 299 -> 1 h ahead: not warned >= 2 h.
    assert (m.sudden_failures, m.sudden_warned_2h) == (1, 0)
    # Alarms of A: 5 (A@10 follows within 24 h: true), 70 (nothing by 94 h: false),
    # 90 (true), 150 (false), 195 (true), 299 (true: the sudden one), 330 (its 24 h run past
    # the end at 336 h with no failure: not counted). B: 120 (false; 144 <= 168 so counted).
    assert (m.alarms, m.false_alarms) == (7, 3)
    # 3 weeks of machines: 1 false alarm per machine-week
    assert m.machine_weeks == pytest.approx(3.0)
    assert m.false_alarms_per_machine_week == pytest.approx(1.0)


def test_an_alarm_before_the_last_repair_does_not_warn_the_next_failure() -> None:
    # Failure at 30 h repaired at 40 h; the next at 50 h. An alarm at 29 h warned the first
    # (1 h: not >= 2 h); it must not count as a 21 h warning of the second.
    track = Track(
        "A", np.array([29]) * H, (_fail(30, repaired_h=40), _fail(50, repaired_h=52)), 0, 200 * H
    )
    m = event_metrics([track], warmup_h=0)
    assert m.wear_failures == 2
    assert m.warned_2h == 0
    assert m.false_alarms == 0


def test_a_long_pause_or_a_failure_clears_the_alarm() -> None:
    from analytics.pdm.evaluate import clears

    # Scores every 30 min on Friday, then Monday (a 58 h pause), with a failure in between
    # the 2nd and 3rd Monday scores.
    times = np.array([0, 0.5, 1.0, 59.0, 59.5, 60.0, 60.5]) * H
    failure = np.array([int(59.7 * H)])
    before = clears(times.astype(np.int64), failure)
    assert before.tolist() == [False, False, False, True, False, True, False]
    rule = AlarmRule(on=0.5, off=0.2)
    scores = np.array([0.1, 0.6, 0.4, 0.4, 0.6, 0.4, 0.6])
    active = alarm_active(scores, rule, before)
    # Friday's alarm does not carry over the weekend: Monday's 0.4 is below `on`; raised
    # again at 0.6, cleared by the failure (0.4 after it is below `on`), raised at 0.6.
    assert active.tolist() == [False, True, True, False, True, False, True]
    assert raised_at(times, active).tolist() == [0.5 * H, 59.5 * H, 60.5 * H]


def test_an_alarm_raised_for_longer_than_the_horizon_is_raised_anew() -> None:
    # Scores every hour for 60 h, the alarm up from 5 h to 55 h: raised at 5 h, renewed at
    # 29 h and 53 h. A failure at 56 h: the alarms of 5 h and 29 h were false (nothing failed
    # within 24 h of them), the one renewed at 53 h warned it 3 h ahead.
    times = np.arange(61) * H
    active = (times >= 5 * H) & (times <= 55 * H)
    raised = raised_at(times, active)
    assert raised.tolist() == [5 * H, 29 * H, 53 * H]
    assert raised_at(times, active, renew_h=None).tolist() == [5 * H]
    m = event_metrics([Track("A", raised, (_fail(56, repaired_h=58),), 0, 100 * H)], warmup_h=0)
    assert (m.warned_2h, m.false_alarms, m.lead_median_h) == (1, 2, 3.0)


def _track_of(times_h: np.ndarray, active: np.ndarray, failures: tuple[Failure, ...]) -> Track:
    times = (np.asarray(times_h) * H).astype(np.int64)
    return Track("A", raised_at(times, active), failures, 0, 200 * H, episodes(times, active))


def test_an_alarm_still_up_when_the_component_fails_warned_it() -> None:
    # Scores every 30 min until 103 h, then the press stands (2 h before the failure at
    # 105 h). The alarm went up at 79.5 h, 25.5 h before the failure, and stayed up: its
    # claim "within 24 h" was false when it was raised (nothing failed by 103.5 h), but the
    # engineer had it on screen when the press failed. No renewal fell inside the 24 h before
    # the failure (the next would have been at 103.5 h): counted by the raises alone, it
    # would be a miss.
    times_h = np.arange(0, 103.01, 0.5)
    active = times_h >= 79.5
    failure = (_fail(105, repaired_h=107),)
    track = _track_of(times_h, active, failure)
    assert track.up_us is not None
    assert track.up_us.tolist() == [[int(79.5 * H), int(107 * H)]]  # last raised + GAP_H
    m = event_metrics([track], warmup_h=0)
    assert (m.warned_2h, m.warned_8h, m.lead_median_h) == (1, 1, 24.0)  # at most the horizon
    assert m.false_alarms == 1
    without = event_metrics([replace(track, up_us=None)], warmup_h=0)
    assert (without.warned_2h, without.false_alarms) == (0, 1)


def test_an_alarm_that_cleared_or_a_long_stand_still_before_the_failure_does_not_warn() -> None:
    times_h = np.arange(0, 103.01, 0.5)
    failure = (_fail(105, repaired_h=107),)
    # Up from 70 h to 75 h, then cleared: 35 h before the failure, no warning.
    cleared = _track_of(times_h, (times_h >= 70) & (times_h < 75), failure)
    assert event_metrics([cleared], warmup_h=0).warned_2h == 0
    # Up until the press stopped at 90 h, 15 h before the failure: after GAP_H (4 h) of
    # standing still the alarm is judged afresh, so it was not up at 105 h.
    stopped = times_h <= 90
    track = _track_of(times_h[stopped], times_h[stopped] >= 79.5, failure)
    assert event_metrics([track], warmup_h=0).warned_2h == 0
    # Raised before the previous repair (the failure at 80 h cleared it): it does not warn
    # the next failure either, whatever the episodes say.
    two = (_fail(80, repaired_h=82), _fail(105, repaired_h=107))
    early = Track("A", np.array([60 * H]), two, 0, 200 * H, np.array([[60 * H, 106 * H]], np.int64))
    m = event_metrics([early], warmup_h=0)
    assert (m.warned_2h, m.lead_median_h) == (1, 20.0)  # the failure at 80 h only


def test_the_running_clock_leaves_long_standstills_out() -> None:
    from analytics.pdm.evaluate import running_clock

    # Every 30 min to 20 h, a 48 h standstill, every 30 min from 68 h; one short 3 h stop.
    times_h = np.concatenate(
        [np.arange(0, 10, 0.5), np.arange(13, 20, 0.5), np.arange(68, 80, 0.5)]
    )
    clock = running_clock((times_h * H).astype(np.int64))
    on = (clock((np.array([0, 9.5, 13, 19.5, 30, 68, 70, 79.5, 500]) * H).astype(np.int64))) / H
    # the 3 h stop (< GAP_H) counts; the 48 h one counts as one 30-min step; the clock
    # stops one step after the last score (the data may end on a long standstill)
    np.testing.assert_allclose(on, [0, 9.5, 13, 19.5, 20, 20, 22, 31.5, 32])
    assert np.all(np.diff(clock((np.arange(-5, 600, 0.25) * H).astype(np.int64))) >= 0)


def test_a_warning_before_a_weekend_counts_in_running_hours() -> None:
    from analytics.pdm.tuning import ScoredTrack

    # The pump of a press: scores every 30 min to Friday 20 h, high from 10 h; the press
    # stands for the weekend (48 h) and the pump fails 2 h after Monday's start (70 h).
    # Monday's scores stay below the level: the alarm cleared with the standstill.
    times_h = np.concatenate([np.arange(0, 20, 0.5), np.arange(68, 80, 0.5)])
    scores = np.where((times_h >= 10) & (times_h < 20), 0.9, 0.1)
    pump = Failure(70 * H, "hydraulic_pump", "hydraulic_pump_failure", "wear", 72 * H)
    scored = ScoredTrack("A", (times_h * H).astype(np.int64), scores, (pump,), 0, 80 * H)
    m = event_metrics([scored.track(AlarmRule(on=0.5, off=0.3))], warmup_h=0)
    # Raised at 10 h: 12 running hours before the failure (10 h on Friday, 2 on Monday), not
    # 60 wall-clock hours: a true alarm that warned it >= 8 h ahead.
    assert (m.wear_failures, m.warned_2h, m.warned_8h) == (1, 1, 1)
    assert m.lead_median_h == pytest.approx(12.0)
    assert (m.alarms, m.false_alarms) == (1, 0)
    # false alarms are per calendar machine-week: the 80 h of the span, weekend included
    assert m.machine_weeks == pytest.approx(80 / 168)
