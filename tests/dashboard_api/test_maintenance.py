"""GET /api/v1/maintenance/...: the newest predictions, the alerts and the model card in force,
as the scorer wrote them, and an OpenAPI description for every field."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from pdm_rows import scored_site
from psycopg import AsyncConnection

from dashboard_api import ApiSettings, create_app
from store.maintenance import acknowledge

pytestmark = pytest.mark.infra

H = timedelta(hours=1)


async def test_predictions_alerts_and_the_model_card(
    api_url: str,
    db: AsyncConnection[Any],
    engineer_headers: dict[str, str],
) -> None:
    site, worn, fine, alert_id, t0 = await scored_site(db)
    async with httpx.AsyncClient(base_url=api_url, timeout=10, headers=engineer_headers) as http:
        r = await http.get("/api/v1/maintenance/predictions", params={"place": site})
        assert r.status_code == 200
        rows = r.json()["predictions"]
        assert [(p["place"], p["component"]) for p in rows] == sorted(
            (m.place, c) for m in (worn, fine) for c in ("check_ring", "ejector")
        )
        ring = {p["place"]: p for p in rows if p["component"] == "check_ring"}
        assert ring[worn.place]["alarm"] is True
        assert ring[fine.place]["alarm"] is False
        assert ring[worn.place]["p_24h"] == 0.95
        assert datetime.fromisoformat(ring[worn.place]["time"]) == t0 + 2 * H
        assert ring[worn.place]["evidence"] == [
            {"feature": "cushion", "value": 3.0, "baseline": 5.0, "text": "cushion 3.00 mm"}
        ]
        one = await http.get("/api/v1/maintenance/predictions", params={"place": fine.place})
        assert {p["place"] for p in one.json()["predictions"]} == {fine.place}

        r = await http.get("/api/v1/maintenance/alerts", params={"place": site})
        (alert,) = r.json()["alerts"]
        assert alert["id"] == alert_id
        assert alert["place"] == worn.place
        assert (alert["status"], alert["component"], alert["acknowledged_by"]) == (
            "open", "check_ring", None
        )  # fmt: skip
        await acknowledge(db, alert_id, "Ada")
        r = await http.get(
            "/api/v1/maintenance/alerts", params={"place": site, "status": ["acknowledged"]}
        )
        assert [(a["id"], a["acknowledged_by"]) for a in r.json()["alerts"]] == [(alert_id, "Ada")]
        r = await http.get("/api/v1/maintenance/alerts", params={"place": site, "status": "closed"})
        assert r.json()["alerts"] == []
        bad = await http.get("/api/v1/maintenance/alerts", params={"status": "gone"})
        assert bad.status_code == 422
        bad = await http.get("/api/v1/maintenance/predictions", params={"place": "a/b/c/d/e"})
        assert bad.status_code == 422

        r = await http.get("/api/v1/maintenance/model")
        assert r.status_code == 200
        assert r.json()["name"] == f"cushion-{site}"
        assert r.json()["card"] == {"name": "cushion-test", "test": True}


def test_every_field_is_described_and_only_a_login_writes() -> None:
    spec = create_app(ApiSettings(database_url="postgresql://unused@127.0.0.1:1/none")).openapi()
    paths = {p: ops for p, ops in spec["paths"].items() if "/maintenance/" in p}
    ack = "/api/v1/maintenance/alerts/{alert_id}/acknowledge"
    assert set(paths) == {
        "/api/v1/maintenance/predictions", "/api/v1/maintenance/alerts",
        "/api/v1/maintenance/model", ack,
    }  # fmt: skip
    for path, ops in paths.items():
        # Reading is open; acknowledging needs an engineer's session and its CSRF token.
        (method,) = ops
        assert method == ("post" if path == ack else "get")
        assert ops[method]["summary"]
        assert ops[method]["description"]
        for param in ops[method].get("parameters", []):
            assert param.get("description"), param["name"]
    assert {"401", "403", "404", "409"} <= set(paths[ack]["post"]["responses"])
    schemas = spec["components"]["schemas"]
    for name in ("Prediction", "Predictions", "Alert", "Alerts", "Evidence", "ModelCard"):
        for field, schema in schemas[name]["properties"].items():
            assert schema.get("description"), f"{name}.{field} has no description"


@pytest.mark.parametrize(
    ("path", "params", "says"),
    [
        ("predictions", {"place": "s" * 10_000}, "at most 259 characters"),
        ("alerts", {"place": "s" * 10_000}, "at most 259 characters"),
        ("predictions", {"place": "site\x00"}, "should match pattern"),
        ("predictions", {"place": "ü/../x"}, "should match pattern"),
        ("predictions", {"limit": 0}, "greater than or equal to 1"),
        ("predictions", {"limit": 10**9}, "less than or equal to 10000"),
        ("alerts", {"limit": 0}, "greater than or equal to 1"),
        ("alerts", {"limit": -1}, "greater than or equal to 1"),
        ("alerts", {"limit": 10**9}, "less than or equal to 500"),
        ("alerts", {"limit": "1e3"}, "valid integer"),
        ("alerts", {"status": "bogus"}, "'open', 'acknowledged' or 'closed'"),
    ],
)
async def test_bad_query_parameters_are_422_with_a_clear_message(
    api_url: str,
    path: str,
    params: dict[str, Any],
    says: str,
    engineer_headers: dict[str, str],
) -> None:
    async with httpx.AsyncClient(base_url=api_url, timeout=10, headers=engineer_headers) as http:
        r = await http.get(f"/api/v1/maintenance/{path}", params=params)
    assert r.status_code == 422, r.text
    assert says in r.text
    assert len(r.content) < 20_000  # the bad value is not echoed back at length


async def test_non_finite_rows_never_reach_the_json(
    api_url: str, db: AsyncConnection[Any], engineer_headers: dict[str, str]
) -> None:
    """A row with NaN or Infinity (hand-made, or an older scorer's: the p columns have CHECKs,
    the RUL columns have none) is left out, never a 500 or a JSON the client cannot parse."""
    site, _, fine, alert_id, _ = await scored_site(db)
    await db.execute(
        "UPDATE pdm_prediction_latest SET rul_low_h = 'NaN', rul_h = 'Infinity'"
        " WHERE machine_id = %s"
        " AND component = 'ejector'",
        (fine.id,),
    )
    await db.execute("UPDATE pdm_alert SET rul_h = '-Infinity' WHERE id = %s", (alert_id,))
    async with httpx.AsyncClient(base_url=api_url, timeout=10, headers=engineer_headers) as http:
        r = await http.get("/api/v1/maintenance/predictions", params={"place": site})
        assert r.status_code == 200
        shown = {(p["place"], p["component"]) for p in r.json()["predictions"]}
        assert (fine.place, "ejector") not in shown
        assert len(r.json()["predictions"]) == 3
        assert "NaN" not in r.text
        assert "Infinity" not in r.text
        r = await http.get("/api/v1/maintenance/alerts", params={"place": site, "limit": 1})
        assert r.status_code == 200
        assert r.json()["alerts"] == []
        r = await http.get("/api/v1/maintenance/predictions", params={"place": site, "limit": 2})
        assert len(r.json()["predictions"]) == 2
        r = await http.get("/api/v1/maintenance/model", params={"limit": "x" * 10_000})
        assert r.status_code == 200  # an unknown parameter is ignored, as everywhere
