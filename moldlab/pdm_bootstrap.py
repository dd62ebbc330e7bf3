"""A first model for the demo: export a small run of the packaged training scenario and train.

`moldlab demo` starts `moldlab pdm score --train-if-missing DIR`. When its models directory
holds no model, or its newest one cannot be loaded by this version (made for another feature
list or other library versions, as after an upgrade), this exports the first `machines`
presses of the `pdm-train` scenario for `days` days into DIR (kept, so a second start after a
failed training needs no new export), trains a model on it with MODELS'
`analytics.pdm.train` and saves it as `demo-<date>`; the scorer then starts with it. Progress
goes to the log, a line per tenth or so. The scorer process does this in the background of
the demo: the floor, ingest and the API run meanwhile.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from analytics.pdm.model import PdmModel

log = logging.getLogger("moldlab.pdm")

SCENARIO = "pdm-train"
# Small enough to export and train in a few minutes on 2 cores, large enough that most
# components fail in it (pdm-train wears 3 times faster than life): 120 machine-days.
DEFAULT_MACHINES = 12
DEFAULT_DAYS = 10.0


class BootstrapError(Exception):
    """No model could be made; the text says why."""


class _Progress:
    """A log line whenever another tenth of the work is done."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._tenths = -1
        self._started = time.monotonic()

    def __call__(self, done: float, total: float) -> None:
        tenths = int(10 * done / total) if total > 0 else 10
        if tenths > self._tenths:
            self._tenths = tenths
            log.info(
                "%s: %d %% (%.0f s)", self._what, 10 * tenths, time.monotonic() - self._started
            )


def ensure_model(
    models_dir: Path,
    export_dir: Path,
    *,
    machines: int | None = None,
    days: float | None = None,
) -> PdmModel:
    """The newest model in `models_dir`, trained first from a fresh export when there is none.

    Loaded once: the model this returns is the one checked (or trained), for the scorer.
    """
    from moldlab.pdm_score_cli import newest_model

    found = newest_model(models_dir)
    if found is not None:
        usable = _load(found)
        if not isinstance(usable, str):
            return usable
        log.info("model %s cannot be used (%s): training a new one", found.name, usable[:300])
    # Below the floor, ingest and the API, which visitors are watching meanwhile.
    os.nice(10)
    machines = machines or int(os.environ.get("MOLDLAB_DEMO_PDM_MACHINES", DEFAULT_MACHINES))
    days = days or float(os.environ.get("MOLDLAB_DEMO_PDM_DAYS", DEFAULT_DAYS))
    _export(export_dir, machines, days)
    return _train(export_dir, models_dir)


def _load(path: Path) -> PdmModel | str:
    """The model at `path`, or why it cannot be loaded."""
    from analytics.pdm.model import ModelError
    from analytics.pdm.registry import load_model

    try:
        return load_model(path)
    except ModelError as exc:
        return str(exc)


def _export(export_dir: Path, machines: int, days: float) -> None:
    from analytics.pdm.history import ExportReadError, read_manifest
    from simulators.export import ExportError, export_floor
    from simulators.scenario import load_scenario

    try:
        manifest = read_manifest(export_dir)
        if len(manifest.get("machines", [])) == machines and manifest.get("days") == days:
            log.info("no usable model: training on the export already in %s", export_dir)
            return
    except ExportReadError:
        pass
    scenario = load_scenario(SCENARIO)
    specs = scenario.machines[:machines]
    log.info(
        "no usable model: exporting %d presses x %g days of the %s scenario to %s, then training"
        " (a few minutes; the demo runs meanwhile, predictions follow)",
        len(specs), days, SCENARIO, export_dir,
    )  # fmt: skip
    try:
        export_floor(
            specs, export_dir, days=days,
            start=scenario.start or datetime(2026, 1, 5, tzinfo=UTC),
            seed=scenario.seed if scenario.seed is not None else 1,
            source=f"scenario {SCENARIO} (first {len(specs)} presses), for moldlab demo",
            force=True, progress=_Progress("exporting the demo's training data"),
        )  # fmt: skip
    except ExportError as exc:
        raise BootstrapError(f"cannot export the training data: {exc}") from exc


def _train(export_dir: Path, models_dir: Path) -> PdmModel:
    from analytics.pdm import TrainError, save_model, train

    name = datetime.now(UTC).strftime("demo-%Y%m%d-%H%M%S")
    try:
        model = train([export_dir], name=name, progress=_Progress(f"training model {name}"))
    except TrainError as exc:
        raise BootstrapError(f"cannot train the demo's model: {exc}") from exc
    path = save_model(model, models_dir)
    log.info("model %s written to %s (components: %s)", name, path, ", ".join(model.components))
    return model
