"""Rejected messages recorded once per topic and payload; message_log prunable by age.

A message that ingest rejects is acknowledged only after the rejection is committed; if
ingest dies between the two, the broker delivers it again, and the same bytes on the same
topic must not become a second rejection. `digest` (SHA-256 of topic, NUL, payload) is
unique for that. `message_log` gets a BRIN index on `received_at`, so that pruning the
entries older than the redelivery window reads only the oldest pages. `latest_value`, rewritten
every second for every signal, leaves half of each page free, so that an update can stay on
its page (a HOT update: no index entry, less WAL, less vacuum).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_DIGEST = "sha256(convert_to(topic, 'UTF8') || '\\x00'::bytea || payload)"


def upgrade() -> None:
    conn = op.get_bind()
    for statement in (
        "ALTER TABLE rejected_message ADD COLUMN digest bytea",
        f"UPDATE rejected_message SET digest = {_DIGEST}",
        "DELETE FROM rejected_message a USING rejected_message b"
        " WHERE a.digest = b.digest AND a.id > b.id",
        "ALTER TABLE rejected_message ALTER COLUMN digest SET NOT NULL",
        "CREATE UNIQUE INDEX rejected_message_digest ON rejected_message (digest)",
        "CREATE INDEX message_log_received ON message_log USING brin (received_at)",
        "ALTER TABLE latest_value SET (fillfactor = 50)",
    ):
        conn.exec_driver_sql(statement)


def downgrade() -> None:
    conn = op.get_bind()
    conn.exec_driver_sql("ALTER TABLE latest_value RESET (fillfactor)")
    conn.exec_driver_sql("DROP INDEX message_log_received")
    conn.exec_driver_sql("ALTER TABLE rejected_message DROP COLUMN digest")
