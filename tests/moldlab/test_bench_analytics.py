"""`moldlab bench analytics`: the rows it draws, its window, its check of both paths, its output."""

from __future__ import annotations

import json
import struct
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from analytics.oee import Figures, MicroStops
from analytics.report import loss_tree
from contracts import MachineState
from moldlab.bench_analytics import DEFAULT_END, difference, parse_end, plain, window_of
from moldlab.bench_analytics_rows import DAY_S, MachineRows, demo_plant, floor_plan
from moldlab.cli import main

ROME = ZoneInfo("Europe/Rome")


def _draw(days: float, seed: int = 1, index: int = 0) -> tuple[MachineRows, bytes, bytes, bytes]:
    plant = demo_plant(2)
    end = DEFAULT_END.timestamp()
    rows = MachineRows(floor_plan(plant, 2)[index], 7, plant.sites[0].shift_calendar(),
                       end - days * DAY_S, end, seed)  # fmt: skip
    rows.advance(end)
    cycles, states, jobs = rows.take()
    return rows, cycles, states, jobs


def _fields(data: bytes) -> list[list[bytes | None]]:
    """The rows of a binary COPY body (no header): each a list of raw fields."""
    out, at = [], 0
    while at < len(data):
        (n,) = struct.unpack_from("!h", data, at)
        at += 2
        row: list[bytes | None] = []
        for _ in range(n):
            (size,) = struct.unpack_from("!i", data, at)
            at += 4
            row.append(None if size < 0 else data[at : at + size])
            at += max(size, 0)
        out.append(row)
    return out


def _time(field: bytes | None) -> datetime:
    assert field is not None
    (us,) = struct.unpack("!q", field)
    return datetime.fromtimestamp(946_684_800 + us / 1e6, UTC)


def test_rows_repeat_with_the_seed_and_change_with_it() -> None:
    first = _draw(2.0)[1:]
    assert _draw(2.0)[1:] == first
    assert _draw(2.0, seed=2)[1:] != first


def test_states_follow_the_demo_calendar_and_the_demo_stops() -> None:
    rows, cycles, states, jobs = _draw(7.0)
    decoded = [(_time(r[0]), r[3], r[4]) for r in _fields(states)]
    times = [t for t, _, _ in decoded]
    assert times == sorted(times)
    kinds = Counter((s.decode() if s else "", r.decode() if r else None) for _, s, r in decoded)
    # The demo plant file's breaks: 10:00, 18:00 and 02:00 local, 30 minutes each, every day;
    # a machine stops for them at the end of the cycle running then, or at the end of a stop
    # that runs into them.
    breaks = [t.astimezone(ROME) for t, s, r in decoded if r == b"break"]
    assert 19 <= len(breaks) <= 21  # 7 days x 3, less those a longer stop covers
    assert all(b.hour in {2, 10, 18} and b.minute < 30 for b in breaks)
    assert sum(b.minute == 0 for b in breaks) >= len(breaks) - 3
    assert kinds[("setup", "mould_change")] >= 3  # an order lasts a day or two
    assert sum(n for (s, _), n in kinds.items() if s == "fault") >= 1
    unplanned = {r for s, r in kinds if s == MachineState.UNPLANNED_STOP.value}
    assert len(unplanned) >= 3  # the simulator's reasons
    assert rows.counts.stops >= 7 * 5  # a few stops a day
    assert rows.counts.across_shift_change >= 1
    # A job row for each change of JobStatus: an order per mould change, start-up to production.
    statuses = Counter(r[7].decode() for r in _fields(jobs) if r[7])
    assert statuses["set_up_active"] == kinds[("setup", "mould_change")]
    assert statuses["job_finished"] == statuses["set_up_active"]
    assert statuses["job_in_production"] >= statuses["set_up_active"]
    # Cycles: scrap a few per cent with its defect, test samples, a cycle every ~9-25 s.
    quality = Counter(r[6].decode() for r in _fields(cycles) if r[6])
    assert 0.01 < quality["bad"] / sum(quality.values()) < 0.05
    assert quality["test"] >= 7 * 8
    params = [json.loads(r[10][1:]) for r in _fields(cycles)[:200] if r[10]]
    assert all(8.9 < p["CycleTime"] < 200 and p["CycleEnergy"] > 0 for p in params)


