"""GET .../spc/{parameter} and .../capability/{parameter}: charts and capability over HTTP."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from databases import migrated_database
from performance import Floor
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from analytics.spc_query import MAX_POINTS
from dashboard_api import ApiSettings, create_app
from plant import parse_plant
from store.plant import write_plant

T0 = datetime(2026, 10, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
SPC = "/api/v1/machines/{}/spc/{}"
CAPABILITY = "/api/v1/machines/{}/capability/{}"

PLANT = """
sites:
  - id: spc
    name: SPC test site
    timezone: Europe/Rome
    calendar:
      shifts: [{name: day, start: "06:00", end: "14:00"}]
moulds:
  - id: m-a
    cavities: 1
    ideal_cycle_s: 15.0
    part_weight_g: 12.0
    material: PP
    limits:
      PartWeight: {lower: 11.0, upper: 13.0, target: 12.0}
"""


def exactly(value: float) -> object:
    return pytest.approx(value, abs=1e-9, rel=0)


def _spec() -> dict[str, Any]:
    return create_app(ApiSettings(database_url="postgresql://unused@127.0.0.1:1/none")).openapi()


def test_openapi_states_the_definitions_and_describes_every_field() -> None:
    spec = _spec()
    prefix = "/api/v1/machines/{site}/{area}/{line}/{machine}"
    chart = spec["paths"][prefix + "/spc/{parameter}"]["get"]
    for words in (
        "d2 = 1.128",
        "D4 = 3.267",
        "MR-bar / d2",
        "z_i = lambda x_i + (1 - lambda) z_(i-1)",
        "L sigma sqrt(lambda / (2 - lambda) (1 - (1 - lambda)^(2i)))",
        "1 one point beyond 3 sigma",
        "2 two of three consecutive points beyond 2 sigma on the same side",
        "3 four of five beyond 1 sigma on the same side",
        "4 eight consecutive points on the same side of the centre line",
        "completes the pattern",
        "first 25 points",
        f"{MAX_POINTS:,} points",
        "test samples",
    ):
        assert words in chart["description"], words
    params = {p["name"]: p for p in chart["parameters"]}
    assert {"from", "to", "baseline_from", "baseline_to", "lambda", "L", "chart", "mould"} <= set(
        params
    )
    assert "PartWeight (g)" in params["parameter"]["description"]
    capability = spec["paths"][prefix + "/capability/{parameter}"]["get"]
    for words in ("6 sigma_within", "sample standard deviation (n - 1)", "limits_valid_from"):
        assert words in capability["description"], words
    for operation in (chart, capability):
        assert set(operation["responses"]) == {"200", "401", "404", "422", "503"}
    schemas = spec["components"]["schemas"]
    for name in (
        "SpcSeries", "SpcPoint", "ChartLimits", "BaselinePeriod",
        "CapabilityReport", "CapabilityPeriod",
    ):  # fmt: skip
        for field, schema in schemas[name]["properties"].items():
            assert schema.get("description"), f"{name}.{field} has no description"


@pytest.fixture(scope="module")
def database_url(database_server_url: str) -> Iterator[str]:
    """A database of this module's own: loading a plant file retires the moulds it does not
    name, which in the suite's shared database would be other tests' moulds."""
    with migrated_database(database_server_url, "moldlab_spc_api") as url:
        yield url


@pytest.fixture(scope="module")
async def plant_loaded(database_url: str) -> None:
    async with await AsyncConnection.connect(database_url) as conn:
        await write_plant(conn, parse_plant(PLANT), T0, "test")
        await conn.commit()


async def _machine(db: AsyncConnection, values: list[float], start: datetime) -> str:
    """A machine running m-a from `start`, one cycle a minute with these part weights."""
    floor = await Floor.machine(db, "spc", line="l1", area="hall")
    await floor.job(start, "job-1", "m-a", 1)
    for shot, value in enumerate(values):
        await db.execute(
            "INSERT INTO cycle (time, machine_id, shot, quality, parts, cycle_time_s,"
            " parameters, source, seq) VALUES (%s, %s, %s, 'good', 1, 15.0, %s, 'test', %s)",
            (start + shot * MINUTE, floor.id, shot, Jsonb({"PartWeight": value}), shot),
        )
    return floor.place


@pytest.mark.infra
async def test_a_chart_with_its_baseline_limits_and_rules(
    api_url: str,
    db: AsyncConnection,
    plant_loaded: None,
    engineer_headers: dict[str, str],
) -> None:
    start = datetime(2026, 11, 3, 8, tzinfo=UTC)
    # Baseline 10, 12, 11, 13, 12: mean 11.6, MR-bar 1.5, sigma 1.5 / 1.128, UCL 15.5893617;
    # then 16.0: 3.31 sigma above (rule 1).
    place = await _machine(db, [10.0, 12.0, 11.0, 13.0, 12.0, 12.5, 16.0], start)
    params = {
        "mould": "m-a",
        "from": start.isoformat(),
        "to": (start + timedelta(hours=1)).isoformat(),
        "baseline_from": start.isoformat(),
        "baseline_to": (start + 5 * MINUTE).isoformat(),
    }
    async with httpx.AsyncClient(base_url=api_url, timeout=10, headers=engineer_headers) as http:
        response = await http.get(SPC.format(place, "PartWeight"), params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["baseline"] == {
            "start": "2026-11-03T08:00:00Z",
            "end": "2026-11-03T08:05:00Z",
            "stated": True,
            "points": 5,
        }
        assert body["limits"]["centre"] == exactly(11.6)
        assert body["limits"]["ucl"] == exactly(15.589361702127659)
        assert body["limits"]["mr_ucl"] == exactly(4.9005)
        assert [p["rules"] for p in body["points"]] == [[]] * 6 + [[1]]
        assert body["points"][6]["mr"] == exactly(3.5)
        assert (body["unit"], body["chart"], body["violations"]) == ("g", "imr", 1)

        # EWMA, lambda 0.5, L 2: z_1 = 0.5 x 10 + 0.5 x 11.6 = 10.8; half width
        # 2 sigma sqrt(1/3 x 0.75) = sigma: limits 11.6 -+ 1.5 / 1.128.
        ewma = await http.get(
            SPC.format(place, "PartWeight"),
            params={**params, "chart": "ewma", "lambda": 0.5, "L": 2},
        )
        assert ewma.status_code == 200, ewma.text
        first = ewma.json()["points"][0]
        assert first["ewma"] == exactly(10.8)
        assert (first["lcl"], first["ucl"]) == (
            exactly(11.6 - 1.5 / 1.128),
            exactly(11.6 + 1.5 / 1.128),
        )
        assert (ewma.json()["ewma_lambda"], ewma.json()["ewma_l"]) == (0.5, 2.0)


@pytest.mark.infra
async def test_the_default_range_is_the_last_day(
    api_url: str,
    db: AsyncConnection,
    plant_loaded: None,
    engineer_headers: dict[str, str],
) -> None:
    start = (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0)
    place = await _machine(db, [12.0, 12.2, 11.9], start)
    async with httpx.AsyncClient(base_url=api_url, timeout=10, headers=engineer_headers) as http:
        response = await http.get(SPC.format(place, "PartWeight"), params={"mould": "m-a"})
        assert response.status_code == 200, response.text
        body = response.json()
        assert [p["value"] for p in body["points"]] == [12.0, 12.2, 11.9]
        assert body["baseline"]["stated"] is False
        assert body["baseline"]["points"] == 3


@pytest.mark.infra
async def test_capability_against_the_plant_files_limits(
    api_url: str,
    db: AsyncConnection,
    plant_loaded: None,
    engineer_headers: dict[str, str],
) -> None:
    start = datetime(2026, 11, 4, 8, tzinfo=UTC)
    # 11.5, 12.5 against LSL 11, USL 13: mean 12, MR-bar 1, sigma_within 1 / 1.128;
    # Cp = 2 / (6 / 1.128) = 0.376 = Cpk; sigma_overall = sqrt(0.5): Pp = 2 / (6 sqrt 0.5).
    place = await _machine(db, [11.5, 12.5], start)
    params = {
        "mould": "m-a",
        "from": start.isoformat(),
        "to": (start + timedelta(hours=1)).isoformat(),
    }
    async with httpx.AsyncClient(base_url=api_url, timeout=10, headers=engineer_headers) as http:
        response = await http.get(CAPABILITY.format(place, "PartWeight"), params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    (period,) = body["periods"]
    assert period["limits_valid_from"] == "2026-10-01T00:00:00Z"
    assert (period["lower"], period["upper"], period["target"]) == (11.0, 13.0, 12.0)
    assert period["cp"] == exactly(0.376)
    assert period["cpk"] == exactly(0.376)
    assert period["pp"] == exactly(2 / (6 * math.sqrt(0.5)))
    assert period["sigma_within"] == exactly(1 / 1.128)
    assert (body["points"], period["points"], period["undefined"]) == (2, 2, None)


@pytest.mark.infra
async def test_bad_requests_answer_404_or_422_with_a_detail(
    api_url: str,
    db: AsyncConnection,
    plant_loaded: None,
    engineer_headers: dict[str, str],
) -> None:
    start = datetime(2026, 11, 5, 8, tzinfo=UTC)
    place = await _machine(db, [12.0, 12.0, 12.0, 12.5], start)
    window = {"from": start.isoformat(), "to": (start + timedelta(hours=1)).isoformat()}
    ok = {"mould": "m-a", **window}
    async with httpx.AsyncClient(base_url=api_url, timeout=10, headers=engineer_headers) as http:

        async def detail(path: str, params: dict[str, Any], status: int) -> Any:
            response = await http.get(path, params=params)
            assert response.status_code == status, response.text
            return response.json()["detail"]

        chart = SPC.format(place, "PartWeight")
        text = await detail(SPC.format("spc/hall/l1/imm-nobody", "PartWeight"), ok, 404)
        assert text == "no machine spc/hall/l1/imm-nobody"
        assert "no machine" in await detail(
            CAPABILITY.format("spc/hall/l1/imm-nobody", "PartWeight"), ok, 404
        )
        assert "no PartWeight values of mould m-b" in await detail(
            chart, {**ok, "mould": "m-b"}, 404
        )
        # An unknown parameter, a naive time, a lambda out of (0, 1]: FastAPI's list.
        assert (await detail(SPC.format(place, "Colour"), ok, 422))[0]["loc"][-1] == "parameter"
        naive = {**ok, "from": "2026-11-05T08:00:00"}
        assert (await detail(chart, naive, 422))[0]["loc"][-1] == "from"
        assert (await detail(chart, {**ok, "lambda": 1.5}, 422))[0]["loc"][-1] == "lambda"
        # What the data or the range cannot give: a sentence.
        half = {**ok, "baseline_from": start.isoformat()}
        assert await detail(chart, half, 422) == (
            "give both baseline_from and baseline_to, or neither"
        )
        flat = {**half, "baseline_to": (start + 3 * MINUTE).isoformat()}
        assert "do not vary" in await detail(chart, flat, 422)
        one = {**half, "baseline_to": (start + MINUTE).isoformat()}
        assert "the baseline has 1 point; at least 2 are needed" in await detail(chart, one, 422)
        backwards = {**ok, "from": window["to"], "to": window["from"]}
        assert "is not before" in await detail(chart, backwards, 422)
        far = {**ok, "from": "0001-01-01T00:00:00+01:00"}
        assert "out of range" in await detail(chart, far, 422)
        assert "no room" in await detail(chart, {"mould": "m-a", "to": "0001-01-01T12:00Z"}, 422)


@pytest.mark.infra
async def test_more_points_than_the_cap_asks_for_a_narrower_range(
    api_url: str,
    db: AsyncConnection,
    plant_loaded: None,
    engineer_headers: dict[str, str],
) -> None:
    start = datetime(2026, 11, 6, tzinfo=UTC)
    place = await _machine(db, [12.0, 12.5], start)
    # MAX_POINTS more cycles, one a second, in one statement.
    await db.execute(
        "INSERT INTO cycle (time, machine_id, shot, quality, parts, cycle_time_s, parameters,"
        " source, seq) SELECT %s + g * interval '1 s', m.id, 10 + g, 'good', 1, 15.0,"
        " jsonb_build_object('PartWeight', 12.0 + g %% 2), 'test', 10 + g"
        " FROM machine m, generate_series(1, %s) g WHERE m.place = %s",
        (start + 2 * MINUTE, MAX_POINTS, place),
    )
    params = {
        "mould": "m-a",
        "from": start.isoformat(),
        "to": (start + timedelta(days=1)).isoformat(),
    }
    async with httpx.AsyncClient(base_url=api_url, timeout=10, headers=engineer_headers) as http:
        for path in (SPC, CAPABILITY):
            response = await http.get(path.format(place, "PartWeight"), params=params)
            assert response.status_code == 422, response.text
            assert "narrow the range" in response.json()["detail"]
            assert f"more than {MAX_POINTS:,}" in response.json()["detail"]
        # The first hour holds fewer: it answers.
        hour = {**params, "to": (start + timedelta(hours=1)).isoformat()}
        response = await http.get(SPC.format(place, "PartWeight"), params=hour)
        assert response.status_code == 200, response.text
        # Two, then one a second from 2 min + 1 s to 59 min 59 s: 3,600 - 121 = 3,479.
        assert len(response.json()["points"]) == 2 + 3479
