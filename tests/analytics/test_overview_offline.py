"""A machine shows offline when what brings its data died: its own source, or its gateway."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from psycopg import AsyncConnection

from analytics import MachineOverview, machine_page

pytestmark = pytest.mark.infra

T = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)  # the gateway's death


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[AsyncConnection]:
    async with await AsyncConnection.connect(database_url, autocommit=True) as c:
        yield c


class Floor:
    """Two sites with the same ids: imm-01 served by gateway pi-1, imm-02 MQTT-native."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        tag = uuid.uuid4().hex[:8]
        self.tag = f"0{tag}"
        self.a, self.b = f"{self.tag}-a", f"{self.tag}-b"  # side by side, by place
        self.seq = 0

    def place(self, site: str, machine: str) -> str:
        return f"{site}/hall/line-1/{machine}"

    async def machine(self, site: str, key: str, last_seen: datetime) -> None:
        cur = await self.conn.execute(
            "INSERT INTO machine (machine_key, site, area, line, last_seen)"
            " VALUES (%s, %s, 'hall', 'line-1', %s) RETURNING id",
            (key, site, last_seen),
        )
        row = await cur.fetchone()
        assert row is not None
        await self.conn.execute(
            "INSERT INTO machine_state (time, machine_id, state, reason, source, seq)"
            " VALUES (%s, %s, 'running', NULL, 'test', %s)",
            (T - timedelta(hours=1), row[0], self._seq()),
        )

    async def status(self, key: str, online: bool, received_at: datetime) -> None:
        await self.conn.execute(
            "INSERT INTO edge_status (time, edge_key, online, detail, source, seq, received_at)"
            " VALUES (%s, %s, %s, NULL, 'test', %s, %s)",
            # The will's own time is its session's start, long before: it must not matter.
            (T - timedelta(days=1), key, online, self._seq(), received_at),
        )

    async def seen(self, site: str, key: str, last_seen: datetime) -> None:
        await self.conn.execute(
            "UPDATE machine SET last_seen = %s WHERE place = %s", (last_seen, self.place(site, key))
        )

    async def overview(self) -> dict[str, MachineOverview]:
        page = await machine_page(self.conn, limit=4, max_signals=1, after=self.tag)
        return {m.place: m for m in page.machines if m.site in {self.a, self.b}}

    def _seq(self) -> int:
        self.seq += 1
        return self.seq


async def test_a_dead_gateway_takes_its_machines_offline_until_data_newer_than_its_death(
    conn: AsyncConnection,
) -> None:
    floor = Floor(conn)
    a, b = floor.a, floor.b
    for site in (a, b):
        await floor.machine(site, "imm-01", T - timedelta(seconds=2))
        await floor.machine(site, "imm-02", T - timedelta(seconds=2))
        await floor.status(floor.place(site, "pi-1"), True, T - timedelta(hours=2))
        await conn.execute(
            "INSERT INTO gateway_machine (machine, gateway) VALUES (%s, %s)",
            (floor.place(site, "imm-01"), floor.place(site, "pi-1")),
        )
    gateway_a = floor.place(a, "pi-1")
    imm01_a, imm01_b = floor.place(a, "imm-01"), floor.place(b, "imm-01")
    shown = await floor.overview()
    assert [m.state for m in shown.values()] == ["running"] * 4
    assert list(shown) == sorted(shown)  # by place

    await floor.status(gateway_a, False, T)
    shown = await floor.overview()
    lost = shown[imm01_a]
    assert (lost.state, lost.state_reason, lost.state_since) == ("offline", "gateway lost", T)
    # The other site's imm-01 and pi-1 are other ones; imm-02 is not served by the gateway.
    assert shown[imm01_b].state == "running"
    assert shown[floor.place(a, "imm-02")].state == "running"

    # A backlog timestamped before the death, written after it, brings nothing back.
    await floor.seen(a, "imm-01", T - timedelta(milliseconds=1))
    assert (await floor.overview())[imm01_a].state == "offline"
    # Data newer than the death does: the machine shows its last state again.
    await floor.seen(a, "imm-01", T + timedelta(seconds=1))
    back = (await floor.overview())[imm01_a]
    assert (back.state, back.state_reason) == ("running", None)
    # So does the gateway's next birth, with no newer data.
    await floor.seen(a, "imm-01", T - timedelta(seconds=1))
    assert (await floor.overview())[imm01_a].state == "offline"
    await floor.status(gateway_a, True, T + timedelta(seconds=5))
    assert (await floor.overview())[imm01_a].state == "running"


async def test_a_dead_source_takes_its_own_machine_offline(conn: AsyncConnection) -> None:
    floor = Floor(conn)
    await floor.machine(floor.a, "imm-02", T - timedelta(seconds=1))
    await floor.machine(floor.b, "imm-02", T - timedelta(seconds=1))
    # The simulator's will: made (and numbered) before its birth, received after it.
    own = floor.place(floor.a, "imm-02")
    await floor.status(own, True, T - timedelta(minutes=1))
    await floor.status(own, False, T)
    shown = await floor.overview()
    dead = shown[own]
    assert (dead.state, dead.state_reason, dead.state_since) == ("offline", "source offline", T)
    assert shown[floor.place(floor.b, "imm-02")].state == "running"
