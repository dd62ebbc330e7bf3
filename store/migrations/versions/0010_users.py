"""Users of the engineer workspace: engineers and admins who log in (visitors are anonymous).

`app_user` holds each user's name, role and password hash (argon2id, made by
dashboard_api.accounts: the database never sees a password). A user is never deleted, only
disabled (`disabled_at`), so that what they acknowledged keeps a name that meant someone.
The first admin is created by `moldlab user add NAME --role admin`; there is no default user.

A plain table on both backends: a few rows.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None

_UPGRADE = (
    """CREATE TABLE app_user (
        id            integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name          text        NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
        role          text        NOT NULL CHECK (role IN ('engineer', 'admin')),
        password_hash text        NOT NULL CHECK (starts_with(password_hash, '$argon2id$')),
        created_at    timestamptz NOT NULL DEFAULT now(),
        disabled_at   timestamptz,
        last_login_at timestamptz
    )""",
    "COMMENT ON TABLE app_user IS 'engineers and admins of the workspace; disabled, never deleted'",
    "COMMENT ON COLUMN app_user.password_hash IS 'argon2id (PHC string), never a password'",
)


def upgrade() -> None:
    conn = op.get_bind()
    for statement in _UPGRADE:
        conn.exec_driver_sql(statement)


def downgrade() -> None:
    op.get_bind().exec_driver_sql("DROP TABLE app_user")
