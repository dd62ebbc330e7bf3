"""`moldlab pdm train|models|evaluate` end to end on a small export, and their clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from pdm_exports import small_export

from moldlab.cli import main


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_export(tmp_path_factory)


@pytest.fixture(scope="module")
def trained(export_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    models = tmp_path_factory.mktemp("cli-models")
    code = main(
        ["pdm", "train", "--data", str(export_dir), "--name", "cli", "--models-dir", str(models)]
    )
    assert code == 0
    return models


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_train_writes_a_model_with_its_card(trained: Path) -> None:
    card = json.loads((trained / "cli" / "card.json").read_text())
    assert card["name"] == "cli"
    assert card["components"]
    for comp in card["components"]:
        part = card["component_models"][comp]
        assert part["out_of_fold"] is not None
        assert "baseline" in part["out_of_fold"]
    assert card["metrics"]["out_of_fold"]["model"]["wear_failures"] > 0
    # the share of the false-alarm budget the levels were chosen for, and its evidence
    alarm = card["alarm"]
    assert alarm["budget_share"] in (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)
    per_share = alarm["budget_share_held_out"]["per_share"]
    assert set(per_share) == {"1", "0.9", "0.8", "0.7", "0.6", "0.5"}
    assert alarm["tuning_false_alarms_allowed"] <= alarm["tuning_false_alarms_allowed_baseline"]
    from moldlab.pdm_cli import _share_line  # what `pdm train` prints of it

    line = _share_line(alarm)
    assert f"chosen for {100 * alarm['budget_share']:.0f} % of the budget of 0.5" in line
    assert "by one standard error" in line
    # and the scores in a row they ask for, chosen the same way
    assert alarm["confirm_policy"] in ([1, 2, 3], [3])
    assert alarm["budget_share_held_out"]["confirm"] == alarm["confirm_policy"]
    confirm = "/".join(str(c) for c in alarm["confirm_policy"])
    assert f"; on {confirm} scores in a row, which warned most there (1/2/3 in a row: " in line


def test_the_share_line_says_why_the_share_was_kept() -> None:
    from moldlab.pdm_cli import _share_line

    def alarm(share: float, false_alarms: dict[str, int], within: bool | None) -> Any:
        per = {s: {"false_alarms": f, "false_alarms_per_production_week": f / 355}
               for s, f in false_alarms.items()}  # fmt: skip
        held: dict[str, Any] = {"per_share": per}
        if within is not None:
            held["within_budget"] = within
        return {"budget_share": share, "budget_share_held_out": held,
                "false_alarm_budget_per_machine_week": 0.5}  # fmt: skip

    kept = _share_line(alarm(0.7, {"1": 193, "0.7": 150}, True))
    assert "at 70 % (the largest share within the budget by one standard error)" in kept
    none = _share_line(alarm(0.5, {"1": 193, "0.5": 175}, False))
    assert "(the smallest tried: none was within the budget by one standard error)" in none
    old = _share_line(alarm(0.8, {"1": 193, "0.8": 170}, None))  # a model from before
    assert old.endswith("0.48 at 80 %")
    held = alarm(0.8, {"1": 175, "0.8": 147}, True)
    per = {s: {**v, "warned_2h": w, "wear_failures": 653}
           for (s, v), w in zip(held["budget_share_held_out"]["per_share"].items(), (608, 603),
                                strict=True)}  # fmt: skip
    held["budget_share_held_out"] |= {
        "confirm_policy": "held",
        "confirm": [3],
        "per_policy": {
            "any": {"confirm": [1, 2, 3], "share": 0.7,
                    "per_share": {"1": {"warned_2h": 613, "wear_failures": 653},
                                  "0.7": {"warned_2h": 598, "wear_failures": 653}}},
            "held": {"confirm": [3], "share": 0.8, "per_share": per},
        },
    }  # fmt: skip
    assert _share_line(held).endswith(
        "; on 3 scores in a row, which warned most there "
        "(1/2/3 in a row: 598/653 warned at 70 %, 3 in a row: 603/653 warned at 80 %)"
    )


def test_models_lists_them(trained: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "pdm", "models", "--models-dir", str(trained), "--json")
    assert code == 0
    rows = json.loads(out)
    assert [r["card"]["name"] for r in rows] == ["cli"]
    code, out, _ = _run(capsys, "pdm", "models", "--models-dir", str(trained))
    assert code == 0
    assert out.startswith("cli  created ")
    assert "not usable here" not in out
    assert rows[0]["unusable_here"] is None


def test_models_says_which_cannot_be_loaded_here_and_why(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A model from another installation, or from a moldlab with other features, is listed
    # with the reason `pdm evaluate` and `pdm score` would refuse it, before anyone tries.
    models = tmp_path / "models"
    for name, change in (("other-numpy", "versions"), ("other-features", "features"), ("ok", "")):
        shutil.copytree(trained / "cli", models / name)
        card = json.loads((models / name / "card.json").read_text())
        card["name"] = name
        if change == "versions":
            card["versions"]["numpy"] = "1.0.0"
        elif change == "features":
            card["features"] = card["features"][:-1]
        (models / name / "card.json").write_text(json.dumps(card))
    code, out, _ = _run(capsys, "pdm", "models", "--models-dir", str(models), "--json")
    assert code == 0
    why = {r["card"]["name"]: r["unusable_here"] for r in json.loads(out)}
    assert why["ok"] is None
    assert "numpy 1.0.0 (here " in why["other-numpy"]
    assert "other features" in why["other-features"]
    code, out, _ = _run(capsys, "pdm", "models", "--models-dir", str(models))
    assert code == 0
    # per model a headline, its path, and a third line only when it cannot be loaded here
    lines = out.splitlines()
    heads = [i for i, line in enumerate(lines) if not line.startswith(" ")]
    refused = {
        lines[i].split("  ")[0]: lines[i + 2]
        for i in heads
        if i + 2 < len(lines) and lines[i + 2].startswith("    not usable here: ")
    }
    assert len(heads) == 3
    assert sorted(refused) == ["other-features", "other-numpy"]
    assert "numpy 1.0.0 (here " in refused["other-numpy"]


def test_evaluate_prints_model_beside_baseline(
    trained: Path, export_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["pdm", "evaluate", "--model", "cli", "--data", str(export_dir)]
    code, out, err = _run(capsys, *args, "--models-dir", str(trained), "--json")
    assert code == 0, err
    result = json.loads(out)
    comps = result["components"]
    assert "all" in comps
    for part in comps.values():
        m = part["model"]
        for key in ("recall_2h", "recall_8h", "lead_median_h", "false_alarms_per_machine_week"):
            assert key in m
        assert part["baseline"] is None or "recall_2h" in part["baseline"]
    code, out, _ = _run(capsys, *args, "--models-dir", str(trained))
    assert code == 0
    assert "baseline" in out
    assert "FA/mw" in out
    # the counts, beside a share with a decimal: a rounded 90 % is no target met
    m = comps["all"]["model"]
    share = f"{100 * m['warned_2h'] / m['wear_failures']:.1f} %"
    line = f"all components, model: warned >= 2 h {m['warned_2h']} of {m['wear_failures']} wear "
    assert f"{line}failures ({share})" in out
    assert "all components, baseline: warned >= 2 h" in out


@pytest.mark.parametrize("what", ["missing", "unfinished"])
def test_bad_data_is_one_line_and_exit_2(
    what: str, trained: Path, export_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    if what == "unfinished":
        shutil.copytree(export_dir, data)
        (data / "manifest.json").unlink()
    for args in (
        ["pdm", "train", "--data", str(data), "--models-dir", str(tmp_path / "m")],
        ["pdm", "evaluate", "--model", "cli", "--data", str(data), "--models-dir", str(trained)],
    ):
        code, _, err = _run(capsys, *args)
        assert code == 2
        assert err.count("\n") == 1
        assert err.startswith(f"moldlab pdm {args[1]}: ")
        assert "Traceback" not in err


def test_an_unknown_or_foreign_model_is_exit_2(
    trained: Path, export_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["pdm", "evaluate", "--data", str(export_dir), "--models-dir", str(trained)]
    code, _, err = _run(capsys, *args, "--model", "nope")
    assert code == 2
    assert "no model 'nope'" in err
    foreign = tmp_path / "foreign"
    shutil.copytree(trained / "cli", foreign)
    card = json.loads((foreign / "card.json").read_text())
    card["versions"]["numpy"] = "1.0.0"
    (foreign / "card.json").write_text(json.dumps(card))
    code, _, err = _run(capsys, *args, "--model", str(foreign))
    assert code == 2
    assert "numpy 1.0.0" in err
    assert err.count("\n") == 1


def test_training_on_one_press_is_exit_2(
    tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    # every row is scored by models that never saw its press: one press leaves none to fit
    one = small_export(tmp_path_factory, machines=1, days=2.0)
    models = tmp_path_factory.mktemp("one-press-models")
    code, _, err = _run(capsys, "pdm", "train", "--data", str(one), "--models-dir", str(models))
    assert code == 2
    assert err.splitlines()[-1] == (  # after the progress bar
        "moldlab pdm train: training needs at least two presses "
        "(each is scored by models that never saw it)"
    )
    assert not any(models.iterdir())  # no half-written model


@pytest.mark.parametrize("budget", ["0", "-1", "nan", "inf", "1e308"])
def test_a_false_alarm_budget_out_of_range_is_one_line_and_exit_2(
    budget: str, export_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["pdm", "train", "--data", str(export_dir), "--models-dir", str(tmp_path / "m")]
    code, _, err = _run(capsys, *args, "--fa-budget", budget)
    assert code == 2
    assert err.count("\n") == 1
    assert "--fa-budget must be above 0 and at most 50" in err
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").iterdir())
