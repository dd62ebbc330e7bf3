"""The demo's plant file: from 1970 into an empty database, merged on every later start."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from databases import migrated_database
from psycopg import AsyncConnection

from moldlab.plant_cli import load_demo_plant
from plant import parse_plant
from plant.plantfile import EARLIEST
from simulators.scenario import PACKAGED, load_scenario
from store.plant import calendar_at, mould_at, plant_at, site_versions, write_plant

pytestmark = pytest.mark.infra

DEMO = (PACKAGED / "demo-plant.yaml").read_text()

# The user's own plant file, loaded into the demo's database: a site of its own with a
# machine and a mould, the demo's bracket-pp-4 re-timed, and the demo's cap-pp-8 left out.
USER = (
    DEMO.replace("ideal_cycle_s: 14.8", "ideal_cycle_s: 16.2", 1)
    .replace("  - id: cap-pp-8\n", "  - id: g-mould\n", 1)
    .replace(
        "sites:\n",
        "sites:\n  - id: gsite\n    name: Tester's site\n    timezone: UTC\n    calendar:\n"
        '      shifts:\n        - {name: day, start: "06:00", end: "18:00"}\n',
        1,
    )
    .replace(
        "machines:                          # where each press stands, and its nominal data\n",
        "machines:\n  - {site: gsite, area: hall, line: l1, id: m1}\n",
        1,
    )
)


@pytest.fixture
def demo_db(database_server_url: str) -> Iterator[str]:
    with migrated_database(database_server_url, "moldlab_demo_plant") as url:
        yield url


def _load_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "moldlab.demo"]


def test_a_fresh_database_gets_the_demo_plant_in_force_from_1970(
    demo_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="moldlab.demo")
    load_demo_plant(demo_db)
    (line,) = _load_lines(caplog)
    assert "in force from 1970-01-01T00:00:00+00:00: 9 added, 0 changed, 0 retired" in line

    async def check() -> None:
        async with await AsyncConnection.connect(demo_db) as conn:
            found = await plant_at(conn, datetime.now(UTC))
            since = [v.valid_from for v in found.sites]
            since += [v.valid_from for v in found.moulds]
            since += [v.valid_from for v in found.machines]
            assert since == [EARLIEST] * 9
            # Data from before the demo's first start is judged by its calendar and moulds.
            before = datetime(2001, 3, 4, 12, tzinfo=UTC)
            spec = load_scenario("demo").machines[0]
            assert await calendar_at(conn, spec.site, before) == spec.calendar
            bracket = await mould_at(conn, "bracket-pp-4", before)
            assert bracket is not None
            assert bracket.ideal_cycle_s == 14.8

    asyncio.run(check())
    caplog.clear()
    load_demo_plant(demo_db)  # a restart: nothing new
    assert _load_lines(caplog) == [
        f"plant file {PACKAGED / 'demo-plant.yaml'}: already in the database"
    ]


def test_a_restart_keeps_what_the_user_loaded_and_restores_only_the_demo_file(
    demo_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    load_demo_plant(demo_db)

    async def user_load() -> None:
        async with await AsyncConnection.connect(demo_db) as conn:
            result = await write_plant(conn, parse_plant(USER), datetime.now(UTC), "user")
        assert sorted(result.added) == ["machine gsite/hall/l1/m1", "mould g-mould", "site gsite"]
        assert result.changed == ["mould bracket-pp-4"]
        assert result.retired == ["mould cap-pp-8"]

    asyncio.run(user_load())
    caplog.set_level(logging.INFO, logger="moldlab.demo")
    restart = datetime.now(UTC)
    load_demo_plant(demo_db)
    (line,) = _load_lines(caplog)
    assert "1 added, 1 changed, 0 retired (added mould cap-pp-8; changed mould bracket-pp-4)" in (
        line
    )

    async def check() -> None:
        async with await AsyncConnection.connect(demo_db) as conn:
            found = await plant_at(conn, datetime.now(UTC))
            # What the user loaded and the demo's file does not name stays in force ...
            assert [v.item.id for v in found.sites] == ["demo", "gsite"]
            assert sorted(v.item.id for v in found.moulds) == [
                "bracket-pp-4", "cap-pp-8", "crate-clip-pp-2", "g-mould", "housing-abs-2",
                "lid-hdpe-1",
            ]  # fmt: skip
            assert ("gsite", "hall", "l1", "m1") in [v.item.place for v in found.machines]
            (gsite,) = await site_versions(conn, "gsite", EARLIEST, datetime.now(UTC))
            assert gsite.valid_to is None
            # ... and the demo's file wins for what it names, from the restart on.
            bracket = next(v for v in found.moulds if v.item.id == "bracket-pp-4")
            assert bracket.item.ideal_cycle_s == 14.8
            assert bracket.valid_from >= restart

    asyncio.run(check())
