"""Ingest knows a machine by its place, and a gateway by its status topic's place.

Two sites' imm-01 are two machines, each counted against its own site's limit; a gateway's
birth records the machines it serves, and its death is logged once with how many it took.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import psycopg
import pytest

from contracts import EdgeStatus, Place, Reading, TelemetryBatch, Topic, encode
from contracts.codec import AnyMessage
from ingest import Inbound, Limits, RejectedMessage, Writer
from ingest.metrics import reject_reason
from ingest.validation import validate

pytestmark = pytest.mark.infra

NOW = datetime.now(UTC).replace(microsecond=0)


def _inbound(place: Place, message: AnyMessage) -> Inbound:
    topic = Topic(place.site, place.area, place.line, place.machine, message.kind)
    return Inbound(str(topic), encode(message), NOW)


def _telemetry(place: Place, seq: int, value: float) -> Inbound:
    message = TelemetryBatch(
        machine_id=place.machine, ts=NOW, source=f"src-{place.site}-{place.machine}", seq=seq,
        readings=[Reading(signal="TempNozzle", offset_ms=0, value=value)],
    )  # fmt: skip
    return _inbound(place, message)


def _status(gateway: Place, seq: int, online: bool, machines: list[Place] | None = None) -> Inbound:
    message = EdgeStatus(
        machine_id=gateway.machine, ts=NOW, source=f"{gateway.site}-{gateway.machine}", seq=seq,
        online=online, machines=None if machines is None else [str(m) for m in machines],
    )  # fmt: skip
    return _inbound(gateway, message)


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[psycopg.AsyncConnection]:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as c:
        yield c


def _sites() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8]
    return f"demo-a-{tag}", f"demo-b-{tag}"


async def test_the_same_id_on_two_sites_is_two_machines_each_within_its_sites_limit(
    conn: psycopg.AsyncConnection,
) -> None:
    site_a, site_b = _sites()
    a, b = Place(site_a, "hall", "line-1", "imm-01"), Place(site_b, "hall", "line-1", "imm-01")
    writer = Writer(conn, Limits(max_machines_per_site=1))
    result = await writer.write([_telemetry(a, 1, 210.0), _telemetry(b, 1, 250.0)])
    assert (result.messages, result.rejected) == (2, 0)
    cur = await conn.execute(
        "SELECT m.place, m.machine_key, t.value FROM machine m"
        " JOIN telemetry t ON t.machine_id = m.id WHERE m.site = ANY(%s) ORDER BY m.place",
        ([site_a, site_b],),
    )
    assert await cur.fetchall() == [(str(a), "imm-01", 210.0), (str(b), "imm-01", 250.0)]
    assert writer.dimensions.machines[a] != writer.dimensions.machines[b]
    # A second machine on site A passes its limit of one; site B's imm-01 did not count there.
    c = Place(site_a, "hall", "line-1", "imm-02")
    result = await writer.write([_telemetry(c, 1, 1.0), _telemetry(a, 2, 211.0)])
    assert (result.messages, result.rejected) == (1, 1)
    cur = await conn.execute(
        "SELECT reason FROM rejected_message WHERE topic LIKE %s", (f"%/{site_a}/%",)
    )
    [(reason,)] = await cur.fetchall()
    assert reason.startswith(f"limit: site {site_a} has 1 machines")
    assert reason.endswith(f"new machine {c} refused")
    # A new writer (another worker, a restart) finds each machine by its place.
    again = Writer(conn)
    assert (await again.write([_telemetry(b, 2, 251.0)])).messages == 1
    assert again.dimensions.machines[b] == writer.dimensions.machines[b]


async def _served(conn: psycopg.AsyncConnection, gateway: Place) -> list[str]:
    cur = await conn.execute(
        "SELECT machine FROM gateway_machine WHERE gateway = %s ORDER BY machine", (str(gateway),)
    )
    return [str(row[0]) for row in await cur.fetchall()]


async def test_a_birth_records_the_gateways_machines_and_its_death_is_logged_once(
    conn: psycopg.AsyncConnection, caplog: pytest.LogCaptureFixture
) -> None:
    site_a, site_b = _sites()
    gateway = Place(site_a, "hall", "line-1", "pi-1")
    twin = Place(site_b, "hall", "line-1", "pi-1")  # the same gateway id on another site
    m1, m2, m3 = (Place(site_a, "hall", "line-1", f"imm-0{i}") for i in (1, 2, 3))
    writer = Writer(conn)
    result = await writer.write(
        [_status(gateway, 1, True, [m1, m2, m3, m1]), _status(twin, 1, True, [])]
    )
    assert result.messages == 2  # written, and counted on the throughput line
    assert await _served(conn, gateway) == [str(m1), str(m2), str(m3)]
    # Its next birth (a config without imm-03) lets imm-03 go.
    await writer.write([_status(gateway, 2, False), _status(gateway, 3, True, [m1, m2])])
    assert await _served(conn, gateway) == [str(m1), str(m2)]
    cur = await conn.execute(
        "SELECT edge_key, online FROM edge_status WHERE edge_key = ANY(%s) ORDER BY received_at",
        ([str(gateway), str(twin)],),
    )
    assert await cur.fetchall() == [
        (str(gateway), True), (str(twin), True), (str(gateway), False), (str(gateway), True)
    ]  # fmt: skip

    caplog.clear()
    caplog.set_level(logging.WARNING, logger="ingest.gateways")
    will = _status(gateway, 4, False)
    await writer.write([will, _status(twin, 2, False)])
    await writer.write([will])  # redelivered: written, and said, once
    lost = [r.getMessage() for r in caplog.records if r.name == "ingest.gateways"]
    assert lost == [f"gateway pi-1 at {site_a}/hall/line-1 lost: 2 machines offline"]
    assert len(lost[0]) < 300


def test_a_birth_listing_a_machine_off_the_gateways_line_is_refused() -> None:
    # Its death would take that machine offline: a gateway serves its own line (edge.config),
    # and an invented gateway elsewhere on the site took over the demo's machines this way.
    ours, theirs = _sites()
    gateway = Place(ours, "hall", "line-1", "pi-1")
    own = Place(ours, "hall", "line-1", "imm-01")
    validate(_status(gateway, 1, True, [own]), Limits())
    for other in (
        Place(theirs, "hall", "line-1", "imm-01"),
        Place(ours, "hall-b", "line-1", "imm-01"),
        Place(ours, "hall", "line-2", "imm-01"),
    ):
        with pytest.raises(RejectedMessage, match=f"contradicts topic line '{ours}/hall/line-1'"):
            validate(_status(gateway, 2, True, [own, other]), Limits())
        assert reject_reason(f"machines: {other} contradicts topic line x") == "mismatch"


async def test_births_of_invented_gateways_record_no_more_machines_than_a_site_may_have(
    conn: psycopg.AsyncConnection, caplog: pytest.LogCaptureFixture
) -> None:
    # 2,000 births of invented gateways listing 500 invented machines each filled
    # gateway_machine with a million rows; it holds no more than the site's machine limit.
    site, _ = _sites()
    caplog.set_level(logging.WARNING, logger="ingest.gateways")
    writer = Writer(conn, Limits(max_machines_per_site=5))
    births = [
        _status(
            Place(site, "hall", "line-1", f"pi-{g}"), 1, True,
            [Place(site, "hall", "line-1", f"imm-{g}-{m}") for m in range(3)],
        )
        for g in range(4)
    ]  # fmt: skip
    for birth in births:
        await writer.write([birth])
    cur = await conn.execute(
        "SELECT count(*) FROM gateway_machine WHERE starts_with(machine, %s)", (f"{site}/",)
    )
    assert await cur.fetchone() == (5,)
    limited = [r.getMessage() for r in caplog.records if "limit reached" in r.getMessage()]
    assert len(limited) == 1, limited
    assert f"site {site} has 3 machines served by gateways" in limited[0]
