"""The gateway's YAML config (which broker, which machines, how often) and the register maps."""

from __future__ import annotations

import dataclasses
import ssl
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from contracts import BrokerUrl
from contracts.broker import ClientOptions
from contracts.configfile import field_path, located, problems
from contracts.registers import RegisterMap
from contracts.secrets import refuse, refuse_weak_password, weak_secret
from contracts.topics import check_segment
from edge.errors import ConfigError

# Ids and plant names become topic segments, so they follow the topic rules.
_Segment = Annotated[str, AfterValidator(lambda value: check_segment("name", value))]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _relative_to_config(value: object, info: ValidationInfo) -> object:
    base_dir = (info.context or {}).get("base_dir")
    if isinstance(value, str | Path) and base_dir and not Path(value).is_absolute():
        return base_dir / value
    return value


def _existing_file(value: Path | None) -> Path | None:
    if value is not None and not value.is_file():
        raise ValueError(f"{value}: no such file")
    return value


# A file named in the config: relative to the config file, and there at start-up.
_ConfigFile = Annotated[Path, AfterValidator(_existing_file)]


class ModbusConfig(_Model):
    host: str = Field(min_length=1)
    port: int = Field(default=502, ge=1, le=65535)
    unit_id: int = Field(default=1, ge=0, le=255)
    register_map: _ConfigFile | None = None  # relative to the config file; None: the packaged map
    poll_interval_s: float = Field(default=1.0, gt=0, le=3600)
    # Per register group of the map (e.g. status: 0.5); groups not named poll at poll_interval_s.
    poll_intervals_s: dict[str, Annotated[float, Field(gt=0, le=3600)]] = Field(
        default_factory=dict
    )
    timeout_s: float = Field(default=3.0, gt=0, le=60)

    _paths = field_validator("register_map", mode="before")(_relative_to_config)

    @field_validator("register_map")
    @classmethod
    def _a_valid_map(cls, value: Path | None) -> Path | None:
        if value is not None:
            try:
                load_register_map(value)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("poll_intervals_s")
    @classmethod
    def _groups_of_the_map(cls, value: dict[str, float], info: ValidationInfo) -> dict[str, float]:
        if not value or "register_map" not in info.data:  # a bad map is reported on its own
            return value
        path: Path | None = info.data["register_map"]
        groups = load_register_map(path).groups
        if unknown := sorted(set(value) - set(groups)):
            raise ValueError(
                f"no register group {', '.join(map(repr, unknown))} in the register map "
                f"{path or '(the packaged one)'}; its groups: {', '.join(groups)}"
            )
        return value

    def interval_s(self, group: str) -> float:
        """How often registers of `group` are polled."""
        return self.poll_intervals_s.get(group, self.poll_interval_s)


class _Broker(_Model):
    url: str = Field(description="mqtt://host[:port] or mqtts://host[:port]")
    username: str | None = None  # overrides one in the URL
    password: SecretStr | None = None

    @field_validator("url")
    @classmethod
    def _parses(cls, value: str) -> str:
        BrokerUrl.parse(value)
        return refuse_weak_password(value, "the broker url")

    @model_validator(mode="after")
    def _strong_password(self) -> _Broker:
        if self.password is not None:
            host = BrokerUrl.parse(self.url).host
            refuse(weak_secret(host, self.password.get_secret_value()), "the broker password")
        return self

    def endpoint(self) -> BrokerUrl:
        url = BrokerUrl.parse(self.url)
        return dataclasses.replace(
            url,
            username=self.username or url.username,
            password=self.password.get_secret_value() if self.password else url.password,
        )


class MqttSourceConfig(_Broker):
    """A machine that publishes contracts messages itself, to a broker the gateway reaches."""

    topic: str = Field(min_length=1, description="what to subscribe to, wildcards allowed")
    client_id: str | None = None  # default: moldlab-edge-<gateway_id>-<machine_id>


class MachineConfig(_Model):
    machine_id: _Segment
    modbus: ModbusConfig | None = None
    mqtt: MqttSourceConfig | None = None

    @model_validator(mode="after")
    def _one_source(self) -> MachineConfig:
        if (self.modbus is None) == (self.mqtt is None):
            raise ValueError("a machine has either `modbus` or `mqtt`, not both nor neither")
        return self


