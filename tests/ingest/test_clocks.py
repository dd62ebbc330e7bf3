"""Publishers' clocks: the offset of each from its freshest message, reported once each way."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry, Gauge

from contracts import MachineState, Reading, StateChange, TelemetryBatch, encode
from ingest.clocks import MAX_GATEWAYS, Clocks
from ingest.validation import Inbound, Limits
from ingest.writer import prepare

NOW = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)


def _inbound(source: str, seq: int, ts: datetime, *, last_offset_ms: int | None = None) -> Inbound:
    if last_offset_ms is None:
        message: StateChange | TelemetryBatch = StateChange(
            machine_id="imm-01", ts=ts, source=source, seq=seq, state=MachineState.RUNNING
        )
        kind = "state"
    else:
        readings = [
            Reading(signal="TempZone1", offset_ms=offset, value=200.0)
            for offset in (0, last_offset_ms)
        ]
        message = TelemetryBatch(
            machine_id="imm-01", ts=ts, source=source, seq=seq, readings=readings
        )
        kind = "telemetry"
    return Inbound(f"moldlab/v1/s/a/l/imm-01/{kind}", encode(message), NOW)


def test_a_batch_keeps_each_publishers_freshest_message_against_its_arrival() -> None:
    prepared = prepare(
        [
            _inbound("pi-1:imm-01", 1, NOW - timedelta(hours=2)),  # from an outbox's backlog
            _inbound("pi-1:imm-01", 2, NOW - timedelta(seconds=2), last_offset_ms=900),
            _inbound("pi-1:imm-02", 3, NOW - timedelta(seconds=5)),
            _inbound("pi-2:imm-01", 4, NOW + timedelta(seconds=90)),  # a clock ahead
        ],
        Limits(),
    )
    assert prepared.ahead_s == {"pi-1": pytest.approx(-1.1), "pi-2": pytest.approx(90.0)}


def _clocks(max_skew_s: float = 10.0) -> tuple[Clocks, Gauge, list[float]]:
    now = [0.0]
    gauge = Gauge("ahead", "test", ["publisher"], registry=CollectorRegistry())
    return Clocks(gauge, max_skew_s, window_s=60, clock=lambda: now[0]), gauge, now


def test_a_clock_off_by_more_than_the_setting_is_told_once_and_once_when_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="ingest.clocks")
    clocks, gauge, now = _clocks()
    for minute in range(3):  # three windows with the clock 5 min behind
        now[0] = minute * 60.0
        clocks.observe({"pi-1": -7200.0, "pi-2": -0.4})  # a backlog: hours behind
        clocks.observe({"pi-1": -300.2})  # its freshest: the clock, 5 min behind
    now[0] = 180.0
    clocks.observe({"pi-1": -0.8})  # NTP set it right
    now[0] = 240.0
    clocks.observe({})
    assert gauge.labels("pi-1")._value.get() == -0.8
    assert gauge.labels("pi-2")._value.get() == -0.4
    said = [r.getMessage() for r in caplog.records]
    assert said == [
        "the clock of pi-1 is 300 s behind ingest's (its freshest message in the last 60 s); "
        "its data is stored at its own times: check its NTP",
        "the clock of pi-1 is within 10 s of ingest's again",
    ]


def test_a_flood_of_made_up_publishers_keeps_a_bounded_set_of_gauges(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clocks, _, now = _clocks()
    for window in range(3):
        clocks.observe({f"pi-{window}-{n}": 0.0 for n in range(MAX_GATEWAYS)})
        now[0] += 60.0
        clocks.observe({})
    assert len(clocks.offsets) == MAX_GATEWAYS
    assert sum("are not" in r.getMessage() for r in caplog.records) == 1
