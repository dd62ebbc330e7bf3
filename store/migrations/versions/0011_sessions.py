"""Sessions of the engineer workspace: one row per login, until logout or expiry.

The browser holds a random token in an HTTP-only cookie; the table holds only its SHA-256
(`token_hash`), so that reading the table does not let anyone log in. `csrf_token` is the
session's token for the X-CSRF-Token header of every request that changes something (a
page on another site cannot read it). A session ends at `expires_at`, at logout, or as soon
as its user is disabled (the API checks the user on every request).

A plain table on both backends: a few rows per user.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None

_UPGRADE = (
    """CREATE TABLE app_session (
        token_hash   bytea       PRIMARY KEY CHECK (length(token_hash) = 32),
        user_id      integer     NOT NULL REFERENCES app_user (id),
        csrf_token   text        NOT NULL,
        created_at   timestamptz NOT NULL DEFAULT now(),
        expires_at   timestamptz NOT NULL,
        last_seen_at timestamptz NOT NULL DEFAULT now()
    )""",
    "CREATE INDEX app_session_expires ON app_session (expires_at)",
    "CREATE INDEX app_session_user ON app_session (user_id)",
    "COMMENT ON COLUMN app_session.token_hash IS 'SHA-256 of the cookie''s token, never the token'",
)


def upgrade() -> None:
    conn = op.get_bind()
    for statement in _UPGRADE:
        conn.exec_driver_sql(statement)


def downgrade() -> None:
    op.get_bind().exec_driver_sql("DROP TABLE app_session")
