"""Empty or default passwords are refused for a server on another host, in every setting that
holds one; this machine's servers (the demo, the tests) may go without."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from contracts.secrets import weak_password
from dashboard_api import ApiSettings
from ingest import IngestSettings
from moldlab.cli import main


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("postgresql://moldlab:secret@db.plant:5432/moldlab", "well-known default ('secret')"),
        ("postgresql://moldlab:Secret@10.0.0.5/moldlab", "well-known default"),
        ("postgresql://moldlab:@db.plant/moldlab", "is empty"),
        ("mqtt://edge:changeme@broker.plant:1883", "well-known default"),
        ("postgresql://moldlab:%73ecret@db.plant/moldlab", "well-known default"),  # %73 = s
        ("postgresql://moldlab:secret@[fd00::5]/moldlab", "well-known default"),
    ],
)
def test_a_weak_password_for_another_host_is_named(url: str, refused: str) -> None:
    why = weak_password(url)
    assert why is not None
    assert refused in why


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres@127.0.0.1:5432/moldlab",  # the demo and the tests
        "postgresql://postgres:postgres@localhost/moldlab",
        "postgresql://postgres:secret@[::1]/moldlab",
        "postgresql://moldlab@db.plant/moldlab",  # no password: .pgpass or a certificate
        "postgresql://moldlab:Xq7-long-and-random@db.plant/moldlab",
        "mqtt://127.0.0.1:1883",
    ],
)
def test_this_machine_or_no_password_or_a_strong_one_is_fine(url: str) -> None:
    assert weak_password(url) is None


def test_the_api_and_ingest_settings_refuse_one_naming_the_variable() -> None:
    weak = "postgresql://moldlab:secret@db.plant/moldlab"
    with pytest.raises(ValidationError, match="MOLDLAB_DATABASE_URL"):
        ApiSettings(database_url=weak)
    with pytest.raises(ValidationError, match="MOLDLAB_DATABASE_URL"):
        IngestSettings(database_url=weak)
    with pytest.raises(ValidationError, match="MOLDLAB_MQTT_URL"):
        IngestSettings(database_url="postgresql://x@127.0.0.1/d",
                       mqtt_url="mqtt://ingest:password@broker.plant")  # fmt: skip


def test_the_commands_say_so_in_one_line_and_start_nothing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOLDLAB_DATABASE_URL", "postgresql://moldlab:changeme@db.plant/moldlab")
    assert main(["api"]) == 2
    err = capsys.readouterr().err
    assert "MOLDLAB_DATABASE_URL" in err
    assert "changeme" in err  # the default, which is no secret, is named
    assert main(["user", "list"]) == 2
    assert "strong password" in capsys.readouterr().err


def test_an_edge_gateway_refuses_a_default_broker_password(tmp_path: Path) -> None:
    from edge.config import load_config
    from edge.errors import ConfigError

    config = tmp_path / "gateway.yaml"
    config.write_text(
        "gateway_id: pi-1\nsite: s\narea: a\nline: l\n"
        "broker:\n  url: mqtt://broker.plant:1883\n  username: edge\n  password: public\n"
        "outbox:\n  path: outbox.sqlite\n"
        "machines:\n  - machine_id: imm-01\n    modbus: {host: 10.0.0.7}\n"
    )
    with pytest.raises(ConfigError, match="the broker password"):
        load_config(config)
