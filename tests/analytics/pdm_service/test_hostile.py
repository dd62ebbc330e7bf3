"""The scoring service against hostile and broken input: non-finite and huge values, odd
times, a flood of machine ids, bad command lines and damaged models. Each costs only itself:
one bounded log line, and every other machine is scored as before."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from databases import migrated_database
from pdm_rows import CushionModel, FakePrediction, Press, fresh_t0
from psycopg import AsyncConnection

from analytics.pdm.history import MachineHistory
from analytics.pdm.scorer import Scorer, ScorerSettings
from moldlab.cli import main

pytestmark = pytest.mark.infra

H = timedelta(hours=1)
LINE_MAX = 400  # a log line's length, whatever the input


def _scorer(model: CushionModel | None = None, **settings: Any) -> Scorer:
    return Scorer(model or CushionModel(), ScorerSettings(lookback_h=24.0, **settings))


async def _bad_cycles(press: Press, at: datetime, rows: list[tuple[float, str]]) -> None:
    """Cycles a minute apart from `at`, each with a raw cycle_time_s and parameters JSON text."""
    for k, (cycle_time_s, parameters) in enumerate(rows):
        n = press._next()
        await press.conn.execute(
            "INSERT INTO cycle (time, machine_id, shot, quality, parts, cycle_time_s, parameters,"
            " source, seq) VALUES (%s, %s, %s, 'good', 1, %s, %s::jsonb, 'test', %s)",
            (at + timedelta(minutes=k), press.id, n, cycle_time_s, parameters, n),
        )


async def _predictions(db: AsyncConnection[Any], press: Press) -> list[tuple[Any, ...]]:
    cur = await db.execute(
        "SELECT component, p_8h, p_24h, rul_h, rul_low_h, rul_high_h, evidence"
        " FROM pdm_prediction_latest WHERE machine_id = %s ORDER BY component",
        (press.id,),
    )
    return await cur.fetchall()


def _lines(caplog: pytest.LogCaptureFixture, needle: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if needle in r.getMessage()]


async def test_non_finite_and_huge_values_are_read_as_missing_and_cost_no_other_machine(
    db: AsyncConnection[Any], caplog: pytest.LogCaptureFixture
) -> None:
    T0 = fresh_t0()
    fine, broken = await Press.new(db), await Press.new(db)
    for press in (fine, broken):
        await press.state(T0, "running")
        await press.cycles(T0, T0 + 2 * H, cushion=5.0)
    nan, inf = float("nan"), float("inf")
    # Two 1e308 in one minute overflowed PostgreSQL's avg: the whole pass failed before.
    at = T0 + 2 * H - timedelta(minutes=30)
    samples = [(at + timedelta(seconds=s), v) for s, v in
               enumerate((nan, inf, -inf, 1e308, 1e308, -1e308, -1e308, 250.0))]  # fmt: skip
    await broken.telemetry("MeltTemperature", samples)
    await _bad_cycles(broken, at, [
        (nan, '{"CushionVolume": 5.0}'), (inf, '{"CushionVolume": 1e308}'),
        (1e308, '{"CushionVolume": -1e400}'), (15.0, '{"CushionVolume": "NaN"}'),
        (15.0, '{"CushionVolume": "abc", "InjectionTime": [1]}'), (-inf, '"not an object"'),
    ])  # fmt: skip
    caplog.set_level(logging.INFO, "analytics.pdm.scorer")
    scorer = _scorer()
    result = await scorer.score(db, T0 + 2 * H)
    assert result.skipped == ()
    for press in (fine, broken):
        rows = await _predictions(db, press)
        assert [r[0] for r in rows] == ["check_ring", "ejector"]
        assert all(math.isfinite(v) for r in rows for v in r[1:6])
    (line,) = _lines(caplog, "out of range")
    assert line.startswith(f"{broken.place}: ")
    # NaN, ±inf, ±1e308 of telemetry (7), the cycle times (4) and the JSON parameters (5).
    assert "16 values out of range (NaN, infinite or beyond ±1e12) read as missing" in line
    history = await scorer.reader.history(db, broken.id, broken.place, T0 + 2 * H)
    for columns in (history.cycles, history.signals):
        for name, values in columns.items():
            if values.dtype.kind == "f":
                assert not (abs(values) > 1e12).any(), name  # NaN (missing) or sane
    caplog.clear()
    await scorer.score(db, T0 + 2 * H + timedelta(minutes=1))  # nothing new: no new line
    assert _lines(caplog, "out of range") == []


@dataclass(slots=True)
class _Unruly(CushionModel):
    """Raises for one machine, predicts NaN and infinity for another."""

    raises: str = ""
    nan: str = ""

    def predict(self, history: MachineHistory, at_us: int) -> list[FakePrediction]:
        out = CushionModel.predict(self, history, at_us)
        if history.machine_id == self.raises:
            raise ValueError("Input X contains infinity or a value too large for float32")
        if history.machine_id == self.nan:
            return [replace(p, p_8h=float("nan"), rul_h=float("inf")) for p in out]
        return out


async def test_a_model_error_or_nan_prediction_skips_only_that_machine_and_logs_once(
    db: AsyncConnection[Any], caplog: pytest.LogCaptureFixture
) -> None:
    T0 = fresh_t0()
    presses = [await Press.new(db) for _ in range(3)]
    for press in presses:
        await press.state(T0, "running")
        await press.cycles(T0, T0 + 4 * H, cushion=3.0)
    fine, raising, nan = presses
    model = _Unruly(raises=raising.place, nan=nan.place)
    scorer = _scorer(model)
    caplog.set_level(logging.INFO, "analytics.pdm.scorer")
    first = await scorer.score(db, T0 + 2 * H)
    assert sorted(first.skipped) == sorted([raising.id, nan.id])
    assert first.machines == 1
    assert [r[0] for r in await _predictions(db, fine)] == ["check_ring", "ejector"]
    assert await _predictions(db, raising) == []
    assert await _predictions(db, nan) == []
    cur = await db.execute(
        "SELECT machine_id FROM pdm_alert WHERE machine_id = ANY(%s)", ([p.id for p in presses],)
    )
    assert await cur.fetchall() == [(fine.id,)]
    (raised,) = _lines(caplog, raising.place)
    assert "not scored: ValueError: Input X contains infinity" in raised
    (nonfinite,) = _lines(caplog, nan.place)
    assert "non-finite p_8h=nan, rul_h=inf" in nonfinite
    assert all(len(r.getMessage()) <= LINE_MAX for r in caplog.records)
    caplog.clear()
    second = await scorer.score(db, T0 + 3 * H)  # the same trouble: not logged again
    assert sorted(second.skipped) == sorted([raising.id, nan.id])
    assert _lines(caplog, "not scored") == []
    model.raises = model.nan = ""
    third = await scorer.score(db, T0 + 4 * H)
    assert third.skipped == ()
    assert len(_lines(caplog, "scored normally again")) == 2
    assert len(await _predictions(db, raising)) == len(await _predictions(db, nan)) == 2


async def test_times_of_year_1_9999_minus_infinity_and_data_in_the_future(
    db: AsyncConnection[Any], caplog: pytest.LogCaptureFixture
) -> None:
    T0 = fresh_t0()
    year1 = datetime(1, 1, 1, tzinfo=UTC)
    year9999 = datetime(9999, 12, 31, 23, 59, tzinfo=UTC)
    odd, future = await Press.new(db), await Press.new(db)
    await odd.state(year1, "fault", "check_ring_failure")
    await db.execute(
        "INSERT INTO machine_state (time, machine_id, state, reason, source, seq)"
        " VALUES ('-infinity', %s, 'planned_stop', 'planned_maintenance', 'test', 0)",
        (odd.id,),
    )  # PostgreSQL takes it; it read as a failed cast to int8 before
    await odd.job(year1, "ancient", "m-1")
    await odd.state(year1 + H, "running")
    await odd.cycles(T0, T0 + 2 * H, cushion=3.0)
    await odd.cycles(year9999 - H, year9999, cushion=1.0, step_s=600)
    await odd.telemetry("MeltTemperature", [(year1, 1.0), (year9999, 2.0), (T0 + H, 230.0)])
    await future.state(T0, "running")
    await future.cycles(T0 + 3 * H, T0 + 4 * H, cushion=3.0)  # all after the time scored
    model = CushionModel()
    caplog.set_level(logging.INFO, "analytics.pdm.scorer")
    result = await _scorer(model).score(db, T0 + 2 * H)
    assert result.skipped == ()
    assert _lines(caplog, "not scored") == _lines(caplog, "out of range") == []
    scored = {m for m, _ in model.scored}
    assert odd.place in scored
    assert future.place not in scored  # nothing of it at or before the time scored
    rows = await _predictions(db, odd)
    assert rows[0][:2] == ("check_ring", 0.9)  # the cushion of now, not of year 9999
    cur = await db.execute(
        "SELECT DISTINCT time FROM pdm_prediction_latest WHERE machine_id = %s", (odd.id,)
    )
    assert await cur.fetchall() == [(T0 + 2 * H,)]
    cur = await db.execute("SELECT opened_at FROM pdm_alert WHERE machine_id = %s", (odd.id,))
    assert await cur.fetchall() == [(T0 + 2 * H,)]


@dataclass(slots=True)
class _Poisoned(CushionModel):
    """While `poison`, names its check ring with a NUL: PostgreSQL refuses the pass's write."""

    poison: bool = True

    def predict(self, history: MachineHistory, at_us: int) -> list[FakePrediction]:
        out = CushionModel.predict(self, history, at_us)
        self.components = ("check\x00ring", "ejector") if self.poison else ("check_ring", "ejector")
        return [replace(p, component="check\x00ring") if self.poison and p.component ==
                "check_ring" else p for p in out]  # fmt: skip


