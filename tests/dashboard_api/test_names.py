"""The API's path patterns accept exactly what the wire contract accepts."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from contracts.messages import MachineId, SignalName
from dashboard_api.names import MachineIdPath, SignalPath

SAMPLES = [
    "imm-01", "IMM_7.b", "0", "a" * 64, "a" * 65, "-imm", ".imm", "_imm", "imm/01", "imm 01",
    "imm\x0001", "imm-01\n", "\nimm", "", "Temp.Zone2", "1Temp", "Temp-Zone", "Tempé", "T",
]  # fmt: skip


def _accepts(adapter: TypeAdapter[str], value: str) -> bool:
    try:
        adapter.validate_python(value)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize(("api", "wire"), [(MachineIdPath, MachineId), (SignalPath, SignalName)])
def test_the_path_patterns_are_the_wire_contracts(api: object, wire: object) -> None:
    api_adapter: TypeAdapter[str] = TypeAdapter(api)
    wire_adapter: TypeAdapter[str] = TypeAdapter(wire)
    for value in SAMPLES:
        assert _accepts(api_adapter, value) == _accepts(wire_adapter, value), repr(value)
