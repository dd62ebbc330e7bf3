"""Path and query parameters are checked against the wire contract before any query: 422."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest
from psycopg import AsyncConnection

pytestmark = pytest.mark.infra


Api = tuple[str, dict[str, str]]


@pytest.fixture
def api(api_url: str, engineer_headers: dict[str, str]) -> Api:
    """The API's URL and an engineer's headers (the history is for engineers only)."""
    return api_url, engineer_headers


async def _get(api: Api, path: str) -> httpx.Response:
    url, headers = api
    async with httpx.AsyncClient(base_url=url, timeout=10, headers=headers) as http:
        return await http.get(path)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/machines/test/hall/l1/a%00b/signals/x/history",
        "/api/v1/machines/te%00st/hall/l1/imm-01/signals/x/history",
        "/api/v1/machines/test/hall/l1/imm-01/signals/Temp%00Nozzle/history",
    ],
)
async def test_a_nul_in_a_path_answers_422_not_500(api: Api, path: str) -> None:
    response = await _get(api, path)
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"][0] == "path"
    assert "pattern" in error["msg"]


@pytest.mark.parametrize(
    ("path", "where"),
    [
        ("/api/v1/machines/test/hall/l1/-leading-dash/signals/TempNozzle/history", "machine"),
        (f"/api/v1/machines/test/hall/l1/{'m' * 65}/signals/TempNozzle/history", "machine"),
        ("/api/v1/machines/test/hall/l1/imm%0A/signals/TempNozzle/history", "machine"),
        ("/api/v1/machines/.site/hall/l1/imm-01/signals/TempNozzle/history", "site"),
        ("/api/v1/machines/test/hall%20a/l1/imm-01/signals/TempNozzle/history", "area"),
        ("/api/v1/machines/test/hall/l%0A/imm-01/signals/TempNozzle/history", "line"),
        ("/api/v1/machines/test/hall/l1/imm-01/signals/1Temp/history", "signal"),
        ("/api/v1/machines/test/hall/l1/imm-01/signals/Temp-Nozzle/history", "signal"),
        ("/api/v1/machines/test/hall/l1/imm-01/signals/TempNozzle/history?minutes=0", "minutes"),
        ("/api/v1/machines/test/hall/l1/imm-01/signals/TempNozzle/history?minutes=%00", "minutes"),
        (
            "/api/v1/machines/test/hall/l1/imm-01/signals/TempNozzle/history?minutes=576001",
            "minutes",
        ),  # more than 400 days
        ("/api/v1/machines/test/hall/l1/imm-01/signals/TempNozzle/history?bucket=0", "bucket"),
        ("/api/v1/machines?after=a%00b", "after"),
        ("/api/v1/machines?after=", "after"),
        ("/api/v1/machines?after=imm-01", "after"),  # a machine id alone is not a place
        ("/api/v1/machines?after=s/a/l/m/x", "after"),
        ("/api/v1/machines?limit=0", "limit"),
        ("/api/v1/machines?limit=201", "limit"),
        ("/api/v1/machines?limit=1e3", "limit"),
    ],
)
async def test_parameters_outside_the_contract_answer_422_naming_the_parameter(
    api: Api, path: str, where: str
) -> None:
    response = await _get(api, path)
    assert response.status_code == 422, response.text
    assert [e["loc"][-1] for e in response.json()["detail"]] == [where]


async def _machine_and_nozzle(db: AsyncConnection) -> str:
    """A new machine with no data, and the signal TempNozzle; the machine's id."""
    machine = f"zz-p-{uuid.uuid4().hex[:8]}"
    await db.execute(
        "INSERT INTO machine (machine_key, site, area, line) VALUES (%s, 'test', 'hall', 'l1')",
        (machine,),
    )
    await db.execute(
        "INSERT INTO signal (name, unit) VALUES ('TempNozzle', 'degC') ON CONFLICT DO NOTHING"
    )
    return machine


async def test_an_unknown_machine_or_signal_answers_404_saying_which(
    api: Api, db: AsyncConnection
) -> None:
    machine = await _machine_and_nozzle(db)
    response = await _get(
        api, f"/api/v1/machines/test/hall/l1/imm-{uuid.uuid4().hex}/signals/X/history"
    )
    assert response.status_code == 404
    assert response.json()["detail"].startswith("no machine test/hall/l1/imm-")
    # Its id at another place is another machine, which does not exist.
    response = await _get(api, f"/api/v1/machines/other/hall/l1/{machine}/signals/X/history")
    assert response.json() == {"detail": f"no machine other/hall/l1/{machine}"}
    response = await _get(
        api, f"/api/v1/machines/test/hall/l1/{machine}/signals/NoSuchSignal/history"
    )
    assert response.json() == {"detail": "no signal NoSuchSignal"}
    response = await _get(
        api, f"/api/v1/machines/test/hall/l1/{machine}/signals/TempNozzle/history"
    )
    assert response.json() == {
        "detail": f"no TempNozzle data for machine test/hall/l1/{machine} in 60 min"
    }


async def test_a_machines_history_answers_its_minutes(api: Api, db: AsyncConnection) -> None:
    machine = await _machine_and_nozzle(db)
    # Rows of this minute: past any aggregate's watermark (its policy stops a minute short).
    now = datetime.now(UTC)
    await db.execute(
        "INSERT INTO telemetry (time, machine_id, signal_id, value)"
        " SELECT %s - g * interval '1 ms', m.id, s.id, 230 + g FROM machine m, signal s,"
        " generate_series(0, 2) g WHERE m.machine_key = %s AND s.name = 'TempNozzle'",
        (now, machine),
    )
    response = await _get(
        api, f"/api/v1/machines/test/hall/l1/{machine}/signals/TempNozzle/history"
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["machine_id"] == machine
    assert body["place"] == f"test/hall/l1/{machine}"
    [point] = body["points"]
    assert (point["min"], point["max"], point["samples"]) == (230, 232, 3)
    assert body["bucket_minutes"] == 1
    # Months: hour-wide buckets by themselves; one-minute buckets over a year are refused.
    path = f"/api/v1/machines/test/hall/l1/{machine}/signals/TempNozzle/history"
    month = (await _get(api, path + "?minutes=43200")).json()
    assert month["bucket_minutes"] == 60
    assert sum(p["samples"] for p in month["points"]) == 3
    refused = await _get(api, path + "?minutes=525600&bucket=1")
    assert refused.status_code == 422
    assert "too many points" in refused.json()["detail"]
    odd = await _get(api, path + "?bucket=7")
    assert odd.status_code == 422
    assert "give 1, 5, 15, 60, 360 or 1440" in odd.json()["detail"]
