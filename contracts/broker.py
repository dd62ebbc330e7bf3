"""The MQTT broker address every deployable is given: mqtt://[user[:password]@]host[:port].

mqtts:// speaks TLS, trusting the system's CAs or, with `?ca=/path/ca.crt`, the plant's
private CA only (deploy/tls/make-certs.sh makes one).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import TypedDict
from urllib.parse import parse_qs, unquote, urlsplit

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
    ca_file: str | None = None  # the CA that signed the broker's certificate (mqtts only)

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
        query = parse_qs(parts.query, keep_blank_values=True)
        unknown = sorted(set(query) - {"ca"})
        if unknown:
            raise ContractError(f"broker URL {cls._shown(url)}: unknown parameter {unknown[0]!r}")
        ca_file = query.get("ca", [None])[-1]
        if ca_file is not None and not tls:
            raise ContractError(f"broker URL {cls._shown(url)}: ?ca= needs mqtts://")
        if ca_file == "":
            raise ContractError(f"broker URL {cls._shown(url)}: ?ca= names no file")
        return cls(
            host=parts.hostname,
            port=port,
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            ca_file=ca_file,
        )

    @staticmethod
    def _shown(url: str) -> str:
        """`url` with its password hidden, for an error message."""
        parts = urlsplit(url)
        if parts.password:
            url = url.replace(f":{parts.password}@", ":***@", 1)
        return repr(url[:200])

    def client_options(self) -> ClientOptions:
        """Keywords for aiomqtt.Client: `aiomqtt.Client(**url.client_options(), ...)`."""
        return ClientOptions(
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            tls_context=self.tls_context(),
        )

    def tls_context(self) -> ssl.SSLContext | None:
        """The TLS context of an mqtts:// URL (its CA's, if it names one); ContractError if
        that CA file cannot be read."""
        if not self.tls:
            return None
        try:
            return ssl.create_default_context(cafile=self.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ContractError(f"broker CA file {self.ca_file!r} cannot be read: {exc}") from None

    def __str__(self) -> str:
        user = f"{self.username}:***@" if self.username else ""
        ca = f"?ca={self.ca_file}" if self.ca_file else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}{ca}"
