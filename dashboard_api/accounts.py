"""Accounts of the engineer workspace: names, password rules, hashing and checking a login.

Passwords are hashed with argon2id (argon2-cffi, RFC 9106's second recommended settings:
64 MiB, 3 passes, 4 lanes), salted per hash; the database holds only the PHC string. A
login with an unknown or disabled name costs the same hash as one with a wrong password, so
that timing does not tell which names exist. A hash made with older settings is replaced at
the next good login.
"""

from __future__ import annotations

import asyncio
import re
import threading
from functools import cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from psycopg import AsyncConnection

from store.users import Login, User, login_of, record_login

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
NAME_RULE = (
    "1-64 characters: lowercase letters, digits, '.', '_' or '-', starting with a letter or digit"
)
# NIST SP 800-63B asks for at least 8; a workspace that acknowledges alerts on a shared lab
# network asks for more. The upper bound keeps one login from costing unbounded hashing.
PASSWORD_MIN = 12
PASSWORD_MAX = 1024

_hasher = PasswordHasher()
# Each hash takes 64 MiB and tens of ms of a core: at most two at a time, off the event loop.
_HASHING = threading.BoundedSemaphore(2)


class AccountError(ValueError):
    """A name or password that the rules refuse; the message says which rule."""


def check_name(name: str) -> str:
    """The name as stored (lowercase, trimmed), or AccountError saying the rule."""
    cleaned = name.strip().lower()
    if not NAME_PATTERN.fullmatch(cleaned):
        raise AccountError(f"a user name is {NAME_RULE}")
    return cleaned


def check_password(password: str, name: str) -> None:
    """AccountError unless the password is long enough, bounded, printable and not the name."""
    if len(password) < PASSWORD_MIN:
        raise AccountError(f"a password needs at least {PASSWORD_MIN} characters")
    if len(password) > PASSWORD_MAX:
        raise AccountError(f"a password has at most {PASSWORD_MAX} characters")
    if not password.isprintable():
        raise AccountError("a password has no control characters (and is valid UTF-8)")
    if name.lower() in password.lower():
        raise AccountError("a password must not contain the user name")


def hash_password(password: str) -> str:
    with _HASHING:
        return _hasher.hash(password)


async def authenticate(conn: AsyncConnection[Any], name: str, password: str) -> User | None:
    """The active user whose name and password these are, else None (never says which part
    was wrong). A good login is stamped, and its hash renewed if the settings moved on."""
    try:
        cleaned = check_name(name)
    except AccountError:
        cleaned = None
    login: Login | None = None
    if cleaned is not None and len(password) <= PASSWORD_MAX:
        login = await login_of(conn, cleaned)
    if login is None or not login.user.active:
        await asyncio.to_thread(_verify, _dummy_hash(), password[:PASSWORD_MAX])
        return None
    if not await asyncio.to_thread(_verify, login.password_hash, password):
        return None
    renewed = None
    if _hasher.check_needs_rehash(login.password_hash):
        renewed = await asyncio.to_thread(hash_password, password)
    await record_login(conn, login.user.id, renewed)
    return login.user


@cache
def _dummy_hash() -> str:
    """Checked against when the name is unknown: a miss costs as much as a wrong password."""
    return hash_password("not a password of anyone")


def _verify(password_hash: str, password: str) -> bool:
    try:
        with _HASHING:
            return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
