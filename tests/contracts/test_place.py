"""A machine is identified by its place, site/area/line/machine; a gateway's birth lists them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from contracts import DecodeError, EdgeStatus, MessageKind, Place, Topic, TopicError, decode

GOLDEN = Path(__file__).parents[1] / "fixtures" / "messages"


def test_a_place_prints_and_parses_as_four_segments() -> None:
    place = Place("demo-a", "hall-a", "line-1", "imm-01")
    assert str(place) == "demo-a/hall-a/line-1/imm-01"
    assert Place.parse(str(place)) == place
    assert Place.parse("demo-b/hall-a/line-1/imm-01") != place  # another site: another machine
    assert Topic.parse("moldlab/v1/demo-a/hall-a/line-1/imm-01/cycle").place == place
    assert Topic("s", "a", "l", "m", MessageKind.STATE).place == Place("s", "a", "l", "m")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("s/a/l", "is not site/area/line/machine"),
        ("s/a/l/m/x", "is not site/area/line/machine"),
        ("", "is not site/area/line/machine"),
        ("s//l/m", "area '' is not a valid topic segment"),
        ("s/a/l/-m", "machine '-m' is not a valid topic segment"),
        ("s a/a/l/m", "site 's a' is not a valid topic segment"),
        ("s/a/l\n/m", "line 'l\\\\n' is not a valid topic segment"),
        ("s/a/l/" + "m" * 65, "machine 'm{65}' is not a valid topic segment"),
    ],
)
def test_a_bad_place_is_refused_naming_the_segment(text: str, reason: str) -> None:
    with pytest.raises(TopicError, match=reason):
        Place.parse(text)


def _status(**change: Any) -> bytes:
    raw = json.loads((GOLDEN / "status.json").read_text())
    return orjson.dumps({**raw, **change})


def test_a_birth_lists_the_machines_of_its_gateway_and_an_old_one_none() -> None:
    birth = decode((GOLDEN / "status.json").read_bytes())
    assert isinstance(birth, EdgeStatus)
    assert birth.machines == [f"demo/hall-a/line-1/imm-0{i}" for i in (1, 2, 3)]
    old = decode((GOLDEN / "status_v1.json").read_bytes())
    assert isinstance(old, EdgeStatus)
    assert (old.schema_version, old.online, old.machines) == (1, True, None)
    death = decode(_status(online=False, machines=None))
    assert isinstance(death, EdgeStatus)
    assert death.machines is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"schema_version": 1}, "a status's machines need schema_version 2"),
        ({"online": False}, "only a birth"),
        ({"machines": ["imm-01"]}, "machines.0"),
        ({"machines": ["s/a/l/m/x"]}, "machines.0"),
        ({"machines": ["s/a/l/m\n"]}, "machines.0"),
        ({"machines": "s/a/l/m"}, "machines"),
        ({"machines": [f"s/a/l/m{i}" for i in range(501)]}, "machines"),
    ],
)
def test_a_bad_machine_list_is_refused(change: dict[str, object], reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode(_status(**change))
