"""Reading an export into MachineHistory and its ground truth."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from analytics.pdm.history import (
    ExportReadError,
    export_fingerprint,
    read_export,
    read_truth,
)
from contracts import CYCLE_PARAMETERS, SIGNALS


def test_histories_have_the_interface_shape(export_dir: Path) -> None:
    manifest = json.loads((export_dir / "manifest.json").read_text())
    histories = list(read_export(export_dir))
    assert [h.machine_id for h in histories] == manifest["machines"]
    for h in histories:
        assert h.cycles["ts"].dtype == np.int64
        assert np.all(np.diff(h.cycles["ts"]) >= 0)
        assert np.all(np.diff(h.signals["ts"]) >= 0)
        assert np.all(np.diff(h.states["ts"]) >= 0)
        for name in CYCLE_PARAMETERS:
            assert h.cycles[name].dtype == np.float64
        for spec in SIGNALS:
            assert h.signals[spec.name].dtype == np.float64
        assert set(h.cycles["quality"].tolist()) <= {"good", "bad", "test"}
        assert h.states["state"].dtype == object
        assert len(h.cycles["ts"]) > 100


def test_truth_has_failures_with_mode_and_span(export_dir: Path) -> None:
    truth = read_truth(export_dir)
    assert truth.end_us > truth.start_us
    assert "check_ring" in truth.components
    fails = [f for fs in truth.failures.values() for f in fs]
    assert fails, "the fixture export has failures"
    for f in fails:
        assert f.mode in ("wear", "sudden")
        assert truth.start_us <= f.ts_us <= truth.end_us
        assert f.restored_us is None or f.restored_us > f.ts_us


def test_a_directory_that_is_not_a_finished_export_is_refused(
    export_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(ExportReadError, match="not a directory"):
        list(read_export(tmp_path / "missing"))
    unfinished = tmp_path / "unfinished"
    shutil.copytree(export_dir, unfinished)
    (unfinished / "manifest.json").unlink()
    with pytest.raises(ExportReadError, match=r"no manifest\.json"):
        list(read_export(unfinished))
    with pytest.raises(ExportReadError, match=r"no manifest\.json"):
        read_truth(unfinished)


def test_an_unknown_format_is_refused(export_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(export_dir, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["format"] = "moldlab-export/99"
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ExportReadError, match="moldlab-export/99"):
        list(read_export(other))


def test_the_fingerprint_follows_the_files(export_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(export_dir, copy)
    assert export_fingerprint(copy) == export_fingerprint(export_dir)
    (copy / "states.parquet").write_bytes((copy / "states.parquet").read_bytes() + b"x")
    assert export_fingerprint(copy) != export_fingerprint(export_dir)
