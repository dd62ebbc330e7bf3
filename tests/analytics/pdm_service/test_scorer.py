"""The scorer against the real database, with a small model of its shape: alerts exactly once
across two scorers and a restart, closed on failure, maintenance and a cleared alarm."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from pdm_rows import CushionModel, Press, fresh_t0, running_press
from psycopg import AsyncConnection

from analytics.pdm.scorer import Scorer, ScorerSettings

pytestmark = pytest.mark.infra

H = timedelta(hours=1)


def _scorer(model: CushionModel | None = None, **settings: Any) -> Scorer:
    return Scorer(model or CushionModel(), ScorerSettings(lookback_h=24.0, **settings))


async def _alerts(db: AsyncConnection[Any], press: Press) -> list[tuple[Any, ...]]:
    cur = await db.execute(
        "SELECT id, component, status, close_reason, opened_at, closed_at FROM pdm_alert"
        " WHERE machine_id = %s ORDER BY id",
        (press.id,),
    )
    return await cur.fetchall()


async def test_an_alarm_opens_one_alert_across_two_scorers_and_a_restart(
    db: AsyncConnection[Any], caplog: pytest.LogCaptureFixture
) -> None:
    T0 = fresh_t0()
    press = await running_press(db, T0, hours=3, cushion=5.0)
    await press.cycles(T0 + 3 * H, T0 + 5 * H, cushion=3.0)
    first, second = _scorer(), _scorer()
    caplog.set_level(logging.INFO, "analytics.pdm.scorer")
    healthy = await first.score(db, T0 + 2 * H)
    assert healthy.opened == ()
    assert await _alerts(db, press) == []
    a = await first.score(db, T0 + 4.5 * H)
    b = await second.score(db, T0 + 4.5 * H)
    restarted = _scorer()
    c = await restarted.score(db, T0 + 5 * H)
    (alert,) = await _alerts(db, press)
    assert alert[1:4] == ("check_ring", "open", None)
    assert alert[4] == T0 + 4.5 * H
    assert (a.opened, b.opened, c.opened) == ((alert[0],), (), ())
    opened = [r.getMessage() for r in caplog.records if " opened" in r.getMessage()]
    assert len(opened) == 1
    assert f"alert {alert[0]} opened: {press.place} check_ring" in opened[0]
    assert "cushion 3.00 mm" in opened[0]
    cur = await db.execute(
        "SELECT component, alarm, time FROM pdm_prediction_latest WHERE machine_id = %s"
        " ORDER BY component",
        (press.id,),
    )
    assert await cur.fetchall() == [
        ("check_ring", True, T0 + 5 * H),
        ("ejector", False, T0 + 5 * H),
    ]
    cur = await db.execute(
        "SELECT count(*) FROM pdm_prediction WHERE machine_id = %s AND component = 'check_ring'",
        (press.id,),
    )
    assert await cur.fetchone() == (3,)  # 2 h, 4.5 h, 5 h: each 10 min after the last


async def test_two_scorers_in_the_same_pass_open_it_once(db: AsyncConnection[Any]) -> None:
    T0 = fresh_t0()
    press = await running_press(db, T0)
    first, second = _scorer(), _scorer()
    # Both read before either writes: the second's INSERT meets the first's row.
    async with await AsyncConnection.connect(db.info.dsn, autocommit=True) as other:
        a, b = await first.score(db, T0 + 2 * H), await second.score(other, T0 + 2 * H)
    assert len(a.opened) + len(b.opened) == 1
    assert len(await _alerts(db, press)) == 1


async def test_an_alert_closes_when_its_component_fails_and_a_new_one_opens_after_repair(
    db: AsyncConnection[Any],
) -> None:
    T0 = fresh_t0()
    press = await running_press(db, T0)
    scorer = _scorer()
    await scorer.score(db, T0 + 2 * H)
    await press.state(T0 + 2.5 * H, "fault", "ejector_failure")  # another component's
    await press.state(T0 + 3 * H, "running")
    await press.cycles(T0 + 3 * H, T0 + 4 * H, cushion=3.0)
    await scorer.score(db, T0 + 4 * H)
    assert [a[2] for a in await _alerts(db, press)] == ["open"]
    await press.state(T0 + 4 * H, "fault", "check_ring_failure")
    during = await scorer.score(db, T0 + 4.2 * H)  # cycles within recent_s: scored, in repair
    (closed,) = await _alerts(db, press)
    assert closed[2:4] == ("closed", "failed")
    assert closed[5] == T0 + 4 * H
    assert during.closed == (closed[0],)
    assert during.opened == ()
    await press.state(T0 + 5 * H, "running")
    await press.cycles(T0 + 5 * H, T0 + 6 * H, cushion=3.0)  # still low: a new episode
    after = await scorer.score(db, T0 + 6 * H)
    assert len(after.opened) == 1
    assert [a[2] for a in await _alerts(db, press)] == ["closed", "open"]


async def test_planned_maintenance_serves_and_a_cleared_alarm_closes(
    db: AsyncConnection[Any],
) -> None:
    T0 = fresh_t0()
    press = await running_press(db, T0)
    scorer = _scorer(clear_after_h=2.0)
    await scorer.score(db, T0 + 2 * H)
    await press.state(T0 + 2 * H, "planned_stop", "planned_maintenance")
    await press.state(T0 + 3 * H, "running")
    await scorer.score(db, T0 + 3 * H)
    assert [a[2:4] for a in await _alerts(db, press)] == [("closed", "serviced")]
    # Low again, then healthy: the alert stays through an hour off, clears after two.
    await press.cycles(T0 + 3 * H, T0 + 4 * H, cushion=3.0)
    await scorer.score(db, T0 + 4 * H)
    await press.cycles(T0 + 4 * H, T0 + 8 * H, cushion=5.0)
    await scorer.score(db, T0 + 5.5 * H)
    assert [a[2] for a in await _alerts(db, press)] == ["closed", "open"]
    await scorer.score(db, T0 + 6 * H)
    assert [a[2:4] for a in await _alerts(db, press)] == [
        ("closed", "serviced"),
        ("closed", "cleared"),
    ]


async def test_a_machine_without_recent_cycles_is_not_scored_and_keeps_its_alert(
    db: AsyncConnection[Any],
) -> None:
    T0 = fresh_t0()
    press = await running_press(db, T0)
    model = CushionModel()
    scorer = _scorer(model, clear_after_h=1.0)
    await scorer.score(db, T0 + 2 * H)
    await press.state(T0 + 2 * H, "planned_stop", "no_order")
    model.scored.clear()
    result = await scorer.score(db, T0 + 6 * H)
    assert press.place not in {m for m, _ in model.scored}
    assert result.machines >= 0
    assert [a[2] for a in await _alerts(db, press)] == ["open"]


async def test_the_scorers_metrics_count_its_passes_predictions_and_alerts(
    db: AsyncConnection[Any],
) -> None:
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from moldlab.pdm_score_cli import _metrics

    T0 = fresh_t0()
    await running_press(db, T0, hours=3, cushion=5.0)
    scorer = _scorer()
    registry = _metrics(scorer)
    await scorer.score(db, T0 + 2 * H)
    await scorer.score(db, T0 + 2.5 * H)
    text = generate_latest(registry).decode()
    values = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert values["moldlab_pdm_passes_total"] == 2
    assert values["moldlab_pdm_predictions_total"] >= 2  # a component a pass at least
    assert values["moldlab_pdm_machines_scored"] >= 1
    assert values["moldlab_pdm_alerts_opened_total"] == 0
    assert values["moldlab_pdm_failed_passes_total"] == 0
    assert "moldlab_pdm_database_connected" in values
