"""The API's metrics for Prometheus: on a port of their own, bounded series, what it counts."""

from __future__ import annotations

import httpx
import pytest
from places import serve_api
from prometheus_client.parser import text_string_to_metric_families

from dashboard_api import ApiSettings
from moldlab.servers.process import free_port

pytestmark = pytest.mark.infra


async def test_requests_sockets_and_the_rollup_are_counted_on_the_metrics_port_only(
    database_url: str,
) -> None:
    port = free_port()
    settings = ApiSettings(database_url=database_url, api_metrics_port=port)
    async with serve_api(settings) as base, httpx.AsyncClient(timeout=10) as http:
        assert (await http.get(f"{base}/api/v1/kiosk")).status_code == 200
        assert (await http.get(f"{base}/api/v1/machines")).status_code == 401
        for n in range(50):  # a visitor trying paths makes no new series
            assert (await http.get(f"{base}/no/such/{n}")).status_code == 404
        assert (await http.get(f"{base}/metrics")).status_code == 404  # not on the public port
        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }

    def requests(route: str, status: str) -> float:
        return samples.get(
            ("moldlab_api_requests_total", (("route", route), ("status", status))), 0.0
        )

    assert requests("/api/v1/kiosk", "200") == 1
    assert requests("/api/v1/machines", "401") == 1
    assert requests("unmatched", "404") == 51  # and /metrics on the public port
    routes = {
        dict(labels).get("route")
        for name, labels in samples
        if name == "moldlab_api_requests_total"
    }
    assert routes == {"/api/v1/kiosk", "/api/v1/machines", "unmatched"}
    for name in (
        "moldlab_api_kiosk_clients", "moldlab_api_live_clients",
        "moldlab_api_rollup_passes_total", "moldlab_api_rollup_failures_total",
        "moldlab_api_database_connections",
    ):  # fmt: skip
        assert (name, ()) in samples, name
    assert samples[("moldlab_api_kiosk_clients", ())] == 0