class _Waiter(logging.Handler):
    """Sets an event when a record containing `needle` is logged (no polling, no sleeps)."""

    def __init__(self, needle: str) -> None:
        super().__init__()
        self.needle, self.seen = needle, asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.needle in record.getMessage():
            self.seen.set()


async def test_a_pass_the_database_refuses_is_logged_once_and_the_service_goes_on(
    db: AsyncConnection[Any], database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    T0 = fresh_t0()
    press = await Press.new(db)
    await press.state(T0, "running")
    await press.cycles(T0, T0 + 2 * H, cushion=5.0)
    model = _Poisoned(name=f"poisoned-{uuid.uuid4().hex[:6]}")
    scorer = Scorer(model, ScorerSettings(lookback_h=24.0, interval_s=0.01),
                    clock=lambda: T0 + 2 * H)  # fmt: skip
    caplog.set_level(logging.INFO, "analytics.pdm.scorer")
    failed, again = _Waiter("a pass failed"), _Waiter("passes are written again")
    for waiter in (failed, again):
        logging.getLogger("analytics.pdm.scorer").addHandler(waiter)
    stop = asyncio.Event()
    service = asyncio.create_task(scorer.run(database_url, stop))
    try:
        await asyncio.wait_for(failed.seen.wait(), 20)
        model.poison = False
        await asyncio.wait_for(again.seen.wait(), 20)
    finally:
        stop.set()
        await asyncio.wait_for(service, 20)
        for waiter in (failed, again):
            logging.getLogger("analytics.pdm.scorer").removeHandler(waiter)
    (line,) = _lines(caplog, "a pass failed")
    assert "nothing of it written; done again every 0.01 s: DataError:" in line
    assert len(line) <= LINE_MAX
    assert [r[0] for r in await _predictions(db, press)] == ["check_ring", "ejector"]


async def _flood(db: AsyncConnection[Any], site: str, n: int, at: datetime) -> None:
    """`n` machines of `site` with one cycle each at `at`, as a flood of new ids would make."""
    await db.execute(
        "INSERT INTO machine (machine_key, site, area, line)"
        " SELECT 'flood-' || g, %s, 'hall', 'l1' FROM generate_series(1, %s) g",
        (site, n),
    )
    await db.execute(
        "INSERT INTO cycle (time, machine_id, shot, quality, parts, cycle_time_s, parameters,"
        " source, seq) SELECT %s, id, 1, 'good', 1, 15.0, '{}', 'flood', 1 FROM machine"
        " WHERE site = %s",
        (at, site),
    )


async def test_a_flood_of_machine_ids_is_capped_and_the_machines_followed_keep_their_place(
    database_server_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A database of its own: 2,000 machines in the shared one would reach ingest's limit on
    # machines for the tests that follow.
    with migrated_database(database_server_url) as url:
        async with await AsyncConnection.connect(url, autocommit=True) as db:
            await _flood_is_capped(db, caplog)


async def _flood_is_capped(db: AsyncConnection[Any], caplog: pytest.LogCaptureFixture) -> None:
    T0 = fresh_t0()
    real = await Press.new(db, "zz-real")  # sorts after the flood: kept as followed before
    await real.state(T0, "running")
    await real.cycles(T0, T0 + 3 * H, cushion=3.0)
    model = CushionModel()
    scorer = _scorer(model, max_machines=100)
    caplog.set_level(logging.INFO, "analytics.pdm.scorer")
    await scorer.score(db, T0 + H)
    await _flood(db, f"flood{uuid.uuid4().hex[:6]}", 2000, T0 + 2 * H)
    model.scored.clear()
    result = await scorer.score(db, T0 + 2 * H)
    assert result.machines == 100
    assert result.left_out == 1901
    assert real.place in {m for m, _ in model.scored}
    assert len(scorer.reader.machines) == 100
    assert result.wall_s < 15.0
    (line,) = _lines(caplog, "max_machines")
    assert line.startswith("2001 machines have cycles in the last 24 h, more than max_machines 100")
    caplog.clear()
    again = await scorer.score(db, T0 + 2 * H + timedelta(minutes=1))
    assert again.left_out == 1901
    assert _lines(caplog, "max_machines") == []  # once, not every pass
    restarted = _scorer(CushionModel(), max_machines=100)  # its history keeps it in
    after = await restarted.score(db, T0 + 2 * H + timedelta(minutes=2))
    assert after.left_out == 1901
    assert real.id in restarted.reader.machines
    quiet = await scorer.score(db, T0 + 27 * H)  # the flood is out of the lookback
    assert quiet.left_out == 0
    assert len(_lines(caplog, "none left out")) == 1


async def _main(argv: list[str]) -> int:
    return await asyncio.to_thread(main, argv)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["ack", "-5", "--by", "x"], "ALERT_ID must be a whole number from 1 to"),
        (["ack", "0", "--by", "x"], "ALERT_ID must be a whole number from 1 to"),
        (["ack", str(10**30), "--by", "x"], "ALERT_ID must be a whole number from 1 to"),
        (["ack", "1", "--by", ""], "--by must be a name of 1-100 printable characters"),
        (["ack", "1", "--by", "x" * 10_000], "--by must be a name of 1-100 printable"),
        (["ack", "1", "--by", os.fsdecode(b"J\xffrg")], "--by must be a name of 1-100"),
        (["ack", "1", "--by", "a\x1b[2Jb"], "--by must be a name of 1-100 printable"),
        (["alerts", "--place", os.fsdecode(b"site\xff")], "--place must be site[/area"),
        (["alerts", "--place", "s" * 10_000], "--place must be site[/area"),
        (["alerts", "--place", "a/b/c/d/e"], "--place must be site[/area"),
        (["alerts", "--limit", "0"], "--limit must be 1 to 10000"),
        (["alerts", "--limit", str(10**9)], "--limit must be 1 to 10000"),
        (["score", "--interval-s", "nan"], "--interval-s must be more than 0 and at most"),
        (["score", "--history-every-s", "1e308"], "--history-every-s must be more than 0"),
        (["score", "--history-days", "inf"], "--history-days must be more than 0 and at most"),
        (["score", "--recent-s", "-1"], "--recent-s must be more than 0 and at most"),
        (["score", "--max-machines", "0"], "--max-machines must be 1 to 100000"),
        (["score", "--model", "m" * 5000], "cannot use the model: [Errno 36] File name too"),
        (["score", "--models-dir", "d" * 5000], "cannot use the model: [Errno 36] File name"),
    ],
)
async def test_bad_arguments_of_ack_alerts_and_score_exit_2_with_one_line(
    argv: list[str], says: str, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await _main(["pdm", *argv, "--database-url", database_url])
    err = capsys.readouterr().err
    assert code == 2
    assert says in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_argparse_errors_and_raw_non_utf8_bytes_exit_2_without_a_traceback(
    database_url: str,
) -> None:
    for argv in (["alerts", "--status", "bogus"], ["ack", "abc", "--by", "x"]):
        with pytest.raises(SystemExit) as stopped:
            main(["pdm", *argv, "--database-url", database_url])
        assert stopped.value.code == 2
    # A real process given bytes that are not UTF-8 (the shell passes them as they are).
    for argv in ([b"ack", b"1", b"--by", b"\xff\xfe"], [b"alerts", b"--place", b"\xc3("]):
        done = subprocess.run(
            [sys.executable.encode(), b"-m", b"moldlab", b"pdm", *argv, b"--database-url",
             database_url.encode()],
            capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert b"Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


async def test_ack_of_an_unknown_id_says_so_and_exits_1(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await _main(["pdm", "ack", str(2**63 - 1), "--by", "x", "--database-url",
                        database_url]) == 1  # fmt: skip
    assert f"no alert {2**63 - 1}" in capsys.readouterr().err


def _model_dir(root: Path, name: str, artefact: bytes, sha: str | None = None) -> Path:
    """A model directory with a card this installation accepts and the artefact given."""
    from analytics.pdm.features import FEATURE_NAMES
    from analytics.pdm.train import library_versions

    path = root / name
    path.mkdir(parents=True)
    (path / "model.joblib").write_bytes(artefact)
    card = {
        "name": name, "created": "2026-11-30T00:00:00Z", "versions": library_versions(),
        "features": list(FEATURE_NAMES),
        "artefact": {"sha256": sha or hashlib.sha256(artefact).hexdigest()},
    }  # fmt: skip
    (path / "card.json").write_text(json.dumps(card))
    return path


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        ("card", "cannot be read"),
        ("truncated", "is corrupt: its sha256 is not the one in"),
        ("garbage", "cannot be loaded"),
        ("empty", "has no card.json"),
    ],
)
def test_a_damaged_model_directory_is_refused_with_exit_2(
    damage: str, says: str, database_url: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    models = tmp_path / "models"
    if damage == "card":
        path = _model_dir(models, "m", b"x")
        (path / "card.json").write_bytes(b'{"name": "m", "versions": \xff')
    elif damage == "truncated":
        path = _model_dir(models, "m", b"0123456789", sha=hashlib.sha256(b"0123").hexdigest())
    elif damage == "garbage":
        _model_dir(models, "m", b"\x80\x04not a pickle at all")
    else:
        (models / "m").mkdir(parents=True)
    code = main(["pdm", "score", "--model", "m", "--models-dir", str(models),
                 "--database-url", database_url])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert says in err
    assert "Traceback" not in err
