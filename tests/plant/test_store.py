"""The plant file in the database: history by effective time, idempotent reloads, the CLI."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from databases import migrated_database
from psycopg import AsyncConnection

from plant import parse_plant
from simulators.scenario import PACKAGED
from store.plant import (
    PlantConflict,
    calendar_at,
    machine_at,
    mould_at,
    mould_versions,
    plant_at,
    site_versions,
    write_plant,
)

pytestmark = pytest.mark.infra

DEMO = (PACKAGED / "demo-plant.yaml").read_text()
T0 = datetime(2026, 10, 1, tzinfo=UTC)
T1 = datetime(2026, 11, 15, 5, tzinfo=UTC)  # 06:00 in Rome
IMM_01 = ("demo", "hall-a", "line-1", "imm-01")
IMM_03 = ("demo", "hall-a", "line-1", "imm-03")


def _v2(text: str = DEMO) -> str:
    """The demo plant with bracket-pp-4 re-timed (14.8 -> 16.2 s) and Christmas off."""
    text = text.replace("ideal_cycle_s: 14.8", "ideal_cycle_s: 16.2", 1)
    return text.replace("holidays: []", "holidays: [2026-12-25]", 1)


@pytest.fixture
def plant_db(database_server_url: str) -> Iterator[str]:
    with migrated_database(database_server_url, "moldlab_plant") as url:
        yield url


@pytest.fixture
async def conn(plant_db: str) -> AsyncIterator[AsyncConnection]:
    async with await AsyncConnection.connect(plant_db) as connection:
        yield connection


def _counts(url: str) -> tuple[int, ...]:
    with psycopg.connect(url) as c:
        return tuple(
            c.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]  # count(*) has a row
            for t in ("plant_site", "plant_mould", "plant_machine", "plant_load")
        )


async def test_a_plant_file_change_does_not_alter_figures_before_its_effective_time(
    conn: AsyncConnection,
) -> None:
    v1, v2 = parse_plant(DEMO), parse_plant(_v2())
    first = await write_plant(conn, v1, T0, "v1")
    assert (len(first.added), first.changed, first.retired) == (9, [], [])
    second = await write_plant(conn, v2, T1, "v2")
    assert (second.added, second.changed, second.retired) == (
        [],
        ["site demo", "mould bracket-pp-4"],
        [],
    )
    assert second.unchanged == 7

    before = await mould_at(conn, "bracket-pp-4", T1 - timedelta(seconds=1))
    after = await mould_at(conn, "bracket-pp-4", T1)
    assert before is not None
    assert after is not None
    assert (before.ideal_cycle_s, after.ideal_cycle_s) == (14.8, 16.2)
    assert (before.cavities, after.cavities) == (4, 4)
    assert await mould_at(conn, "bracket-pp-4", T0 - timedelta(seconds=1)) is None
    # An unchanged mould keeps its first version, from T0.
    cap = await plant_at(conn, T1 + timedelta(days=1))
    (cap_version,) = [v for v in cap.moulds if v.item.id == "cap-pp-8"]
    assert (cap_version.valid_from, cap_version.valid_to) == (T0, None)

    versions = await mould_versions(conn, "bracket-pp-4", T0, T1 + timedelta(days=30))
    assert [(v.valid_from, v.valid_to, v.item.ideal_cycle_s) for v in versions] == [
        (T0, T1, 14.8),
        (T1, None, 16.2),
    ]
    # The calendar: Christmas is a holiday only in the version from T1.
    christmas = date(2026, 12, 25)
    old_cal = await calendar_at(conn, "demo", T0)
    new_cal = await calendar_at(conn, "demo", T1)
    assert old_cal is not None
    assert new_cal is not None
    assert [s.name for s in old_cal.shifts_on(christmas)] == ["morning", "afternoon", "night"]
    assert new_cal.shifts_on(christmas) == ()
    assert len(await site_versions(conn, "demo", T0, T1 + timedelta(hours=1))) == 2
    assert (await plant_at(conn, T0)).plant().mould("bracket-pp-4") == v1.mould("bracket-pp-4")


async def test_reloading_the_same_content_writes_nothing(
    conn: AsyncConnection, plant_db: str
) -> None:
    plant = parse_plant(DEMO)
    await write_plant(conn, plant, T0, "v1")
    counts = _counts(plant_db)
    again = await write_plant(conn, plant, T1, "v1 again")
    assert (again.changes, again.unchanged) == (0, 9)
    # Even with an earlier effective time: nothing changes, nothing is refused.
    earlier = await write_plant(conn, plant, T0 - timedelta(days=1), "v1 earlier")
    assert earlier.changes == 0
    assert _counts(plant_db) == counts == (1, 5, 3, 1)


async def test_a_change_effective_before_the_current_version_is_refused_and_writes_nothing(
    conn: AsyncConnection, plant_db: str
) -> None:
    await write_plant(conn, parse_plant(DEMO), T0, "v1")
    await write_plant(conn, parse_plant(_v2()), T1, "v2")
    counts = _counts(plant_db)
    # v1 again with imm-01's clamp force corrected, from a day after T0: imm-01 alone could
    # take it (its newest version is from T0), the site and bracket-pp-4 cannot (from T1).
    text = DEMO.replace("clamp_force_kn: 800", "clamp_force_kn: 850")
    with pytest.raises(PlantConflict) as caught:
        await write_plant(conn, parse_plant(text), T0 + timedelta(days=1), "late")
    assert str(caught.value).splitlines() == [
        "site demo: its newest version holds from 2026-11-15T05:00:00+00:00; a change must take "
        "effect after that, not 2026-10-02T00:00:00+00:00",
        "mould bracket-pp-4: its newest version holds from 2026-11-15T05:00:00+00:00; a change "
        "must take effect after that, not 2026-10-02T00:00:00+00:00",
    ]
    with pytest.raises(PlantConflict, match="mould bracket-pp-4: its newest version holds from"):
        await write_plant(conn, parse_plant(DEMO), T1, "back to v1 at the same time")
    assert _counts(plant_db) == counts
    assert (await machine_at(conn, IMM_01, T1)).clamp_force_kn == 800  # type: ignore[union-attr]
    # A correction of imm-01 alone, from a day after T0, is history added after its version.
    fixed = _v2().replace("clamp_force_kn: 800", "clamp_force_kn: 850")
    done = await write_plant(conn, parse_plant(fixed), T0 + timedelta(days=1), "imm-01")
    assert done.changed == ["machine demo/hall-a/line-1/imm-01"]
    assert (await machine_at(conn, IMM_01, T0)).clamp_force_kn == 800  # type: ignore[union-attr]
    assert (await machine_at(conn, IMM_01, T1)).clamp_force_kn == 850  # type: ignore[union-attr]


async def test_a_machine_left_out_of_the_file_is_retired_from_then_on(
    conn: AsyncConnection,
) -> None:
    await write_plant(conn, parse_plant(DEMO), T0, "v1")
    without = DEMO[: DEMO.index("  - {site: demo, area: hall-a, line: line-1, id: imm-03")]
    result = await write_plant(conn, parse_plant(without), T1, "two machines")
    assert result.retired == ["machine demo/hall-a/line-1/imm-03"]
    assert await machine_at(conn, IMM_03, T1 - timedelta(seconds=1)) is not None
    assert await machine_at(conn, IMM_03, T1) is None
    # Back again later: a new version, the gap kept.
    back = await write_plant(conn, parse_plant(DEMO), T1 + timedelta(days=1), "three again")
    assert back.added == ["machine demo/hall-a/line-1/imm-03"]
    assert await machine_at(conn, IMM_03, T1 + timedelta(hours=1)) is None
    found = await machine_at(conn, IMM_03, T1 + timedelta(days=2))
    assert found is not None
    assert found.clamp_force_kn == 1200


def _moldlab(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOLDLAB_")}
    return subprocess.run(
        [sys.executable, "-m", "moldlab", "plant", *args],
        capture_output=True, text=True, timeout=60, env={**env, "MOLDLAB_DATABASE_URL": url},
    )  # fmt: skip


@pytest.mark.slow
def test_plant_load_and_show_round_trip_through_the_cli(tmp_path: Path, plant_db: str) -> None:
    v1, v2 = tmp_path / "v1.yaml", tmp_path / "v2.yaml"
    v1.write_text(DEMO)
    v2.write_text(_v2())
    load = _moldlab("load", str(v1), "--effective-from", "2026-10-01T02:00+02:00", url=plant_db)
    assert load.returncode == 0, load.stderr
    assert "in force from 2026-10-01T02:00:00+02:00" in load.stdout
    assert "added: site demo, mould bracket-pp-4" in load.stdout
    again = _moldlab("load", str(v1), url=plant_db)
    assert (again.returncode, "no change" in again.stdout) == (0, True)
    load2 = _moldlab("load", str(v2), "--effective-from", "2026-11-15T06:00+01:00", url=plant_db)
    assert load2.returncode == 0, load2.stderr
    assert "changed: site demo, mould bracket-pp-4" in load2.stdout

    def bracket_line(at: str) -> str:
        show = _moldlab("show", "--at", at, url=plant_db)
        assert show.returncode == 0, show.stderr
        (line,) = [x for x in show.stdout.splitlines() if x.strip().startswith("bracket-pp-4")]
        return " ".join(line.split())

    assert (
        bracket_line("2026-11-15T04:59Z")
        == "bracket-pp-4 4 14.8 s 12 g PP since 2026-10-01 00:00 UTC"
    )
    assert (
        bracket_line("2026-11-15T05:00Z")
        == "bracket-pp-4 4 16.2 s 12 g PP since 2026-11-15 05:00 UTC"
    )
    show = _moldlab("show", url=plant_db)
    assert "holidays: 2026-12-25" in show.stdout
    assert "shift night        22:00-06:00  every day" in show.stdout
    assert "demo/hall-a/line-2/imm-02" in show.stdout
    empty = _moldlab("show", "--at", "2026-09-30T23:59Z", url=plant_db)
    assert "nothing: load a plant file" in empty.stdout

    late = _moldlab("load", str(v1), "--effective-from", "2026-11-01T00:00Z", url=plant_db)
    assert late.returncode == 1
    assert "mould bracket-pp-4: its newest version holds from 2026-11-15" in late.stderr


@pytest.mark.slow
def test_a_bad_plant_file_exits_2_with_file_line_field_and_writes_nothing(
    tmp_path: Path, plant_db: str
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        DEMO.replace("timezone: Europe/Rome", "timezone: Rome").replace(
            "cavities: 8", "cavities: 0"
        )
    )
    result = _moldlab("load", str(bad), url=plant_db)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{bad}:8: sites[0].timezone: unknown time zone 'Rome' (an IANA name: Europe/Rome)",
        f"{bad}:44: moulds[2].cavities: Input should be greater than or equal to 1",
    ]
    assert _counts(plant_db) == (0, 0, 0, 0)
    naive = _moldlab(
        "load", str(tmp_path / "v.yaml"), "--effective-from", "2026-11-01T00:00", url=plant_db
    )
    assert naive.returncode == 2
    assert "has no time zone" in naive.stderr


def test_the_demo_loads_the_plant_file_its_simulated_floor_follows(plant_db: str) -> None:
    from moldlab.plant_cli import load_demo_plant
    from simulators.scenario import load_scenario

    load_demo_plant(plant_db)
    load_demo_plant(plant_db)  # a restart: no second version
    assert _counts(plant_db) == (1, 5, 3, 1)

    async def check() -> None:
        now = datetime.now(UTC)
        async with await AsyncConnection.connect(plant_db) as conn:
            for spec in load_scenario("demo").machines:
                assert await calendar_at(conn, spec.site, now) == spec.calendar
                for mould in spec.moulds:
                    master = await mould_at(conn, mould.name, now)
                    assert master is not None
                    assert (master.cavities, master.part_weight_g) == (
                        mould.cavities,
                        mould.part_weight_g,
                    )
                place = (spec.site, spec.area, spec.line, spec.machine_id)
                assert await machine_at(conn, place, now) is not None

    asyncio.run(check())


@pytest.mark.parametrize(
    ("at", "problem"),
    [
        (datetime(9999, 12, 31, 23, 59, tzinfo=UTC), "is more than 366 days ahead of now"),
        (datetime(1969, 12, 31, tzinfo=UTC), "is before 1970"),
    ],
    ids=["far-ahead", "before-1970"],
)
async def test_a_load_effective_far_ahead_or_before_1970_is_refused_and_writes_nothing(
    conn: AsyncConnection, plant_db: str, at: datetime, problem: str
) -> None:
    # In force from 9999 it would block every later change to this master data for good.
    with pytest.raises(ValueError, match=re.escape(f"effective_from {at.isoformat()} {problem}")):
        await write_plant(conn, parse_plant(DEMO), at, "far")
    assert _counts(plant_db) == (0, 0, 0, 0)
    soon = datetime.now(UTC) + timedelta(days=300)
    assert len((await write_plant(conn, parse_plant(DEMO), soon, "soon")).added) == 9
