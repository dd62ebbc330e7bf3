"""The gateway's YAML config (which broker, which machines, how often) and the register maps."""

from __future__ import annotations

import dataclasses
from importlib import resources
from pathlib import Path
from typing import Annotated

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
from contracts.configfile import field_path, located, problems
from contracts.registers import RegisterMap
from contracts.topics import check_segment
from edge.errors import ConfigError

# Ids and plant names become topic segments, so they follow the topic rules.
_Segment = Annotated[str, AfterValidator(lambda value: check_segment("name", value))]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModbusConfig(_Model):
    host: str = Field(min_length=1)
    port: int = Field(default=502, ge=1, le=65535)
    unit_id: int = Field(default=1, ge=0, le=255)
    register_map: Path | None = None  # relative to the config file; None: the packaged map
    poll_interval_s: float = Field(default=1.0, gt=0, le=3600)
    timeout_s: float = Field(default=3.0, gt=0, le=60)

    @field_validator("register_map")
    @classmethod
    def _relative_to_config(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        base_dir = (info.context or {}).get("base_dir")
        return base_dir / value if value and base_dir and not value.is_absolute() else value


class MachineConfig(_Model):
    machine_id: _Segment
    modbus: ModbusConfig


class BrokerConfig(_Model):
    url: str = Field(description="mqtt://host[:port] or mqtts://host[:port]")
    username: str | None = None  # overrides one in the URL
    password: SecretStr | None = None
    client_id: str | None = None  # default: moldlab-edge-<gateway_id>

    @field_validator("url")
    @classmethod
    def _parses(cls, value: str) -> str:
        BrokerUrl.parse(value)
        return value

    def endpoint(self) -> BrokerUrl:
        url = BrokerUrl.parse(self.url)
        return dataclasses.replace(
            url,
            username=self.username or url.username,
            password=self.password.get_secret_value() if self.password else url.password,
        )


class GatewayConfig(_Model):
    gateway_id: _Segment
    site: _Segment
    area: _Segment
    line: _Segment
    broker: BrokerConfig
    machines: list[MachineConfig] = Field(min_length=1)
    telemetry_interval_s: float = Field(default=1.0, gt=0, le=3600)

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
