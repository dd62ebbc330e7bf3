"""Rejected messages kept as a bounded excerpt; which signals each machine has.

A refused payload used to be stored whole (an 8 MiB one at 8 MiB): from now on only its
first bytes (`payload`, an excerpt) and its size (`payload_bytes`) are kept, with the topic
cut short too; the digest still identifies the whole message, so a redelivery is still one
rejection. `machine_signal` holds the (machine, signal) pairs that have data, so that ingest
can limit the signals per machine and its start-up catch-up of latest_value reads only the
pairs that exist (it used to try every machine with every signal name ever seen). On
TimescaleDB the 1-minute aggregate gets an index by machine, signal and bucket for history.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

# As ingest.writer stores them.
_EXCERPT_BYTES = 4096
_TOPIC_CHARS = 512


def upgrade() -> None:
    conn = op.get_bind()
    for statement in (
        "ALTER TABLE rejected_message ADD COLUMN payload_bytes integer",
        "UPDATE rejected_message SET payload_bytes = length(payload)",
        "ALTER TABLE rejected_message ALTER COLUMN payload_bytes SET NOT NULL",
        f"UPDATE rejected_message SET payload = substring(payload FROM 1 FOR {_EXCERPT_BYTES})"
        f" WHERE length(payload) > {_EXCERPT_BYTES}",
        f"UPDATE rejected_message SET topic = left(topic, {_TOPIC_CHARS})"
        f" WHERE length(topic) > {_TOPIC_CHARS}",
        "COMMENT ON COLUMN rejected_message.payload IS"
        f" 'the first {_EXCERPT_BYTES} bytes of the payload; payload_bytes is its size'",
        """CREATE TABLE machine_signal (
            machine_id integer NOT NULL REFERENCES machine (id),
            signal_id  integer NOT NULL REFERENCES signal (id),
            PRIMARY KEY (machine_id, signal_id)
        )""",
        "INSERT INTO machine_signal (machine_id, signal_id)"
        " SELECT machine_id, signal_id FROM latest_value ON CONFLICT DO NOTHING",
        "CREATE INDEX machine_site ON machine (site)",
    ):
        conn.exec_driver_sql(statement)
    if _backend() == "timescaledb":
        # History asks for one machine's signal: without this the aggregate's own indexes
        # (machine, bucket) and (signal, bucket) read the signal's buckets of every machine.
        conn.exec_driver_sql(
            "CREATE INDEX telemetry_1m_machine_signal_bucket"
            " ON telemetry_1m (machine_id, signal_id, bucket DESC)"
        )


def _backend() -> str | None:
    return (
        op.get_bind()
        .exec_driver_sql("SELECT value FROM storage_info WHERE key = 'backend'")
        .scalar()
    )


def downgrade() -> None:
    conn = op.get_bind()
    # TimescaleDB made it on the aggregate's materialized hypertable, in its own schema.
    schema = conn.exec_driver_sql(
        "SELECT schemaname FROM pg_indexes WHERE indexname = 'telemetry_1m_machine_signal_bucket'"
    ).scalar()
    if schema is not None:
        conn.exec_driver_sql(f'DROP INDEX "{schema}".telemetry_1m_machine_signal_bucket')
    conn.exec_driver_sql("DROP INDEX machine_site")
    conn.exec_driver_sql("DROP TABLE machine_signal")
    conn.exec_driver_sql("ALTER TABLE rejected_message DROP COLUMN payload_bytes")
