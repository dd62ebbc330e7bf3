"""The OpenAPI document engineers read at /docs describes every REST endpoint."""

from __future__ import annotations

from typing import Any

from contracts import PLACE_PATTERN
from dashboard_api import ApiSettings, create_app


def _spec() -> dict[str, Any]:
    app = create_app(ApiSettings(database_url="postgresql://unused@127.0.0.1:1/none"))
    return app.openapi()


def test_openapi_lists_the_endpoints_with_summaries() -> None:
    spec = _spec()
    paths = spec["paths"]
    assert set(paths) == {
        "/api/v1/health",
        "/api/v1/kiosk",
        "/api/v1/machines",
        "/api/v1/machines/{site}/{area}/{line}/{machine}/signals/{signal}/history",
        "/api/v1/machines/{site}/{area}/{line}/{machine}/jobs",
        "/api/v1/machines/{site}/{area}/{line}/{machine}/spc/{parameter}",
        "/api/v1/machines/{site}/{area}/{line}/{machine}/capability/{parameter}",
        "/api/v1/performance/{place}/oee",
        "/api/v1/performance/{place}/losses",
        "/api/v1/performance/{place}/downtime",
        "/api/v1/performance/{place}/reliability",
        "/api/v1/maintenance/predictions",
        "/api/v1/maintenance/alerts",
        "/api/v1/maintenance/model",
        "/api/v1/maintenance/alerts/{alert_id}/acknowledge",
        "/api/v1/auth/login",
        "/api/v1/auth/session",
        "/api/v1/auth/logout",
    }
    for path in paths.values():
        for op in path.values():
            assert op["summary"]
    assert "/api/v1/live" in spec["info"]["description"]
    assert "/api/v1/kiosk/live" in spec["info"]["description"]


def test_every_field_a_visitor_gets_is_described() -> None:
    spec = _spec()
    kiosk = spec["paths"]["/api/v1/kiosk"]["get"]
    assert kiosk["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Floor"
    }
    schemas = spec["components"]["schemas"]
    for name in ("Floor", "Output", "KioskMachine", "TimeShare", "PartCount", "TrendPoint",
                 "Factors", "MaintenanceStory", "WarnedBreakdown"):  # fmt: skip
        for field, schema in schemas[name]["properties"].items():
            if field not in {"parts", "maintenance", "factors"}:
                assert schema.get("description"), f"{name}.{field} has no description"


def test_openapi_says_how_machines_are_paged_and_bounded() -> None:
    spec = _spec()
    machines = spec["paths"]["/api/v1/machines"]["get"]
    params = {p["name"]: p for p in machines["parameters"]}
    assert params["limit"]["schema"]["maximum"] == 200
    assert params["limit"]["schema"]["default"] == 50
    assert "next" in params["after"]["description"]
    assert "place" in params["after"]["description"]
    assert "place" in spec["components"]["schemas"]["MachineOverview"]["properties"]
    assert "MOLDLAB_API_MAX_SIGNALS_PER_MACHINE" in machines["description"]
    assert "503" in machines["responses"]
    page = spec["components"]["schemas"]["MachinePage"]["properties"]
    assert set(page) == {"machines", "total", "next"}
    for name in ("MachinePage", "MachineOverview", "SignalValue", "HistoryPoint"):
        for field, schema in spec["components"]["schemas"][name]["properties"].items():
            if field not in {"site", "area", "line"}:
                assert schema.get("description"), f"{name}.{field} has no description"


def test_path_parameters_carry_the_wire_contract_patterns() -> None:
    history = _spec()["paths"][
        "/api/v1/machines/{site}/{area}/{line}/{machine}/signals/{signal}/history"
    ]["get"]
    params = {p["name"]: p["schema"] for p in history["parameters"]}
    for segment in ("site", "area", "line", "machine"):
        assert params[segment]["pattern"] == r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
    assert params["signal"]["pattern"] == r"^[A-Za-z][A-Za-z0-9_.]{0,63}$"
    machines = _spec()["paths"]["/api/v1/machines"]["get"]
    after = {p["name"]: p["schema"] for p in machines["parameters"]}["after"]
    assert after["anyOf"][0]["pattern"] == PLACE_PATTERN
