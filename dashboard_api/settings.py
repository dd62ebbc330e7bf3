"""The API's settings, from MOLDLAB_* environment variables, validated at start-up."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MOLDLAB_", extra="ignore")

    database_url: str = Field(description="postgresql://user:password@host:port/dbname")
    api_host: str = Field(default="127.0.0.1", description="address to listen on")
    api_port: int = Field(default=8000, ge=1, le=65535)
    api_statement_timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="longest a query may run, and a request wait for a database connection,"
        " before the request answers 503",
    )
    api_max_signals_per_machine: int = Field(
        default=256, ge=1, le=10_000, description="signals per machine in a response, by name"
    )
    live_interval_s: float = Field(
        default=1.0, gt=0, le=60, description="how often live updates are pushed"
    )
    live_max_machines: int = Field(
        default=200, ge=1, le=10_000, description="machines the live socket follows, by place"
    )
