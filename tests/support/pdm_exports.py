"""Small simulator exports and a model trained on one, made once per test session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

_MADE: dict[tuple[Any, ...], Path] = {}
_PROGRESS: list[float] = []

# Machines of the packaged `faults` scenario, each wearing one component quickly.
MACHINES = ("imm-checkring", "imm-ejector", "imm-pump")


def small_export(
    factory: pytest.TempPathFactory, *, seed: int = 7, days: float = 6.0, machines: int = 3
) -> Path:
    """An export of `machines` machines of the `faults` scenario over `days` days."""
    key = ("export", seed, days, machines)
    if key in _MADE:
        return _MADE[key]
    from simulators.export import export_floor
    from simulators.scenario import load_scenario

    scenario = load_scenario("faults")
    specs = [s for s in scenario.machines if s.machine_id in MACHINES][:machines]
    out = factory.mktemp(f"export-{seed}")
    export_floor(specs, out, days=days, seed=seed, source="test", force=True)
    _MADE[key] = out
    return out


def small_model(factory: pytest.TempPathFactory) -> Path:
    """A model trained on `small_export`, saved in a models directory; its path."""
    key = ("model",)
    if key in _MADE:
        return _MADE[key]
    from analytics.pdm import save_model, train

    data = small_export(factory)
    progress: list[float] = []
    model = train([data], name="small", progress=lambda done, total: progress.append(done / total))
    path = save_model(model, factory.mktemp("models"))
    _MADE[key] = path
    _PROGRESS[:] = progress
    return path


def small_model_progress(factory: pytest.TempPathFactory) -> list[float]:
    """The shares done that `small_model`'s training reported, in order."""
    small_model(factory)
    return list(_PROGRESS)
