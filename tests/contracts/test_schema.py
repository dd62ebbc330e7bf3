"""The checked-in JSON Schema is the one the models generate."""

from __future__ import annotations

import json
from importlib.resources import files

from contracts.codec import json_schema


def test_checked_in_schema_matches_the_models() -> None:
    checked_in = json.loads((files("contracts") / "schema.json").read_text())
    assert checked_in == json_schema(), (
        "contracts/schema.json is stale: run `python scripts/regenerate_schema.py`"
    )
