"""A model directory: round trip, refusal of other library versions, corrupt files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from analytics.pdm import ModelError, ModelVersionError, list_models, load_model, read_export
from analytics.pdm.features import features_at
from analytics.pdm.registry import ARTEFACT, CARD, resolve_model

HOUR_US = 3_600_000_000


def test_round_trip_predicts_as_trained(model_dir: Path, export_dir: Path) -> None:
    model = load_model(model_dir)
    card = model.card
    for key in ("name", "created", "data_fingerprint", "features", "versions", "components"):
        assert card[key], key
    assert set(card["versions"]) == {"python", "sklearn", "numpy", "joblib", "moldlab"}
    assert model.components
    history = next(iter(read_export(export_dir)))
    at = int(history.signals["ts"][-1]) - HOUR_US
    preds = model.predict(history, at)
    assert [p.component for p in preds] == list(model.components)
    for p in preds:
        assert 0.0 <= p.p_8h <= p.p_24h <= 1.0
        assert 0.0 <= p.rul_low_h <= p.rul_h <= p.rul_high_h
        assert len(p.evidence) <= 5
        assert all(e.text for e in p.evidence)
    # the same figures as the batch path the trainer and `evaluate` use
    X = features_at(history, np.array([at]), at, model.reason_of)
    for p in preds:
        cm = model.models[p.component]
        s = cm.scores(X)
        assert p.p_24h == pytest.approx(float(s["p_24h"][0]))
        # the alarm is raised on the score its rule was tuned on, kept in the card
        assert cm.rule.score in ("p_24h", "p_near")
        rule = card["component_models"][p.component]["alarm_rule"]
        assert rule is None or rule["score"] == cm.rule.score
        assert p.alarm == (float(s[cm.rule.score][0]) >= cm.rule.on)


def test_other_library_versions_are_refused_naming_both(model_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "old-model"
    shutil.copytree(model_dir, other)
    card = json.loads((other / CARD).read_text())
    here = card["versions"]["sklearn"]
    card["versions"]["sklearn"] = "0.24.2"
    (other / CARD).write_text(json.dumps(card))
    with pytest.raises(ModelVersionError) as caught:
        load_model(other)
    assert "0.24.2" in str(caught.value)
    assert here in str(caught.value)


def test_corrupt_or_missing_files_are_a_model_error(model_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    blob = (broken / ARTEFACT).read_bytes()
    (broken / ARTEFACT).write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ModelError, match="corrupt"):
        load_model(broken)
    (broken / ARTEFACT).unlink()
    with pytest.raises(ModelError, match=ARTEFACT):
        load_model(broken)
    (broken / CARD).write_text("{not json")
    with pytest.raises(ModelError, match="cannot be read"):
        load_model(broken)
    (broken / CARD).unlink()
    with pytest.raises(ModelError, match=r"no card\.json"):
        load_model(broken)
    with pytest.raises(ModelError, match="not a model directory"):
        load_model(tmp_path / "nothing")


def test_models_are_listed_and_found_by_name(model_dir: Path) -> None:
    found = list_models(model_dir.parent)
    assert [(p, card is not None) for p, card, _ in found] == [(model_dir, True)]
    assert resolve_model(model_dir.name, model_dir.parent) == model_dir
    with pytest.raises(ModelError, match="no model 'nope'"):
        resolve_model("nope", model_dir.parent)
