"""The demo scores its machines with the model in its data dir, and serves the predictions;
with no model there, it trains one first (moldlab.pdm_bootstrap) while the rest runs."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from logins import login_headers
from pdm_exports import small_model

from analytics.pdm import PdmModel, load_model
from moldlab import pdm_bootstrap
from moldlab.pdm_bootstrap import ensure_model
from moldlab.servers.postgres import CLUSTER_RECORD, SHARED_CLUSTERS
from moldlab.servers.process import free_port
from plant.calendar import PlannedStop
from simulators.scenario import load_scenario

pytestmark = [pytest.mark.infra, pytest.mark.slow]


@pytest.fixture
def home() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(dir="/tmp", prefix="moldlab-demo-pdm-"))
    yield path
    record = path / ".moldlab" / CLUSTER_RECORD
    if record.is_file():  # as root, the cluster went to /var/lib/moldlab/<id>/postgres
        cluster_home = Path(record.read_text().strip()).parent
        if cluster_home.parent == SHARED_CLUSTERS:
            shutil.rmtree(cluster_home, ignore_errors=True)
    shutil.rmtree(path, ignore_errors=True)


def _planned_stop_soon() -> PlannedStop | None:
    """The demo floor's break (or time without a shift) in the next minute, if any.

    The scorer scores a machine with a recent cycle; a demo started in the 30-minute break
    of its plant calendar has none until the break ends.
    """
    calendar = load_scenario("demo").machines[0].calendar
    now = datetime.now(UTC)
    stops = calendar.planned_stops_between(now, now + timedelta(seconds=60))
    return stops[0] if stops else None


def _without_requests(text: str) -> str:
    """The demo's log without the API's access lines (the test's own polling)."""
    return "\n".join(line for line in text.splitlines() if "uvicorn.access" not in line)


def test_a_model_in_the_models_dir_is_used_as_it_is(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    model = small_model(tmp_path_factory)
    models = tmp_path / "models"
    shutil.copytree(model, models / model.name)
    exported = tmp_path / "export"
    used = ensure_model(models, exported)
    assert used.name == model.name
    assert used.components  # loaded, ready to score
    assert not exported.exists()  # nothing exported, nothing trained


def test_a_model_this_version_cannot_load_is_replaced_by_a_new_one(
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # a demo data dir from before an upgrade: its model was made for another feature list
    old = tmp_path / "models" / "demo-old"
    shutil.copytree(small_model(tmp_path_factory), old)
    card = json.loads((old / "card.json").read_text())
    card["features"] = card["features"][:-1]
    (old / "card.json").write_text(json.dumps(card))
    made: list[str] = []
    monkeypatch.setattr(pdm_bootstrap.os, "nice", lambda n: 0)  # not this test process
    monkeypatch.setattr(pdm_bootstrap, "_export", lambda d, m, days: made.append("export"))

    new = load_model(small_model(tmp_path_factory))

    def train(export_dir: Path, models_dir: Path) -> PdmModel:
        made.append("train")
        return new

    monkeypatch.setattr(pdm_bootstrap, "_train", train)
    with caplog.at_level(logging.INFO, logger="moldlab.pdm"):
        assert ensure_model(tmp_path / "models", tmp_path / "export") is new
    assert made == ["export", "train"]
    (line,) = [r.getMessage() for r in caplog.records if "cannot be used" in r.getMessage()]
    assert line.startswith("model demo-old cannot be used (")
    assert line.endswith("): training a new one")
    assert "\n" not in line
    assert len(line) < 400


def test_the_demo_serves_predictions_of_its_machines(
    home: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    model = small_model(tmp_path_factory)
    stop = _planned_stop_soon()
    if stop is not None:  # the floor's clock is the wall clock: no cycles to score until it ends
        pytest.skip(f"the demo floor has a planned {stop.reason} now ({stop.start_at:%H:%M} to"
                    f" {stop.end_at:%H:%M} UTC): its machines make no cycles to score")  # fmt: skip
    shutil.copytree(model, home / ".moldlab" / "models" / model.name)
    port = free_port()
    log = home / "demo.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOLDLAB_")}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moldlab", "demo", "--port", str(port)],
            cwd=home, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 150
        predictions: list[dict[str, object]] = []
        base = f"http://127.0.0.1:{port}/api/v1/maintenance"
        engineer: dict[str, str] | None = None  # predictions are for engineers: log one in
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                if engineer is None:
                    found = re.search(
                        r"MOLDLAB_DATABASE_URL=(\S+) ", log.read_text(errors="replace")
                    )
                    engineer = login_headers(found.group(1)) if found else None
                if engineer is not None:
                    answer = httpx.get(f"{base}/predictions", timeout=2, headers=engineer)
                    predictions = answer.json()["predictions"]
                    if len({p["place"] for p in predictions}) == 3:
                        break
            except (httpx.HTTPError, KeyError, psycopg.Error):
                pass  # not up yet, or not migrated yet
            time.sleep(1)
        text = log.read_text(errors="replace")
        assert len({p["place"] for p in predictions}) == 3, _without_requests(text)[-4000:]
        assert {p["model"] for p in predictions} == {model.name}
        assert engineer is not None
        assert httpx.get(f"{base}/model", timeout=2).status_code == 401  # a visitor
        card = httpx.get(f"{base}/model", timeout=2, headers=engineer).json()
        assert card["name"] == model.name
        assert "started pdm" in text
        assert f"scoring with model {model.name}" in text
        assert "Traceback" not in text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0, log.read_text()[-3000:]
