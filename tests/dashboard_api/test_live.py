"""The live hub's diff: only what changed goes to the browsers."""

from __future__ import annotations

from dashboard_api.live import diff


def _machine(state: str, nozzle: float, mould: float) -> dict[str, object]:
    return {
        "machine_id": "imm-01",
        "state": state,
        "signals": {"TempNozzle": {"value": nozzle}, "TempMould": {"value": mould}},
    }


def test_unchanged_machines_send_nothing() -> None:
    before = {"imm-01": _machine("running", 230.0, 45.0)}
    assert diff(before, before) == []


def test_only_changed_fields_and_signals_are_sent() -> None:
    before = {"imm-01": _machine("running", 230.0, 45.0)}
    after = {"imm-01": _machine("fault", 231.0, 45.0)}
    assert diff(before, after) == [
        {"machine_id": "imm-01", "state": "fault", "signals": {"TempNozzle": {"value": 231.0}}}
    ]


def test_a_new_machine_is_sent_whole() -> None:
    after = {"imm-02": {**_machine("idle", 1.0, 2.0), "machine_id": "imm-02"}}
    [update] = diff({}, after)
    assert update["machine_id"] == "imm-02"
    assert update["state"] == "idle"
    assert set(update["signals"]) == {"TempNozzle", "TempMould"}
