"""A cycle's defect cause: why the parts of a bad cycle are bad (wire schema version 3).

`cycle.defect` holds the cause a machine or its quality control reported with a bad cycle
(e.g. short_shot; contracts.DEFECT_CAUSES names the usual ones), so that the quality loss
can be told by cause. NULL: a good or test cycle, or a bad one whose message named no cause
(schema versions 1 and 2 could not). Only a bad cycle has one, as the contract says.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    conn = op.get_bind()
    for statement in (
        "ALTER TABLE cycle ADD COLUMN defect text"
        " CONSTRAINT cycle_defect_of_bad_parts CHECK (defect IS NULL OR quality = 'bad')",
        "COMMENT ON COLUMN cycle.defect IS"
        " 'why the parts of a bad cycle are bad, e.g. short_shot; NULL: not bad, or not told'",
    ):
        conn.exec_driver_sql(statement)


def downgrade() -> None:
    op.get_bind().exec_driver_sql("ALTER TABLE cycle DROP COLUMN defect")
