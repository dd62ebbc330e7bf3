"""Users of the engineer workspace (migration 0010): add, list, disable, read for a login.

Only hashes pass through here: dashboard_api.accounts makes and checks them. Names are
lowercase (`^[a-z0-9][a-z0-9._-]{0,63}$`, checked by the table too), so that `Ada` and `ada`
cannot be two users.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from psycopg import AsyncConnection, errors
from psycopg.rows import class_row

Role = Literal["engineer", "admin"]
ROLES: tuple[Role, ...] = ("engineer", "admin")


class UserError(Exception):
    """A change the users table refuses (a name taken, no such user, the last admin)."""


@dataclass(frozen=True, slots=True)
class User:
    id: int
    name: str
    role: Role
    created_at: datetime
    disabled_at: datetime | None
    last_login_at: datetime | None

    @property
    def active(self) -> bool:
        return self.disabled_at is None


@dataclass(frozen=True, slots=True)
class Login:
    """What a login needs: the user and the hash to check the password against."""

    user: User
    password_hash: str


_USER = "id, name, role, created_at, disabled_at, last_login_at"


async def add_user(conn: AsyncConnection[Any], name: str, role: Role, password_hash: str) -> User:
    """Insert a user; UserError if the name is taken (disabled users keep their names)."""
    try:
        async with conn.transaction():
            cur = conn.cursor(row_factory=class_row(User))
            await cur.execute(
                f"INSERT INTO app_user (name, role, password_hash) VALUES (%s, %s, %s)"
                f" RETURNING {_USER}",
                (name, role, password_hash),
            )
            user = await cur.fetchone()
    except errors.UniqueViolation:
        raise UserError(f"a user named {name} exists already") from None
    assert user is not None
    return user


async def list_users(conn: AsyncConnection[Any]) -> list[User]:
    cur = conn.cursor(row_factory=class_row(User))
    await cur.execute(f"SELECT {_USER} FROM app_user ORDER BY name")
    return await cur.fetchall()


async def set_disabled(conn: AsyncConnection[Any], name: str, disabled: bool) -> User:
    """Disable or enable a user. Disabling the last active admin is refused: nobody could
    then manage users from the workspace (the command line still can, with `user add`)."""
    async with conn.transaction():
        # Locks every admin row, so that two admins disabling each other cannot both pass.
        await conn.execute("SELECT id FROM app_user WHERE role = 'admin' FOR UPDATE")
        cur = conn.cursor(row_factory=class_row(User))
        await cur.execute(f"SELECT {_USER} FROM app_user WHERE name = %s", (name,))
        user = await cur.fetchone()
        if user is None:
            raise UserError(f"no user named {name}")
        if disabled and user.active and user.role == "admin":
            count = await conn.execute(
                "SELECT count(*) FROM app_user WHERE role = 'admin' AND disabled_at IS NULL"
            )
            row = await count.fetchone()
            if row is not None and row[0] <= 1:
                raise UserError(f"{name} is the last active admin: add another admin first")
        await cur.execute(
            f"UPDATE app_user SET disabled_at = CASE WHEN %s THEN coalesce(disabled_at, now())"
            f" END WHERE id = %s RETURNING {_USER}",
            (disabled, user.id),
        )
        changed = await cur.fetchone()
    assert changed is not None
    return changed


async def login_of(conn: AsyncConnection[Any], name: str) -> Login | None:
    """The user of that name and their hash, or None if there is none."""
    cur = await conn.execute(
        f"SELECT {_USER}, password_hash FROM app_user WHERE name = %s", (name,)
    )
    row = await cur.fetchone()
    if row is None:
        return None
    return Login(User(*row[:-1]), row[-1])


async def record_login(
    conn: AsyncConnection[Any], user_id: int, new_hash: str | None = None
) -> None:
    """Stamp a successful login; store a fresh hash when the hashing settings moved on."""
    await conn.execute(
        "UPDATE app_user SET last_login_at = now(),"
        " password_hash = coalesce(%s, password_hash) WHERE id = %s",
        (new_hash, user_id),
    )
