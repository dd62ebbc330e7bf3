"""Rewrite contracts/schema.json from the message models (run after changing contracts/)."""

import json
from pathlib import Path

from contracts.codec import json_schema

path = Path(__file__).parents[1] / "contracts" / "schema.json"
path.write_text(json.dumps(json_schema(), indent=2, sort_keys=True) + "\n")
print(f"wrote {path}")
