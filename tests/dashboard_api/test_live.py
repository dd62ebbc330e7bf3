"""The live hub's diff: only what changed goes to the browsers, machine by machine (by place)."""

from __future__ import annotations

from dashboard_api.live import diff

A = "demo-a/hall/line-1/imm-01"
B = "demo-b/hall/line-1/imm-01"  # the same machine id on another site: another machine


def _machine(place: str, state: str, nozzle: float, mould: float) -> dict[str, object]:
    return {
        "place": place,
        "machine_id": place.rsplit("/", 1)[1],
        "state": state,
        "signals": {"TempNozzle": {"value": nozzle}, "TempMould": {"value": mould}},
    }


def test_unchanged_machines_send_nothing() -> None:
    before = {A: _machine(A, "running", 230.0, 45.0)}
    assert diff(before, before) == []


def test_only_changed_fields_and_signals_are_sent() -> None:
    before = {A: _machine(A, "running", 230.0, 45.0)}
    after = {A: _machine(A, "fault", 231.0, 45.0)}
    assert diff(before, after) == [
        {"place": A, "state": "fault", "signals": {"TempNozzle": {"value": 231.0}}}
    ]


def test_a_new_machine_is_sent_whole() -> None:
    after = {A: _machine(A, "idle", 1.0, 2.0)}
    [update] = diff({}, after)
    assert update["place"] == A
    assert update["machine_id"] == "imm-01"
    assert update["state"] == "idle"
    assert set(update["signals"]) == {"TempNozzle", "TempMould"}


def test_two_sites_machines_of_one_id_are_two_entries() -> None:
    before = {A: _machine(A, "running", 230.0, 45.0), B: _machine(B, "running", 230.0, 45.0)}
    after = {A: _machine(A, "running", 230.0, 45.0), B: _machine(B, "offline", 230.0, 45.0)}
    assert diff(before, after) == [{"place": B, "state": "offline"}]
    assert [u["place"] for u in diff({}, after)] == [A, B]
