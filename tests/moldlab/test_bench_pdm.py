"""`moldlab bench pdm` prints its figures and the command that made them (a small run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pdm_exports import small_model

from moldlab.cli import main

pytestmark = [pytest.mark.infra, pytest.mark.slow]


def test_bench_pdm_prints_cpu_per_pass_and_the_share_of_a_core(
    database_server_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = small_model(tmp_path_factory)
    args = ["bench", "pdm", "--machines", "2", "--passes", "3", "--model", str(model),
            "--database-url", database_server_url]  # fmt: skip
    assert main([*args, "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["command"].startswith("moldlab bench pdm --machines 2 --passes 3")
    assert figures["machines"] == 2
    assert figures["passes"] == 3
    assert 1 <= figures["scored_per_pass_median"] <= 2
    assert 0 < figures["cpu_per_pass_s_median"] <= figures["cpu_per_pass_s_max"]
    assert figures["core_pct"] == pytest.approx(100 * figures["cpu_per_pass_s_median"] / 60)
    assert figures["met"] == (figures["core_pct"] < 20)


def test_bench_pdm_without_a_model_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "pdm", "--models-dir", str(tmp_path)]) == 2
    assert "no model in" in capsys.readouterr().err
