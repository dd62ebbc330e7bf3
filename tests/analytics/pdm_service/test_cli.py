"""`moldlab pdm alerts|ack|score` on the command line: listing, acknowledging, clear errors."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pdm_rows import CushionModel, Press, fresh_t0
from psycopg import AsyncConnection

from analytics.pdm.scorer import Scorer, ScorerSettings
from moldlab.cli import main

pytestmark = pytest.mark.infra

H = timedelta(hours=1)


async def _main(argv: list[str]) -> int:
    """`moldlab ARGV` beside this test's event loop (the command runs one of its own)."""
    return await asyncio.to_thread(main, argv)


async def _alert(db: AsyncConnection[Any]) -> tuple[str, int]:
    T0 = fresh_t0()
    site = f"cli-{uuid.uuid4().hex[:6]}"
    press = await Press.new(db, site)
    await press.state(T0, "running")
    await press.cycles(T0, T0 + 2 * H, cushion=3.0)
    await Scorer(CushionModel(), ScorerSettings(lookback_h=24.0)).score(db, T0 + 2 * H)
    cur = await db.execute("SELECT id FROM pdm_alert WHERE machine_id = %s", (press.id,))
    row = await cur.fetchone()
    assert row is not None
    return site, int(row[0])


async def test_ack_takes_an_open_alert_once(
    db: AsyncConnection[Any], database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    site, alert_id = await _alert(db)
    url = ["--database-url", database_url]
    assert await _main(["pdm", "alerts", "--place", site, "--json", *url]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert (listed["id"], listed["status"]) == (alert_id, "open")
    assert await _main(["pdm", "ack", str(alert_id), "--by", "Grace Hopper", *url]) == 0
    assert f"alert {alert_id}" in capsys.readouterr().out
    cur = await db.execute(
        "SELECT status, acknowledged_by, acknowledged_at IS NOT NULL FROM pdm_alert WHERE id = %s",
        (alert_id,),
    )
    assert await cur.fetchone() == ("acknowledged", "Grace Hopper", True)
    assert await _main(["pdm", "ack", str(alert_id), "--by", "Someone else", *url]) == 1
    assert "already acknowledged by Grace Hopper" in capsys.readouterr().err
    assert await _main(["pdm", "ack", "999999999", "--by", "x", *url]) == 1
    assert "no alert 999999999" in capsys.readouterr().err
    assert await _main(["pdm", "alerts", "--place", site, *url]) == 0
    out = capsys.readouterr().out
    assert "acknowledged" in out
    assert "by Grace Hopper" in out
    await db.execute(
        "UPDATE pdm_alert SET status = 'closed', closed_at = now(), close_reason = 'cleared'"
        " WHERE id = %s",
        (alert_id,),
    )
    assert await _main(["pdm", "ack", str(alert_id), "--by", "x", *url]) == 1
    assert "is closed (cleared)" in capsys.readouterr().err
    assert await _main(["pdm", "alerts", "--place", site, *url]) == 0
    assert capsys.readouterr().out.strip() == "no alerts"


def test_score_without_a_model_says_so(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "models"
    code = main(["pdm", "score", "--models-dir", str(empty), "--database-url", database_url])
    assert code == 2
    err = capsys.readouterr().err
    assert "no model in" in err
    assert "moldlab pdm train" in err


def test_score_with_a_model_of_other_library_versions_says_so(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "models" / "old"
    model.mkdir(parents=True)
    card = {"name": "old", "versions": {"sklearn": "0.1.0", "numpy": "1.0.0"}}
    (model / "card.json").write_text(json.dumps(card))
    code = main(["pdm", "score", "--model", "old", "--models-dir", str(tmp_path / "models"),
                 "--database-url", database_url])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "sklearn 0.1.0" in err
    assert "retrain" in err


def test_ack_without_a_database_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["pdm", "ack", "1", "--by", "x", "--database-url", "postgresql://u@127.0.0.1:1/x"])
    assert code == 1
    assert "cannot reach the database" in capsys.readouterr().err
