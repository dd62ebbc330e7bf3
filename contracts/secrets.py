"""Weak credentials in a connection URL: refused outside this machine.

A service pointed at another host (the plant's database or broker) must not use an empty
password or one of the defaults that examples and images ship with: settings refuse such a
URL at start-up, naming the setting. On this machine (127.0.0.1, ::1, localhost, a Unix
socket) the demo and the tests run without a password, and that stays allowed. A URL with no
password at all is allowed anywhere: the credentials then come from elsewhere (a .pgpass
file, a client certificate).
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

# Defaults of examples, images and tutorials, compared without case.
DEFAULT_PASSWORDS = frozenset({
    "secret", "password", "passw0rd", "changeme", "change-me", "postgres", "moldlab", "admin",
    "root", "mosquitto", "mqtt", "public", "test", "default", "123456", "12345678",
})  # fmt: skip
_LOCAL = frozenset({"127.0.0.1", "::1", "localhost", ""})


def weak_password(url: str) -> str | None:
    """Why the password of `url` is not one to use on another host; None when it is fine."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        password = parts.password
    except ValueError:
        return None  # not a URL: the setting's own validation says so
    return None if password is None else weak_secret(host, unquote(password))


def weak_secret(host: str, password: str) -> str | None:
    """Why `password` is not one to use for `host`; None when it is fine (or `host` is this
    machine)."""
    host = host.lower().strip("[]")
    if host in _LOCAL or host.startswith("/"):
        return None
    if not password:
        return f"the password for {host} is empty"
    if password.lower() in DEFAULT_PASSWORDS:
        return f"the password for {host} is a well-known default ({password!r})"
    return None


def refuse_weak_password(url: str, setting: str) -> str:
    """`url`, or ValueError naming `setting` when its password is empty or a default."""
    refuse(weak_password(url), setting)
    return url


def refuse(why: str | None, setting: str) -> None:
    if why is not None:
        raise ValueError(
            f"{why}: set a strong one in {setting} (only a server on this machine may go without)"
        )
