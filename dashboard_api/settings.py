"""The API's settings, from MOLDLAB_* environment variables, validated at start-up."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from analytics.oee import MicroStops
from analytics.report import PerformanceSettings
from contracts.secrets import refuse_weak_password


class PerformanceEnv(BaseSettings):
    """How OEE is computed: shared by the API and `moldlab report`, so both give one figure."""

    model_config = SettingsConfigDict(env_prefix="MOLDLAB_", extra="ignore")

    micro_stop_s: float = Field(
        default=300.0,
        gt=0,
        le=3600,
        description="an idle or unplanned stop shorter than this, as a whole, is a micro-stop",
    )
    micro_stop_convention: MicroStops = Field(
        default=MicroStops.ISO,
        description="iso: micro-stops are availability losses (ISO 22400); tpm: they count as "
        "production time and show as speed loss",
    )

    def performance(self, convention: MicroStops | None = None) -> PerformanceSettings:
        return PerformanceSettings(self.micro_stop_s, convention or self.micro_stop_convention)


class ApiSettings(PerformanceEnv):
    model_config = SettingsConfigDict(env_prefix="MOLDLAB_", extra="ignore")

    database_url: str = Field(description="postgresql://user:password@host:port/dbname")

    api_writer_database_url: str | None = Field(
        default=None,
        description="the database role of the workspace's own writes (logins and sessions, "
        "alert acknowledgements, the performance rollup), so that MOLDLAB_DATABASE_URL's may "
        "only read; default: MOLDLAB_DATABASE_URL",
    )

    @field_validator("database_url")
    @classmethod
    def _strong(cls, value: str) -> str:
        return refuse_weak_password(value, "MOLDLAB_DATABASE_URL")

    @field_validator("api_writer_database_url")
    @classmethod
    def _strong_writer(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return refuse_weak_password(value, "MOLDLAB_API_WRITER_DATABASE_URL")

    @property
    def writer_database_url(self) -> str:
        """Where the workspace writes: its own role, or the reading one."""
        return self.api_writer_database_url or self.database_url

    api_host: str = Field(default="127.0.0.1", description="address to listen on")
    api_port: int = Field(default=8000, ge=1, le=65535)
    api_metrics_host: str = Field(
        default="127.0.0.1", description="where Prometheus reads the API's metrics"
    )
    api_metrics_port: int = Field(
        default=9110, ge=0, le=65535,
        description="the API's metrics port, never the public one; 0: none",
    )  # fmt: skip
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
    kiosk_refresh_s: float = Field(
        default=5.0, ge=0.5, le=300,
        description="how often the visitor kiosk's picture of the floor is taken (while "
        "someone looks)",
    )  # fmt: skip
    kiosk_max_clients: int = Field(
        default=2000, ge=1, le=100_000,
        description="kiosk WebSocket clients at once (about 40 KiB each); one more is refused "
        "until one leaves",
    )  # fmt: skip
    api_session_hours: float = Field(
        default=12.0, gt=0, le=24 * 30,
        description="how long a login of the engineer workspace lasts (a shift and a half)",
    )  # fmt: skip
    api_cookie_secure: bool = Field(
        default=True,
        description="send the session cookie over HTTPS only (browsers also accept it from "
        "http://localhost and 127.0.0.1); false only behind plain HTTP on a closed network",
    )
    api_login_max_failures: int = Field(
        default=5, ge=1, le=1000,
        description="failed logins of one name from one address (four times that from one "
        "address) within api_login_window_s before logins answer 429",
    )  # fmt: skip
    api_login_window_s: float = Field(
        default=900.0, gt=0, le=86_400, description="the window of api_login_max_failures"
    )
    api_performance_refresh_s: float = Field(
        default=30.0,
        ge=0,
        le=86_400,
        description="seconds between the API's passes that keep the OEE rollup current "
        "(performance_slice); 0: none (run `moldlab report refresh` instead)",
    )