def test_the_window_is_whole_production_days_in_the_site_time() -> None:
    calendar = demo_plant(1).sites[0].shift_calendar()
    start = DEFAULT_END.timestamp() - 90 * DAY_S
    lo, hi = window_of(calendar, start, DEFAULT_END, 30)
    # 30 days of shifts: from the morning shift (06:00 local) of 28 October, after the clocks
    # went back on 25 October (06:00 CET = 05:00 UTC), to that of 27 November.
    assert lo == datetime(2026, 10, 28, 6, tzinfo=ROME)
    assert hi == datetime(2026, 11, 27, 6, tzinfo=ROME)
    assert lo.astimezone(UTC).hour == 5


def test_both_paths_must_agree_to_1e_9() -> None:
    a = {"oee": 0.75, "counts": [1, 2], "bucket": "2026-11-26 night", "from_rollup": 9}
    assert difference(plain(a), plain({**a, "from_rollup": 0})) == 0.0
    assert difference(plain(a), plain({**a, "oee": 0.75 + 1e-12})) <= 1e-9
    assert difference(plain(a), plain({**a, "oee": 0.75 + 1e-6})) > 1e-9
    assert difference(plain(a), plain({**a, "counts": [1, 3]})) > 1e-9
    assert difference(plain(a), plain({**a, "bucket": "2026-11-26 morning"})) == float("inf")
    assert difference(plain(a), plain({k: v for k, v in a.items() if k != "oee"})) == float("inf")


def test_end_is_a_zoned_time_or_now() -> None:
    assert parse_end("2026-11-27T10:45:00+01:00") == DEFAULT_END
    assert parse_end("now").tzinfo is UTC
    with pytest.raises(ValueError, match="time zone"):
        parse_end("2026-11-27T10:45:00")


def test_bad_options_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "analytics", "--repeat", "0"]) == 2
    assert "positive" in capsys.readouterr().err
    assert main(["bench", "analytics", "--days", "30", "--window-days", "30"]) == 2
    assert "exceed" in capsys.readouterr().err
    assert main(["bench", "analytics", "--end", "2026-11-27T10:45"]) == 2
    assert "time zone" in capsys.readouterr().err


