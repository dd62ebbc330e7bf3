"""A model directory: round trip, refusal of other library versions, corrupt files."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from analytics.pdm import ModelError, ModelVersionError, list_models, load_model, read_export
from analytics.pdm.evaluate import AlarmRule, alarm_active
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


def test_the_service_raises_as_the_tuning_counted_with_scores_in_a_row(
    model_dir: Path, export_dir: Path
) -> None:
    # The scoring service keeps each alarm's state between calls; over half-hourly scores it
    # must raise and clear where `alarm_active` (which the levels were tuned with) does,
    # also for a rule that asks for scores in a row.
    model = load_model(model_dir)
    history = next(iter(read_export(export_dir)))
    end = int(history.signals["ts"][-1])
    times = end - HOUR_US // 2 * np.arange(24, 0, -1)
    X = features_at(history, times, end, model.reason_of)
    comp, cm = next(iter(model.models.items()))
    s = cm.scores(X)[cm.rule.score]
    lo, mid = (float(v) for v in np.quantile(s, [0.25, 0.5]))
    for confirm in (1, 2, 3):
        rule = AlarmRule(mid, lo, cm.rule.score, confirm)
        model.models[comp] = replace(cm, rule=rule)
        model.forget(history.machine_id)
        online = [
            next(p for p in model.predict(history, int(t)) if p.component == comp).alarm
            for t in times
        ]
        assert online == alarm_active(s, rule).tolist(), confirm
    assert any(online)
    assert not all(online)


class _Scripted:
    """A component model whose p_near follows a script, one value per call."""

    def __init__(self, real: Any, rule: AlarmRule, script: list[float]) -> None:
        self.rule, self.weight, self.script = rule, real.weight, iter(script)

    def scores(self, X: np.ndarray) -> dict[str, np.ndarray]:
        p = np.array([next(self.script)])
        return {k: p for k in ("p_8h", "p_24h", "p_near", "rul_low_h", "rul_h", "rul_high_h")}


def test_scores_in_a_row_mean_half_hours_however_often_the_service_scores(
    model_dir: Path, export_dir: Path
) -> None:
    # Tuned on half-hourly scores, "3 in a row" is the score at the level for an hour; the
    # service scoring every minute must not raise on 3 minutes of it.
    model = load_model(model_dir)
    history = next(iter(read_export(export_dir)))
    start = int(history.signals["ts"][-1]) - 3 * HOUR_US
    comp, real = next(iter(model.models.items()))
    rule = AlarmRule(0.5, 0.2, "p_near", confirm=3)
    # 20 min high, 1 min low, then 70 min high: raised 60 min into the second spell
    script = [0.9] * 20 + [0.1] + [0.9] * 70
    model.models[comp] = _Scripted(real, rule, script)  # type: ignore[assignment]
    minute = HOUR_US // 60
    raised = [
        next(p for p in model.predict(history, start + k * minute) if p.component == comp).alarm
        for k in range(len(script))
    ]
    assert raised.index(True) == 21 + 60
    assert all(raised[21 + 60 :])
