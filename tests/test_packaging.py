"""What each deployable's extra pulls in: the Pi's `.[edge]` carries no DB driver or ML stack."""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, requires

import pytest

FORBIDDEN_ON_THE_PI = {
    "psycopg",
    "psycopg-binary",
    "sqlalchemy",
    "scikit-learn",
    "pandas",
    "fastapi",
}


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9_.-]+", requirement)
    assert match is not None
    return match.group(0).lower().replace("_", "-")


def _closure(dist: str, extra: str | None) -> set[str]:
    """Every distribution `dist[extra]` needs, transitively (as installed here)."""
    seen: set[tuple[str, str | None]] = set()
    todo: list[tuple[str, str | None]] = [(dist, extra)]
    while todo:
        name, wanted = todo.pop()
        try:
            reqs = requires(name) or []
        except PackageNotFoundError:
            continue
        for req in reqs:
            spec, _, marker = req.partition(";")
            if "extra ==" in marker and f'extra == "{wanted}"' not in marker:
                continue
            extras = re.findall(r"\[([^\]]+)\]", spec)
            subs: list[str | None] = [e.strip() for e in extras[0].split(",")] if extras else [None]
            for sub in subs:
                if (_name(spec), sub) not in seen:
                    seen.add((_name(spec), sub))
                    todo.append((_name(spec), sub))
    return {name for name, _ in seen}


def test_edge_extra_pulls_in_no_database_driver_or_ml_stack() -> None:
    closure = _closure("moldlab", "edge")
    assert {"aiomqtt", "pymodbus", "pydantic"} <= closure
    assert closure & FORBIDDEN_ON_THE_PI == set()


@pytest.mark.parametrize("extra", ["ingest", "api"])
def test_server_extras_bring_their_driver(extra: str) -> None:
    assert "psycopg" in _closure("moldlab", extra)
