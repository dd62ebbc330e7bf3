"""deploy/compose.yaml checked against the code, since no Docker engine runs here: every
setting a service needs is set and accepted by its settings class, every file it mounts
exists once the documented commands have run, images are pinned, and Prometheus and Grafana
ask for metrics and targets that exist."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dashboard_api import ApiSettings
from dashboard_api.metrics import ApiMetrics
from ingest import IngestSettings
from ingest.metrics import IngestMetrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
_VAR = re.compile(r"\$\{([A-Z_]+)(?::[?-][^}]*)?\}")
SECRET = "Plant-Secret-0f-Enough-Length"


@pytest.fixture(scope="module")
def compose() -> dict[str, object]:
    data = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def _services(compose: dict[str, object]) -> dict[str, dict[str, object]]:
    services = compose["services"]
    assert isinstance(services, dict)
    return services


def _env(service: dict[str, object], ca_file: Path) -> dict[str, str]:
    """The service's environment as the container gets it, every ${VAR} given a secret."""
    env = service.get("environment") or {}
    assert isinstance(env, dict)
    return {
        key: _VAR.sub(SECRET, str(value)).replace("/certs/ca.crt", str(ca_file))
        for key, value in env.items()
    }


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """deploy/ copied, with the secrets its README commands make."""
    out = tmp_path_factory.mktemp("plant") / "deploy"
    shutil.copytree(DEPLOY, out)
    subprocess.run(
        [str(out / "tls/make-certs.sh"), str(out / "secrets/tls"), "mosquitto"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    plant = ROOT / "simulators/scenarios/demo-plant.yaml"
    subprocess.run(
        [sys.executable, "-m", "moldlab", "broker", "acl", str(plant), "--out",
         str(out / "secrets/broker")],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return out


def test_every_image_is_pinned_to_a_version(compose: dict[str, object]) -> None:
    for name, service in _services(compose).items():
        image = str(service.get("image", ""))
        if "build" in service:
            continue
        tag = image.rpartition(":")[2]
        assert ":" in image, f"{name}: {image} has no tag"
        assert tag != "latest", f"{name}: {image}"
        assert re.search(r"\d+\.\d+", tag), f"{name}: {image} is not pinned to a version"
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11\.\d+-", dockerfile, re.M)


def test_every_variable_is_in_the_env_example(compose: dict[str, object]) -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    example = {
        line.split("=")[0]
        for line in (DEPLOY / "env.example").read_text().splitlines()
        if "=" in line
    }
    assert set(_VAR.findall(text)) <= example


def test_each_moldlab_service_is_accepted_by_its_settings(
    compose: dict[str, object], deployed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = _services(compose)
    ca_file = deployed / "secrets/tls/ca.crt"
    checked = []
    for name, service in services.items():
        command = service.get("command") or []
        assert isinstance(command, list)
        if "build" not in service or not command:
            continue
        env = _env(service, ca_file)
        for key in list(env):
            monkeypatch.setenv(key, env[key])
        if command == ["ingest"]:
            settings = IngestSettings()
            assert settings.ingest_shared_group == "plant"
            assert settings.ingest_worker
            user = settings.database_url.split("//")[1].split(":")[0]
            assert user == "moldlab_ingest"
        elif command == ["api"]:
            api = ApiSettings()  # type: ignore[call-arg]  # from the environment
            assert api.database_url.startswith("postgresql://moldlab_api:")
            assert api.writer_database_url.startswith("postgresql://moldlab_workspace:")
        elif command[:2] == ["pdm", "score"]:
            assert env["MOLDLAB_DATABASE_URL"].startswith("postgresql://moldlab_scorer:")
        elif command[0] == "sim":
            assert env["MOLDLAB_MQTT_URL"].startswith("mqtts://moldlab-sim:")
        else:
            raise AssertionError(f"{name}: {command} is not checked")
        for key in env:
            monkeypatch.delenv(key)
        checked.append(name)
    assert sorted(checked) == ["api", "ingest-1", "ingest-2", "scorer", "sim"]
    workers = {
        _env(services[n], ca_file)["MOLDLAB_INGEST_WORKER"] for n in ("ingest-1", "ingest-2")
    }
    assert workers == {"1", "2"}  # each its own session


def test_every_mounted_file_exists_and_the_broker_finds_its_own(
    compose: dict[str, object], deployed: Path
) -> None:
    mounts: dict[str, Path] = {}  # container path -> host path
    for name, service in _services(compose).items():
        for volume in service.get("volumes") or []:  # type: ignore[union-attr]
            source, _, rest = str(volume).partition(":")
            target = rest.split(":")[0]
            if source.startswith("."):
                host = deployed / source
                assert host.exists(), f"{name} mounts {source}, which is not there"
                if name == "mosquitto":
                    mounts[target] = host
    conf = (DEPLOY / "mosquitto/mosquitto.conf").read_text()
    for key in ("certfile", "keyfile", "password_file", "acl_file"):
        path = re.search(rf"^{key} (\S+)", conf, re.M)
        assert path, key
        target = next((t for t in mounts if path[1].startswith(t)), None)
        assert target, f"mosquitto.conf's {key} {path[1]} is in no mount"
        assert (mounts[target] / path[1][len(target) :].lstrip("/")).is_file(), path[1]
    assert re.search(r"^allow_anonymous false$", conf, re.M)
    assert "8883:8883" in str(_services(compose)["mosquitto"]["ports"])


def test_prometheus_scrapes_what_is_there_and_grafana_shows_real_metrics(
    compose: dict[str, object],
) -> None:
    services = _services(compose)
    scrape = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    for job in scrape["scrape_configs"]:
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, port = target.split(":")
                assert host in services, f"{job['job_name']}: no service {host}"
                env = dict(services[host].get("environment") or {})  # type: ignore[call-overload]
                ports = {k: v for k, v in env.items() if k.endswith("_METRICS_PORT")}
                if "build" in services[host]:  # moldlab's own: its settings say where
                    assert list(ports.values()) == [port], f"{host}: {ports}"
                    hosts = [v for k, v in env.items() if k.endswith("_METRICS_HOST")]
                    assert hosts == ["0.0.0.0"], f"{host} serves its metrics to itself only"
    known = {m.name for m in IngestMetrics().registry.collect()}
    known |= {m.name for m in ApiMetrics().registry.collect()}
    known |= set(re.findall(r'"(moldlab_[a-z_]+)"', (ROOT / "dashboard_api/app.py").read_text()))
    known |= set(
        re.findall(r'"(moldlab_pdm_[a-z_]+)"', (ROOT / "moldlab/pdm_score_cli.py").read_text())
    )
    scraped = {t for job in scrape["scrape_configs"] for c in job.get("static_configs", [])
               for t in c["targets"]}  # fmt: skip
    assert {"ingest-1:9109", "ingest-2:9109", "api:9110", "scorer:9111",
            "postgres-exporter:9187", "mosquitto-exporter:9234"} <= scraped  # fmt: skip
    edge = (ROOT / "edge/agent.py").read_text() + (ROOT / "edge/metrics.py").read_text()
    dashboard = json.loads((DEPLOY / "grafana/dashboards/pipeline.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    for name in set(re.findall(r"moldlab_[a-z_]+", " ".join(exprs))):
        base = re.sub(r"_(bucket|total|count|sum)$", "", name)
        assert base in known or f'"{base}"' in edge, f"the dashboard asks for {name}"
