"""Ingest's settings, from MOLDLAB_* environment variables, validated at start-up."""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts import BrokerUrl
from contracts.secrets import refuse_weak_password

# An MQTT share name may hold no '/', '+' or '#'; a worker name becomes part of a client id.
_NAME = r"^[A-Za-z0-9_.-]{1,64}$"


class IngestSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MOLDLAB_", extra="ignore")

    database_url: str = Field(description="postgresql://user:password@host:port/dbname")
    mqtt_url: str = Field(default="mqtt://127.0.0.1:1883", description="the plant broker")
    ingest_client_id: str = Field(
        default="moldlab-ingest",
        description="MQTT client id; the broker keeps this persistent session's messages",
    )
    ingest_site: str = Field(default="+", description="the site to subscribe to (+ for all)")
    ingest_batch_max_messages: int = Field(
        default=500,
        ge=1,
        le=100_000,
        description="the most messages in one batch (a batch goes as soon as the database is "
        "free, and grows while the previous one is written)",
    )
    ingest_batch_max_wait_s: float = Field(
        default=0.0,
        ge=0,
        le=10,
        description="how long a batch waits for more messages once a connection is free to "
        "write it (0: it goes at once; more: fewer, larger transactions at a light load)",
    )
    ingest_write_connections: int = Field(
        default=2,
        ge=1,
        le=8,
        description="database connections writing batches at once (latest_value and pruning "
        "have one more each)",
    )
    ingest_max_payload_bytes: int = Field(default=1_048_576, ge=1024)
    # The plant's limits: a message that would pass one is refused (reason "limit").
    ingest_max_machines: int = Field(default=1000, ge=1, description="machines in all")
    ingest_max_machines_per_site: int = Field(default=500, ge=1, description="machines a site")
    ingest_max_signals: int = Field(default=2000, ge=1, description="distinct signal names")
    ingest_max_signals_per_machine: int = Field(default=256, ge=1, description="signals a machine")
    ingest_rejected_keep_days: float = Field(
        default=30.0, gt=0, le=3650, description="how long rejected messages are kept"
    )
    # message_log keeps (source, seq) this long: a redelivery older than that is written again.
    ingest_dedup_window_days: float = Field(default=7.0, gt=0, le=3650)
    ingest_shared_group: str | None = Field(
        default=None,
        pattern=_NAME,
        description="share the load with the other workers of this MQTT v5 shared "
        "subscription group ($share/<group>/...); unset: a plain subscription",
    )
    ingest_worker: str | None = Field(
        default=None,
        pattern=_NAME,
        validate_default=True,
        description="this worker's name in its shared group, stable across restarts and "
        "unique in the group: its session is <client id>-<worker>",
    )
    ingest_max_clock_skew_s: float = Field(
        default=10.0,
        gt=0,
        description="a gateway whose clock is further than this from ingest's is logged",
    )
    ingest_metrics_host: str = Field(default="127.0.0.1", description="metrics listen address")
    ingest_metrics_port: int = Field(
        default=9109, ge=0, le=65535, description="Prometheus metrics port; 0: none"
    )

    @field_validator("database_url", "mqtt_url")
    @classmethod
    def _strong(cls, value: str, info: ValidationInfo) -> str:
        return refuse_weak_password(value, f"MOLDLAB_{(info.field_name or '').upper()}")

    @field_validator("mqtt_url")
    @classmethod
    def _broker(cls, value: str) -> str:
        BrokerUrl.parse(value).tls_context()  # a bad URL or an unreadable CA file: now
        return value

    @field_validator("ingest_worker")
    @classmethod
    def _worker_with_group(cls, worker: str | None, info: ValidationInfo) -> str | None:
        # A missing name would give every worker the same client id, and each would take
        # the session over from the other at every connection.
        group = info.data.get("ingest_shared_group")
        if group is not None and worker is None:
            raise ValueError(
                "a shared group needs a worker name (--worker): unique in the group and "
                "the same at every restart"
            )
        if worker is not None and group is None and "ingest_shared_group" in info.data:
            raise ValueError("a worker name is for a shared group (--shared-group) only")
        return worker

    @property
    def mqtt_client_id(self) -> str:
        """The broker session's client id: one per worker of a shared group."""
        if self.ingest_worker is None:
            return self.ingest_client_id
        return f"{self.ingest_client_id}-{self.ingest_worker}"
