"""GET /api/v1/machines and the live hub stay bounded whatever the database holds."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from databases import migrated_database
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from dashboard_api.live import LiveHub

pytestmark = pytest.mark.infra

MACHINES = 3_000
SIGNALS = 300  # on one machine, beyond the default bound of 256
MAX_SIGNALS = 256  # MOLDLAB_API_MAX_SIGNALS_PER_MACHINE's default
# A machine's JSON without signals stays well under 1 kB (ids of 64 characters, a state,
# its reason, a cycle); a signal's entry under 200 bytes (a name of 64, a unit, a time).
MACHINE_BYTES, SIGNAL_BYTES = 1_000, 200


@dataclass(frozen=True)
class Floor:
    site: str  # every machine of this floor is on it, on one line
    keys: list[str]  # sorted
    busy: str  # the machine with SIGNALS signals

    def place(self, key: str) -> str:
        return f"{self.site}/hall/line-1/{key}"


@pytest.fixture(scope="module")
def database_url(database_server_url: str) -> Iterator[str]:
    """A database of this module's own: 3,000 machines in the suite's shared one would pass
    ingest's default limit of 1,000 machines for every test after this one."""
    with migrated_database(database_server_url, "moldlab_floor") as url:
        yield url


@pytest.fixture(scope="module")
async def floor(database_url: str) -> Floor:
    """3,000 machines written in one statement, one of them with 300 signals."""
    # "zz..." sorts after the places other tests use: their machines stay on the first pages.
    prefix = f"zz-{uuid.uuid4().hex[:8]}-"
    site = f"zz-load-{prefix[3:11]}"
    async with await AsyncConnection.connect(database_url, autocommit=True) as db:
        await db.execute(
            "INSERT INTO machine (machine_key, site, area, line, last_seen)"
            " SELECT %s || lpad(g::text, 5, '0'), %s, 'hall', 'line-1', now()"
            " FROM generate_series(1, %s) g",
            (prefix, site, MACHINES),
        )
        busy = f"{prefix}01500"
        await db.execute(
            "INSERT INTO signal (name, unit) SELECT %s || lpad(g::text, 3, '0'), 'bar'"
            " FROM generate_series(1, %s) g ON CONFLICT DO NOTHING",
            (f"Load{prefix[3:11]}S", SIGNALS),
        )
        await db.execute(
            "INSERT INTO latest_value (machine_id, signal_id, time, value)"
            " SELECT m.id, s.id, now(), s.id FROM machine m, signal s"
            " WHERE m.machine_key = %s AND m.site = %s AND s.name LIKE %s",
            (busy, site, f"Load{prefix[3:11]}S%"),
        )
        # A state and a cycle for a few, so that the page's lateral joins find something.
        await db.execute(
            "INSERT INTO machine_state (time, machine_id, state, reason, source, seq)"
            " SELECT now(), id, 'running', NULL, 'test', id FROM machine"
            " WHERE machine_key LIKE %s AND machine_key <= %s",
            (f"{prefix}%", f"{prefix}00010"),
        )
    keys = [f"{prefix}{g:05d}" for g in range(1, MACHINES + 1)]
    return Floor(site, keys, busy)


async def _page(http: httpx.AsyncClient, **params: Any) -> tuple[dict[str, Any], int, float]:
    started = time.monotonic()
    response = await http.get("/api/v1/machines", params=params)
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    return response.json(), len(response.content), elapsed


async def test_a_page_is_bounded_in_machines_signals_bytes_and_time(
    api_url: str, floor: Floor, engineer_headers: dict[str, str]
) -> None:
    async with httpx.AsyncClient(base_url=api_url, timeout=10, headers=engineer_headers) as http:
        body, size, _ = await _page(http)  # warm: the first request opens the pool
        assert len(body["machines"]) == 50  # the default page
        assert body["total"] >= MACHINES
        for limit in (1, 50, 200):
            # The page that holds the machine with 300 signals.
            after = floor.place(floor.keys[floor.keys.index(floor.busy) - 1])
            body, size, elapsed = await _page(http, limit=limit, after=after)
            machines = body["machines"]
            assert len(machines) == limit
            assert size < limit * MACHINE_BYTES + MAX_SIGNALS * SIGNAL_BYTES, size
            assert elapsed < 2.0, f"{elapsed:.2f} s for a page of {limit}"
            busy = machines[0]
            assert busy["machine_id"] == floor.busy
            assert busy["place"] == floor.place(floor.busy)
            assert len(busy["signals"]) == MAX_SIGNALS
            assert busy["signals_truncated"] is True
            assert list(busy["signals"]) == sorted(busy["signals"])  # the first ones by name
            assert all(len(m["signals"]) == 0 for m in machines[1:])
            assert all(not m["signals_truncated"] for m in machines[1:])


async def test_paging_with_after_walks_every_machine_exactly_once(
    api_url: str, floor: Floor, engineer_headers: dict[str, str]
) -> None:
    seen: list[str] = []
    pages = 0
    async with httpx.AsyncClient(base_url=api_url, timeout=10, headers=engineer_headers) as http:
        # The floor's places follow its line's own, which sorts just before them.
        after: str | None = f"{floor.site}/hall/line-1/0"
        while after is not None:
            body, _, _ = await _page(http, limit=200, after=after)
            pages += 1
            places = [m["place"] for m in body["machines"]]
            assert places == sorted(places)
            ours = [p for p in places if p.startswith(f"{floor.site}/")]
            seen += [p.rsplit("/", 1)[1] for p in ours]
            if len(ours) < len(places):
                break  # past the floor: another test's machines
            after = body["next"]
            assert after is None or after == places[-1]
    assert seen == floor.keys
    # 15 full pages, and a 16th when other machines sort after the floor's.
    assert pages <= MACHINES // 200 + 1


async def test_the_last_page_has_no_next(
    api_url: str, floor: Floor, engineer_headers: dict[str, str]
) -> None:
    async with httpx.AsyncClient(base_url=api_url, timeout=10, headers=engineer_headers) as http:
        body, _, _ = await _page(http, limit=200, after="/".join(["z" * 64] * 4))
    assert body == {"machines": [], "total": body["total"], "next": None}


async def test_the_live_hub_follows_at_most_its_cap(database_url: str, floor: Floor) -> None:
    async with AsyncConnectionPool(database_url, min_size=1, max_size=2) as pool:
        hub = LiveHub(pool, 0.05, max_machines=25, max_signals=10)
        assert len(await hub.overview()) == 25
        # Its first frame to a viewer: every machine it follows, whole, and no more.
        queue = hub.subscribe()
        task = asyncio.create_task(hub.run())
        try:
            frame = json.loads(await asyncio.wait_for(queue.get(), 10))
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert frame["type"] == "update"
        assert len(frame["machines"]) == 25
        assert all(len(m.get("signals", {})) <= 10 for m in frame["machines"])
