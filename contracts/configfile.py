"""Where each problem of a YAML config file is: its file, line and field.

Pure: the caller parses the text (`yaml.compose`) and passes the node tree. Nodes are read by
duck typing (`id` "mapping" or "sequence", `value`, `start_mark.line`), so this module needs
no YAML library.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError


def problems(exc: ValidationError) -> list[tuple[Sequence[int | str], str]]:
    """(where, what) of each problem pydantic found."""
    return [(err["loc"], err["msg"].removeprefix("Value error, ")) for err in exc.errors()]


def field_path(loc: Sequence[int | str]) -> str:
    """`machines[2].modbus.port` for the location ("machines", 2, "modbus", "port")."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or "config"


def line_of(node: Any, loc: Sequence[int | str]) -> int:
    """The 1-based line of the deepest YAML node on the error's path (its key, for a mapping)."""
    line: int = node.start_mark.line if node is not None else 0
    for key in loc:
        kind = getattr(node, "id", None)
        if kind == "mapping":
            entry = next(((k, v) for k, v in node.value if k.value == key), None)
            if entry is None:
                break
            line, node = entry[0].start_mark.line, entry[1]
        elif kind == "sequence" and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line
        else:
            break
    return line + 1


def located(exc: ValidationError, root: Any, source: str) -> str:
    """One line per problem: `file:line: field: what`."""
    return "\n".join(
        f"{source}:{line_of(root, loc)}: {field_path(loc)}: {msg}" for loc, msg in problems(exc)
    )
