"""The OpenAPI document engineers read at /docs describes every REST endpoint."""

from __future__ import annotations

from dashboard_api import ApiSettings, create_app


def test_openapi_lists_the_endpoints_with_summaries() -> None:
    app = create_app(ApiSettings(database_url="postgresql://unused@127.0.0.1:1/none"))
    spec = app.openapi()
    paths = spec["paths"]
    assert set(paths) == {
        "/api/v1/health",
        "/api/v1/machines",
        "/api/v1/machines/{machine_id}/signals/{signal}/history",
    }
    for path in paths.values():
        assert path["get"]["summary"]
    assert "/api/v1/live" in spec["info"]["description"]
