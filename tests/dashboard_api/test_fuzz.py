"""The API driven from its OpenAPI document, anonymous and logged in: no input makes a 5xx;
every answer is documented."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from dashboard_api import ApiSettings, create_app

pytestmark = pytest.mark.infra

SIGNAL = "TempNozzle"
# Strings a hostile client sends: printable ASCII pieces between characters that break parsers
# and drivers (NUL, line ends, quotes, separators). Drawn from all of Unicode, those are rare.
_TRICKY = st.sampled_from(["\x00", "\n", "\r", "\t", "/", "%", "'", '"', "\\", ";", " "])
_PRINTABLE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=8)
_HOSTILE = st.lists(_TRICKY | _PRINTABLE, min_size=1, max_size=6).map("".join)


def _seed(database_url: str) -> list[str]:
    """Three machines with a state, a cycle, latest values and this minute's history; their
    places. The last one's source died; the gateway that serves the second died."""
    tag = uuid.uuid4().hex[:6]
    machines = [f"zz-fz-{tag}-{i}" for i in range(3)]  # after other tests' machines
    with psycopg.connect(database_url, autocommit=True) as db:
        db.execute(
            "INSERT INTO signal (name, unit) VALUES (%s, 'degC'), ('CycleTime', 's')"
            " ON CONFLICT DO NOTHING",
            (SIGNAL,),
        )
        for key in machines:
            db.execute(
                "INSERT INTO machine (machine_key, site, area, line, last_seen)"
                " VALUES (%s, 'fuzz', 'hall', 'line-1', now())",
                (key,),
            )
        db.execute(
            "INSERT INTO latest_value (machine_id, signal_id, time, value)"
            " SELECT m.id, s.id, now(), 230 FROM machine m, signal s"
            " WHERE m.machine_key = ANY(%s) AND s.name IN (%s, 'CycleTime')",
            (machines, SIGNAL),
        )
        # Rows of this minute: past any continuous aggregate's watermark.
        db.execute(
            "INSERT INTO telemetry (time, machine_id, signal_id, value)"
            " SELECT now() - g * interval '1 ms', m.id, s.id, 230 + g"
            " FROM machine m, signal s, generate_series(0, 4) g"
            " WHERE m.machine_key = ANY(%s) AND s.name = %s",
            (machines, SIGNAL),
        )
        db.execute(
            "INSERT INTO machine_state (time, machine_id, state, reason, source, seq)"
            " SELECT now(), id, 'unplanned_stop', 'material shortage', 'fuzz', id"
            " FROM machine WHERE machine_key = ANY(%s)",
            (machines,),
        )
        db.execute(
            "INSERT INTO cycle (time, machine_id, shot, quality, parts, cycle_time_s,"
            " parameters, source, seq)"
            " SELECT now(), id, 1, 'good', 4, 15.2, '{}', 'fuzz', id"
            " FROM machine WHERE machine_key = ANY(%s)",
            (machines,),
        )
        db.execute(
            "INSERT INTO edge_status (time, edge_key, online, detail, source, seq)"
            " VALUES (now(), %s, false, 'gone', 'fuzz', 1), (now(), %s, false, 'gone', 'fuzz', 2)",
            (f"fuzz/hall/line-1/{machines[2]}", "fuzz/hall/line-1/fuzz-gateway"),
        )
        db.execute(
            "INSERT INTO gateway_machine (machine, gateway) VALUES (%s, %s)"
            " ON CONFLICT (machine) DO UPDATE SET gateway = EXCLUDED.gateway",
            (f"fuzz/hall/line-1/{machines[1]}", "fuzz/hall/line-1/fuzz-gateway"),
        )
    return [f"fuzz/hall/line-1/{key}" for key in machines]


@pytest.fixture
def api_schema(database_url: str) -> Any:
    """The app's OpenAPI document, served with the app itself (over ASGI) on the test database."""
    machines = _seed(database_url)
    schema = schemathesis.openapi.from_asgi(
        "/openapi.json", create_app(ApiSettings(database_url=database_url))
    )

    @schema.hook
    def flatmap_path_parameters(ctx: schemathesis.HookContext, params: Any) -> Any:
        # Some cases name a machine and signal that exist (the happy paths run too); half are
        # what a hostile client sends.
        if not params:
            return st.just(params)
        site, area, line, machine = machines[0].split("/")
        known = {**params, "site": site, "area": area, "line": line, "machine": machine}
        known["signal"] = SIGNAL
        hostile = st.fixed_dictionaries({name: _HOSTILE for name in params})
        return st.one_of(st.just(params), st.just(known), hostile, hostile)

    @schema.hook
    def flatmap_query(ctx: schemathesis.HookContext, query: Any) -> Any:
        # Some pages start after a machine that exists (`next` and the laterals run); half
        # after what a hostile client sends.
        if ctx.operation is None or ctx.operation.path != "/api/v1/machines":
            return st.just(query)
        known = {**(query or {}), "after": machines[0], "limit": 2}
        hostile = _HOSTILE.map(lambda after: {**(query or {}), "after": after})
        return st.one_of(st.just(query), st.just(known), hostile, hostile)

    return schema


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32 names its per-operation subtests from `Node._nodeid`, gone in pytest 9."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    derandomize=True,  # the same cases on every run
    database=None,
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_input_makes_a_server_error(
    case: schemathesis.Case, engineer_headers: dict[str, str]
) -> None:
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    case.call_and_validate(checks=checks)  # an anonymous visitor
    # An engineer's session, without its CSRF token: a POST answers 403 and the session stays.
    case.call_and_validate(headers=engineer_headers, checks=checks)
