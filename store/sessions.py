"""Sessions of the engineer workspace (migration 0011): open at login, find, end.

Only the SHA-256 of a session's token is stored and looked up: the token itself lives in the
browser's cookie. A session is found only while it has not expired and its user is active,
so disabling a user ends their sessions at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

from store.users import User


@dataclass(frozen=True, slots=True)
class Session:
    user: User
    csrf_token: str
    expires_at: datetime


async def open_session(
    conn: AsyncConnection[Any], token_hash: bytes, user_id: int, csrf_token: str, lasts: timedelta
) -> datetime:
    """Store a new session; returns when it expires. Expired sessions are pruned on the way."""
    await conn.execute("DELETE FROM app_session WHERE expires_at < now()")
    cur = await conn.execute(
        "INSERT INTO app_session (token_hash, user_id, csrf_token, expires_at)"
        " VALUES (%s, %s, %s, now() + %s) RETURNING expires_at",
        (token_hash, user_id, csrf_token, lasts),
    )
    row = await cur.fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


async def find_session(conn: AsyncConnection[Any], token_hash: bytes) -> Session | None:
    """The live session with this token hash, its user active; None otherwise."""
    cur = await conn.execute(
        "SELECT u.id, u.name, u.role, u.created_at, u.disabled_at, u.last_login_at,"
        " s.csrf_token, s.expires_at"
        " FROM app_session s JOIN app_user u ON u.id = s.user_id"
        " WHERE s.token_hash = %s AND s.expires_at > now() AND u.disabled_at IS NULL",
        (token_hash,),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    return Session(User(*row[:6]), row[6], row[7])


async def close_session(conn: AsyncConnection[Any], token_hash: bytes) -> None:
    await conn.execute("DELETE FROM app_session WHERE token_hash = %s", (token_hash,))