class TlsConfig(_Model):
    """TLS to the plant broker beyond the system's CAs: a private CA, a client certificate."""

    ca_file: _ConfigFile | None = None  # the CA that signed the broker's certificate
    cert_file: _ConfigFile | None = None  # this gateway's certificate, if the broker asks
    key_file: _ConfigFile | None = None

    _paths = field_validator("ca_file", "cert_file", "key_file", mode="before")(_relative_to_config)

    @model_validator(mode="after")
    def _cert_with_key(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file and self.key_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context


class BrokerConfig(_Broker):
    client_id: str | None = None  # default: moldlab-edge-<gateway_id>
    tls: TlsConfig | None = None  # only with mqtts://
    # A gateway that dies without closing its connection (a power cut, a cut cable) is
    # declared dead, and its last will published, 1.5 x this after the broker last heard it.
    keepalive_s: int = Field(default=60, ge=2, le=3600)

    @model_validator(mode="after")
    def _tls_with_mqtts(self) -> BrokerConfig:
        if self.tls is not None and not BrokerUrl.parse(self.url).tls:
            raise ValueError("`tls` needs an mqtts:// url")
        return self

    def client_options(self) -> ClientOptions:
        """Keywords for aiomqtt.Client, with this config's TLS files."""
        options = self.endpoint().client_options()
        if self.tls is not None:
            options["tls_context"] = self.tls.context()
        return options


class OutboxConfig(_Model):
    """The durable queue of messages the database has not committed yet (SQLite, WAL)."""

    path: Path = Path("outbox.sqlite")  # relative to the working directory
    max_mb: float = Field(default=1024, gt=0, description="past this, the oldest are dropped")
    drain_rate_per_s: float = Field(
        default=200, gt=0, description="messages a second sent from a backlog, besides live data"
    )
    # full: a power cut loses nothing committed; normal: fewer SD card writes, a power cut may
    # lose the last second (a killed process still loses nothing).
    synchronous: Literal["full", "normal"] = "full"
    # committed: a message leaves when moldlab's ingest confirms the database has it;
    # acknowledged: when the broker has it (a broker read by something else than ingest).
    keep_until: Literal["committed", "acknowledged"] = "committed"
    resend_after_s: float = Field(
        default=30,
        ge=1,
        le=3600,
        description="a message the broker took but the database has not confirmed in this"
        " long is sent again (sooner when an ingest worker subscribes)",
    )


class MetricsConfig(_Model):
    """Health and counters in Prometheus text format at http://host:port/metrics."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=9108, ge=0, le=65535)  # 0: any free port


class GatewayConfig(_Model):
    gateway_id: _Segment
    site: _Segment
    area: _Segment
    line: _Segment
    broker: BrokerConfig
    machines: list[MachineConfig] = Field(min_length=1)
    telemetry_interval_s: float = Field(default=1.0, gt=0, le=3600)
    outbox: OutboxConfig = OutboxConfig()
    metrics: MetricsConfig = MetricsConfig()

    @model_validator(mode="after")
    def _distinct_ids(self) -> GatewayConfig:
        ids = [m.machine_id for m in self.machines] + [self.gateway_id]
        if dupes := sorted({i for i in ids if ids.count(i) > 1}):
            raise ValueError(f"machine ids must differ from each other and the gateway: {dupes}")
        return self


def load_config(path: Path | str) -> GatewayConfig:
    """The validated gateway config in `path`; ConfigError names the file, line and field."""
    path = Path(path)
    text = _read(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    try:
        return GatewayConfig.model_validate(data, context={"base_dir": path.parent})
    except ValidationError as exc:
        root = yaml.compose(text)  # again, for the line numbers
        raise ConfigError(located(exc, root, str(path))) from None


def load_register_map(path: Path | None = None) -> RegisterMap:
    """The register map in `path`, or the packaged contracts/registers.yaml."""
    if path is None:
        text = (resources.files("contracts") / "registers.yaml").read_text()
    else:
        text = _read(path)
    try:
        return RegisterMap.model_validate(yaml.safe_load(text))
    except yaml.YAMLError as exc:
        raise ConfigError(f"register map {path}: not valid YAML: {exc}") from None
    except ValidationError as exc:
        found = "; ".join(f"{field_path(loc)}: {msg}" for loc, msg in problems(exc))
        raise ConfigError(f"register map {path or 'the default'}: {found}") from None


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
