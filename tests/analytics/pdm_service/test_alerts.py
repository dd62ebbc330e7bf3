"""The alert state machine, on plain values."""

from __future__ import annotations

import numpy as np

from analytics.pdm.alerts import ActiveAlert, Alarm, Close, Open, Seen, Stop, decide, stops

H = 3_600_000_000


def _states(*rows: tuple[int, str, str | None]) -> dict[str, np.ndarray]:
    return {
        "ts": np.array([r[0] for r in rows], np.int64),
        "state": np.array([r[1] for r in rows], object),
        "reason": np.array([r[2] for r in rows], object),
    }


def test_an_alarm_opens_an_alert_and_keeps_it_one_episode() -> None:
    assert decide(None, Alarm(10 * H, True), []) == Open()
    assert decide(None, Alarm(10 * H, False), []) is None
    assert decide(None, None, []) is None
    alert = ActiveAlert(7, opened_us=10 * H, last_alarm_us=10 * H)
    assert decide(alert, Alarm(11 * H, True), []) == Seen(7)
    # Off for less than the clear-after time: the same alert goes on.
    assert decide(alert, Alarm(15 * H, False), [], clear_after_h=6) is None
    assert decide(alert, Alarm(16 * H, False), [], clear_after_h=6) == Close(7, 16 * H, "cleared")
    # Not scored (no prediction): nothing changes, however long.
    assert decide(alert, None, [], clear_after_h=6) is None


def test_a_failure_or_maintenance_after_opening_closes_it() -> None:
    alert = ActiveAlert(3, opened_us=10 * H, last_alarm_us=12 * H)
    before = Stop("failed", 5 * H, 6 * H)
    assert decide(alert, Alarm(13 * H, True), [before]) == Seen(3)
    failed = Stop("failed", 12 * H, None)
    assert decide(alert, Alarm(13 * H, True), [before, failed]) == Close(3, 12 * H, "failed")
    serviced = Stop("serviced", 11 * H, 12 * H)
    assert decide(alert, None, [serviced]) == Close(3, 11 * H, "serviced")


def test_no_alert_opens_while_the_component_is_repaired_or_maintained() -> None:
    assert decide(None, Alarm(13 * H, True), [Stop("failed", 12 * H, None)]) is None
    assert decide(None, Alarm(13 * H, True), [Stop("serviced", 12 * H, 14 * H)]) is None
    assert decide(None, Alarm(13 * H, True), [Stop("failed", 11 * H, 12 * H)]) == Open()


def test_stops_are_the_components_repairs_and_every_planned_maintenance() -> None:
    states = _states(
        (0, "running", None),
        (1 * H, "fault", "check_ring_failure"),
        (2 * H, "running", None),
        (3 * H, "fault", "ejector_failure"),
        (4 * H, "planned_stop", "planned_maintenance"),
        (5 * H, "planned_stop", "break"),
        (6 * H, "fault", "check_ring_failure"),
    )
    assert stops("check_ring", states) == [
        Stop("failed", 1 * H, 2 * H), Stop("serviced", 4 * H, 5 * H), Stop("failed", 6 * H, None)
    ]  # fmt: skip
    assert stops("ejector", states) == [
        Stop("failed", 3 * H, 4 * H),
        Stop("serviced", 4 * H, 5 * H),
    ]
    assert stops("heater_zone2", states, {"heater_zone2": "heater_burnout"}) == [
        Stop("serviced", 4 * H, 5 * H)
    ]
