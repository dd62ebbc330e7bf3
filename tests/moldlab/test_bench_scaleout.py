"""`moldlab bench scaleout`: worker counts side by side under one load."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest


@pytest.mark.infra
@pytest.mark.slow
def test_bench_scaleout_prints_each_worker_count_side_by_side(
    moldlab_cli: Callable[..., Any],
) -> None:
    argv = ["bench", "scaleout", "--workers", "1,2", "--seconds", "5", "--rate", "2000",
            "--machines", "4", "--signals", "10"]  # fmt: skip
    result = moldlab_cli(*argv)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "moldlab bench scaleout --workers 1,2 --seconds 5 --rate 2000 --machines 4 --signals 10"
    )
    table = lines[lines.index(next(x for x in lines if x.startswith("workers "))) + 1 :]
    rows = [re.split(r"\s+", row.strip()) for row in table]
    assert [row[0] for row in rows] == ["1", "2"]
    for row in rows:  # a light load: what is offered is committed, whatever the count
        assert float(row[1].replace(",", "")) == pytest.approx(2000, rel=0.3)
    assert rows[0][2] == "1.00x"


def test_bad_worker_counts_are_refused(moldlab_cli: Callable[..., Any]) -> None:
    for workers in ("0,2", "one"):
        result = moldlab_cli("bench", "scaleout", "--workers", workers)
        assert result.returncode == 2
        assert "--workers" in result.stderr
