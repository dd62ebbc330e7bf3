"""A gateway config for the edge tests: one Modbus machine on 127.0.0.1, a site of its own."""

from __future__ import annotations

import uuid
from pathlib import Path

from edge import GatewayConfig


def gateway_config(
    mqtt_url: str, port: int, outbox_dir: Path, **overrides: object
) -> GatewayConfig:
    """imm-01 polled every 0.1 s at `port`; a fresh site, so that no retained leftovers show."""
    data = {
        "gateway_id": "pi-test",
        "site": f"test-{uuid.uuid4().hex[:8]}",
        "area": "hall-a",
        "line": "line-1",
        "broker": {"url": mqtt_url},
        "machines": [
            {
                "machine_id": "imm-01",
                "modbus": {"host": "127.0.0.1", "port": port, "poll_interval_s": 0.1},
            }
        ],
        "telemetry_interval_s": 0.5,
        "outbox": {"path": str(outbox_dir / "outbox.sqlite")},
        "metrics": {"enabled": False},
        **overrides,
    }
    return GatewayConfig.model_validate(data)


def broker_only_config(
    mqtt_url: str, port: int, outbox_dir: Path, **overrides: object
) -> GatewayConfig:
    """The same for a gateway whose broker no ingest reads: a message leaves the outbox on
    the broker's acknowledgement (keep_until: acknowledged), as nobody confirms commits."""
    config = gateway_config(mqtt_url, port, outbox_dir, **overrides)
    outbox = config.outbox.model_copy(update={"keep_until": "acknowledged"})
    return config.model_copy(update={"outbox": outbox})
