"""The scorer rides out its database going away: one line when lost, one when back, and it
scores again afterwards without opening a second alert for the same episode."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from pdm_rows import T0, CushionModel, Press

from analytics.pdm.scorer import Scorer, ScorerSettings
from moldlab.servers import LocalPostgres, create_database
from store import upgrade

pytestmark = [pytest.mark.infra, pytest.mark.slow]

H = timedelta(hours=1)


async def _until(check: str, url: str, want: int, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                row = await (await conn.execute(check)).fetchone()
                if row is not None and row[0] >= want:
                    return
        except psycopg.OperationalError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"{check} did not reach {want} within {timeout_s} s")


async def test_the_scorer_survives_a_database_restart(
    scratch_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if os.environ.get("MOLDLAB_TEST_DATABASE_URL"):
        pytest.skip("MOLDLAB_TEST_DATABASE_URL names an external server this test cannot restart")
    home = scratch_dir / f"pdm-restart-{uuid.uuid4().hex[:8]}"
    home.mkdir(mode=0o755)
    caplog.set_level(logging.INFO, "analytics.pdm.scorer")
    with LocalPostgres(home / "data") as server:
        url = create_database(server.url, "moldlab")
        await asyncio.to_thread(upgrade, url)
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            press = await Press.new(conn)
            await press.state(T0, "running")
            await press.cycles(T0, T0 + 2 * H, cushion=3.0)
        now = [T0 + 2 * H]
        scorer = Scorer(
            CushionModel(),
            ScorerSettings(interval_s=0.1, recent_s=4 * 3600, lookback_h=24.0),
            clock=lambda: now[0],
        )
        stop = asyncio.Event()
        task = asyncio.create_task(scorer.run(url, stop))
        try:
            await _until("SELECT count(*) FROM pdm_alert", url, 1)
            await asyncio.to_thread(server.stop)
            await asyncio.sleep(2.0)  # several reconnection attempts fail meanwhile
            now[0] = T0 + 3 * H
            await asyncio.to_thread(server.start)
            await _until(
                "SELECT count(*) FROM pdm_prediction_latest WHERE time = "
                f"'{(T0 + 3 * H).isoformat()}'", url, 2,
            )  # fmt: skip
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            cur = await conn.execute("SELECT count(*), min(status) FROM pdm_alert")
            assert await cur.fetchone() == (1, "open")
    lines = [r.getMessage() for r in caplog.records]
    assert sum("database lost" in line for line in lines) == 1, lines
    assert sum("database back" in line for line in lines) == 1, lines
    assert sum(" opened: " in line for line in lines) == 1, lines
    assert all(len(line) < 500 for line in lines)
