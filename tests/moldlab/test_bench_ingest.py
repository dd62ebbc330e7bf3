"""`moldlab bench ingest`: committed rate, latency and the COPY ceiling, as text or JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from moldlab.bench_ingest import Load, _quantile, _templates
from moldlab.cli import main


@pytest.mark.infra
def test_bench_ingest_json_has_every_figure(moldlab_cli: Callable[..., Any]) -> None:
    argv = ["bench", "ingest", "--quick", "--json", "--seconds", "3", "--machines", "2",
            "--signals", "10", "--rate", "2000", "--latency-rate", "1000"]  # fmt: skip
    result = moldlab_cli(*argv)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["command"] == (
        "moldlab bench ingest --seconds 3 --rate 2000 --latency-rate 1000 --machines 2 "
        "--signals 10 --batch-max-messages 500 --write-connections 2 --quick --json"
    )
    assert figures["machine"]["cores"] >= 1
    assert figures["servers"]["broker_max_inflight"] == 1000
    assert figures["servers"]["ingest_batch_max_messages"] == 500
    assert figures["servers"]["ingest_write_connections"] == 2

    for name, offered in (("saturation", 2000), ("latency", 1000)):
        phase = figures[name]
        assert phase["ingest_command"].endswith("-m moldlab ingest")
        assert "MOLDLAB_INGEST_BATCH_MAX_MESSAGES=500" in phase["ingest_command"]
        assert "MOLDLAB_INGEST_WRITE_CONNECTIONS=2" in phase["ingest_command"]
        assert phase["offered_readings_per_s"] == offered
        assert phase["published_readings_per_s"] == pytest.approx(offered, rel=0.2)
        # A light load: everything offered is committed at once.
        assert phase["committed_readings_per_s"] == pytest.approx(offered, rel=0.3)
        assert phase["committed_readings"] % 10 == 0
        assert phase["keeps_up"] is True
        assert abs(phase["backlog_end_messages"]) < 100
        assert phase["latency_clock"] == "commit timestamp"
        assert 0.0 < phase["latency_p50_s"] <= phase["latency_p99_s"] <= phase["latency_max_s"]
        assert phase["latency_p99_s"] < 2.0
        assert 10.0 < phase["ingest_peak_rss_mb"] < 1000.0
        assert set(phase["cpu_pct"]) == {"ingest", "generator", "postgres", "broker"}

    ceiling = figures["ceiling"]
    assert ceiling["rows"] >= figures["saturation"]["committed_readings"]
    assert ceiling["rows_per_s"] > 10_000
    assert 0.0 < ceiling["ingest_ratio"] < 1.0
    assert figures["targets"]["committed_readings_per_s"]["judged"] is False
    assert figures["targets"]["latency_p99_s"]["judged"] is False


def test_bench_ingest_wants_a_30_s_window(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "ingest", "--seconds", "10"]) == 2
    assert "at least 30" in capsys.readouterr().err
    assert main(["bench", "ingest", "--rate", "0"]) == 2
    assert "must be positive" in capsys.readouterr().err


def test_load_shape_and_payload_templates() -> None:
    load = Load(machines=50, signals=200, rate=100_000)
    assert load.interval_s == pytest.approx(0.1)
    [(topic, holed, ts_first)] = _templates(Load(1, 3, 30))
    assert topic == "moldlab/v1/bench/hall/line1/bench001/telemetry"
    args = (b"2026-01-02T03:04:05.000006Z", 1767323045000006)
    payload = holed % (args if ts_first else args[::-1])
    from contracts import TelemetryBatch, decode

    message = decode(payload)
    assert isinstance(message, TelemetryBatch)
    assert message.seq == 1767323045000006
    assert message.ts.isoformat() == "2026-01-02T03:04:05.000006+00:00"
    assert [r.signal for r in message.readings] == ["bench.s000", "bench.s001", "bench.s002"]


def test_quantile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert _quantile(values, 0.5) == 50.0
    assert _quantile(values, 0.99) == 99.0
    assert _quantile([3.0], 0.99) == 3.0
