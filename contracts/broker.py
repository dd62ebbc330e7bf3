"""The MQTT broker address every deployable is given: mqtt://[user[:password]@]host[:port]."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import TypedDict
from urllib.parse import unquote, urlsplit

from contracts.errors import ContractError


class ClientOptions(TypedDict):
    """The connection keywords of aiomqtt.Client, as one broker URL gives them."""

    hostname: str
    port: int
    username: str | None
    password: str | None
    tls_context: ssl.SSLContext | None


@dataclass(frozen=True, slots=True)
class BrokerUrl:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> BrokerUrl:
        """Parse mqtt:// (plain, port 1883) or mqtts:// (TLS, port 8883) URLs."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ContractError(f"broker URL {url!r} is not mqtt://host[:port] or mqtts://...")
        tls = parts.scheme == "mqtts"
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError as exc:
            raise ContractError(f"broker URL {url!r} has a bad port") from exc
        return cls(
            host=parts.hostname,
            port=port,
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

    def client_options(self) -> ClientOptions:
        """Keywords for aiomqtt.Client: `aiomqtt.Client(**url.client_options(), ...)`."""
        return ClientOptions(
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            tls_context=ssl.create_default_context() if self.tls else None,
        )

    def __str__(self) -> str:
        user = f"{self.username}:***@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"