@pytest.mark.infra
def test_bench_analytics_json_has_every_figure(
    moldlab_cli: Callable[..., Any], database_server_url: str
) -> None:
    argv = ["bench", "analytics", "--json", "--machines", "2", "--days", "3", "--window-days",
            "1", "--repeat", "3", "--raw-repeat", "2",
            "--database-url", database_server_url]  # fmt: skip
    result = moldlab_cli(*argv)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["command"] == (
        "moldlab bench analytics --machines 2 --days 3 --window-days 1 --end "
        "2026-11-27T10:45:00+01:00 --seed 1 --repeat 3 --raw-repeat 2 --database-url ... --json"
    )
    assert figures["machine"]["cores"] >= 1
    database = figures["database"]
    assert database["backend"] in {"postgresql", "timescaledb"}
    assert database["label"].startswith("external ")
    assert ("TimescaleDB" in database["label"]) == (database["backend"] == "timescaledb")
    assert "loading [" in result.stderr  # progress on stderr, with its rate
    assert "machine-days/s" in result.stderr

    data = figures["data"]
    assert data["telemetry"].startswith("not loaded")
    assert data["rows"]["cycle"] > 2 * 3 * 2500  # a cycle every ~9-25 s for 6 machine-days
    assert data["rows"]["machine_state"] > 2 * 3 * 10
    assert data["rows"]["machine_job"] >= 2
    assert data["rows_per_s"] > 0
    assert data["machine_days_per_s"] > 0
    assert 0.5 < data["scrap_pct"] < 5
    assert data["test_parts"] > 0
    assert data["stops"] > 0
    assert data["setups"] >= 1
    # Every whole slice that ended by --end (27 Nov 10:45) from the plant file's load on (a
    # day before the data, 23 Nov 10:45): 23 Nov's three shifts to 26 Nov's, for each machine.
    assert figures["rollup"]["machines"] == 2
    assert figures["rollup"]["slices"] == 2 * 4 * 3

    whole, to_now = figures["queries"][:3], figures["queries"][3:]
    assert [q["name"] for q in figures["queries"]] == ["oee_per_shift", "loss_tree", "pareto"] * 2
    for q in whole:
        assert q["window"] == "1 whole days"
        assert (q["start"], q["end"]) == ("2026-11-26T06:00:00+01:00", "2026-11-27T06:00:00+01:00")
        assert q["machine_slices"] == q["from_rollup"] == 2 * 3  # three shifts, two machines
        assert q["rollup"]["runs"] == 3
        assert q["raw"]["runs"] == 2
        for path in (q["rollup"], q["raw"]):
            assert 0 < path["p50_ms"] <= path["p99_ms"] <= path["max_ms"]
            assert path["full_gcs"] >= 0
        assert q["speedup_p50"] == pytest.approx(q["raw"]["p50_ms"] / q["rollup"]["p50_ms"], 0.05)
        assert q["same_figures"] is True
        assert q["max_difference"] <= 1e-9
        assert q["response_bytes"] > 100
    for q in to_now:
        assert q["end"] == "2026-11-27T10:45:00+01:00"
        # Today's morning shift is still running: computed from raw rows on either path.
        assert q["machine_slices"] == 2 * 4
        assert q["from_rollup"] == 2 * 3
        assert q["raw"] is None
        assert q["same_figures"] is True
    assert figures["gc"] == "frozen after loading, as the API does"
    assert set(figures["load_average_1min"]) == {"before", "after"}
    assert figures["targets"]["same_figures_both_paths"] is True
    assert isinstance(figures["targets"]["rollup_p50_p99_under_target"], bool)


@pytest.mark.infra
def test_bench_analytics_text_states_the_figures_and_the_command(
    moldlab_cli: Callable[..., Any], database_server_url: str
) -> None:
    result = moldlab_cli("bench", "analytics", "--machines", "1", "--days", "2", "--window-days",
                         "1", "--repeat", "2", "--raw-repeat", "1", "--no-gc-freeze",
                         "--database-url", database_server_url)  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("moldlab bench analytics --machines 1 --days 2 --window-days 1 ")
    assert "--no-gc-freeze" in out.splitlines()[0]
    assert "\nmachine: " in out
    assert "database: external " in out
    assert "telemetry not loaded" in out
    for name in ("oee_per_shift", "loss_tree", "pareto"):
        assert f"{name} rollup" in out
        assert f"{name} raw" in out
    assert "speed-up" in out
    assert "garbage collection as is (--no-gc-freeze)" in out
    assert "same figures both ways: yes" in out
    assert "every query and window: yes" in out


def test_the_loss_tree_orders_ties_by_name_whatever_the_maps_order() -> None:
    # The rollup's figures come back from jsonb with their keys in another order than the raw
    # path adds them in; equal losses must not change places between the two (the benchmark
    # found scrap/sink_marks and scrap/startup_scrap, 3 parts each, swapped).
    def tree(scrap: dict[str, int], losses: dict[str, float]) -> list[str]:
        f = Figures(shift_s=3600.0, parts=10, good=4, bad=6, ideal_s=100.0, scrap=scrap,
                    losses_s=losses, production_s=600.0)  # fmt: skip
        root = loss_tree(f, MicroStops.ISO)
        return [c.name for node in root.children for c in node.children]

    one = tree({"sink_marks": 3, "startup_scrap": 3}, {"idle/starved": 60.0, "fault/x": 60.0})
    other = tree({"startup_scrap": 3, "sink_marks": 3}, {"fault/x": 60.0, "idle/starved": 60.0})
    assert one == other == ["fault/x", "idle/starved", "scrap/sink_marks", "scrap/startup_scrap"]
