"""`moldlab bench api` prints its figures and the command that made them (a small run)."""

from __future__ import annotations

import json

import pytest

from moldlab.cli import main

pytestmark = [pytest.mark.infra, pytest.mark.slow]


def test_bench_api_measures_rest_and_kiosk_clients_side_by_side(
    database_server_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["bench", "api", "--clients", "30", "--rest-clients", "2", "--rest-rate", "20",
            "--window-s", "3", "--machines", "3", "--days", "0.5",
            "--database-url", database_server_url]  # fmt: skip
    assert main([*args, "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["command"].startswith("moldlab bench api --clients 30 --rest-clients 2")
    assert figures["clients_connected"] == 30
    assert figures["clients_failed"] == 0
    baseline, loaded = figures["windows"]
    assert (baseline["ws_clients"], loaded["ws_clients"]) == (0, 30)
    assert baseline["pictures"] == 0
    # One picture a second to each client (the window is 3 s: 2 to 4 of them each).
    assert 30 * 2 <= loaded["pictures"] <= 30 * 4
    for window in (baseline, loaded):
        assert window["rest_requests"] > 0
        assert window["rest_errors"] == 0
        assert 0 < window["rest_p50_ms"] <= window["rest_p99_ms"]
        assert window["api_cpu_pct"] > 0
    assert 0 < loaded["picture_age_p50_ms"] <= loaded["picture_age_p99_ms"]
    assert figures["picture_bytes"] > 1000


def test_bench_api_refuses_nonsense(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "api", "--clients", "0"]) == 2
    assert "every number must be positive" in capsys.readouterr().err
