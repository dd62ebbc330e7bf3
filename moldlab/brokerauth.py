"""The plant broker's users and ACL, made from the plant file (`moldlab broker acl`).

Each edge gateway of the plant file has a user of its own, which may publish only under its
line (`moldlab/v1/{site}/{area}/{line}/#`: its machines' messages and its own status) and
read only its own commit confirmations and ingest's announcements. Ingest may read the
machines' messages and publish confirmations; nobody else may. With `--sim`, the demo's
simulated MQTT-native machines get a user that may publish machines' messages anywhere.

Passwords are random and written once, each to its own file (mode 600); the password file
holds their PBKDF2-SHA512 hashes in mosquitto's format, so that mosquitto (or
`mosquitto_passwd`) reads it as its own. Run again after the plant file changes: users kept
keep their password, new ones get one, users no longer in the file are removed.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from contracts.commits import PREFIX as COMMIT_PREFIX
from contracts.commits import SUBSCRIBED_TOPIC
from contracts.topics import PREFIX
from plant.plantfile import Plant

INGEST_USER = "moldlab-ingest"
SIM_USER = "moldlab-sim"
MONITOR_USER = "moldlab-monitor"  # the broker's own statistics ($SYS), for its exporter
_ITERATIONS = 101  # mosquitto_passwd's; the passwords are random, 192 bits
_SALT_BYTES = 12


class BrokerAuthError(ValueError):
    """A plant file whose gateways cannot be made users, or files that cannot be written."""


@dataclass(frozen=True, slots=True)
class Made:
    """What one run wrote: the users that got a password now, those kept, those removed."""

    created: list[str]
    kept: list[str]
    removed: list[str]


def hash_password(password: str, salt: bytes | None = None) -> str:
    """`password` as a mosquitto password file holds it ($7$: PBKDF2-HMAC-SHA512)."""
    salt = os.urandom(_SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, _ITERATIONS)
    b64 = base64.b64encode
    return f"$7${_ITERATIONS}${b64(salt).decode()}${b64(digest).decode()}"


def acl_text(plant: Plant, *, sim: bool = False) -> str:
    """The mosquitto ACL file for `plant`: no user may do what it is not listed for."""
    lines = [
        "# Made by `moldlab broker acl` from the plant file; made again when it changes.",
        "# A user may do only what is listed under it (mosquitto refuses the rest).",
        "",
        f"user {INGEST_USER}",
        f"topic read {PREFIX}/#",
        f"topic write {COMMIT_PREFIX}/#",
    ]
    lines += ["", f"user {MONITOR_USER}", "topic read $SYS/#"]
    if sim:
        lines += ["", f"user {SIM_USER}", f"topic write {PREFIX}/#"]
    for g in plant.gateways:
        line = f"{g.site}/{g.area}/{g.line}"
        lines += [
            "",
            f"user {g.id}",
            f"topic write {PREFIX}/{line}/#",
            f"topic read {COMMIT_PREFIX}/{line}/{g.id}",
            f"topic read {SUBSCRIBED_TOPIC}",
        ]
    return "\n".join(lines) + "\n"


def users(plant: Plant, *, sim: bool = False) -> list[str]:
    """The broker's users for `plant`; BrokerAuthError if a gateway takes a reserved name."""
    reserved = {INGEST_USER, SIM_USER, MONITOR_USER}
    taken = [g.id for g in plant.gateways if g.id in reserved]
    if taken:
        raise BrokerAuthError(f"gateway id {taken[0]!r} is the broker user of a moldlab service")
    sims = [SIM_USER] if sim else []
    return [INGEST_USER, MONITOR_USER, *sims, *(g.id for g in plant.gateways)]


def write_broker_files(plant: Plant, out: Path, *, sim: bool = False) -> Made:
    """Write `out`/acl, `out`/passwd and `out`/credentials/USER for each new user."""
    wanted = users(plant, sim=sim)
    out.mkdir(parents=True, exist_ok=True)
    credentials = out / "credentials"
    credentials.mkdir(mode=0o700, exist_ok=True)
    passwd = out / "passwd"
    old = _read_passwd(passwd)
    hashes: dict[str, str] = {}
    created: list[str] = []
    for user in wanted:
        if user in old:
            hashes[user] = old[user]
            continue
        password = secrets.token_urlsafe(24)
        hashes[user] = hash_password(password)
        _write_private(credentials / user, password + "\n")
        created.append(user)
    removed = sorted(set(old) - set(wanted))
    for user in removed:
        (credentials / user).unlink(missing_ok=True)
    _write_private(passwd, "".join(f"{u}:{h}\n" for u, h in hashes.items()), mode=0o640)
    (out / "acl").write_text(acl_text(plant, sim=sim))
    kept = [u for u in wanted if u not in created]
    return Made(created, kept, removed)


def _read_passwd(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    found: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not hashed.startswith("$"):
            raise BrokerAuthError(f"{path}:{number}: not a mosquitto password line")
        found[user] = hashed
    return found


def _write_private(path: Path, text: str, mode: int = 0o600) -> None:
    """Write `text` to `path` readable by its owner only (and group with mode 0o640)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    tmp.replace(path)
