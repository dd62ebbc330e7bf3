"""Ingest's settings, from MOLDLAB_* environment variables, validated at start-up."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class IngestSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MOLDLAB_", extra="ignore")

    database_url: str = Field(description="postgresql://user:password@host:port/dbname")
    mqtt_url: str = Field(default="mqtt://127.0.0.1:1883", description="the plant broker")
    ingest_client_id: str = Field(
        default="moldlab-ingest",
        description="MQTT client id; the broker keeps this persistent session's messages",
    )
    ingest_site: str = Field(default="+", description="the site to subscribe to (+ for all)")
    ingest_batch_max_messages: int = Field(default=500, ge=1, le=100_000)
    ingest_batch_max_wait_s: float = Field(default=0.25, gt=0, le=10)
    ingest_max_payload_bytes: int = Field(default=1_048_576, ge=1024)
