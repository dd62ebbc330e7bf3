"""Job and mould history from the machines' job messages; each cycle names its job.

`machine_job` holds every job message: the machine's job (EUROMAP 77 JobName), its mould,
JobStatus, active cavities and nominal parts, from when it was sent. A machine's job at a
time is its newest row before that time. The unique index also drops a job message that
a gateway forwarded again under a new sequence number (a retained one, after a restart).
`cycle.job_name` is the job a cycle made parts for (NULL: a version 1 message, or no job).

Plain tables on both backends: a few rows a machine a day.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

# contracts.JobStatus, as of this revision (EUROMAP 77's JobStatusEnumeration).
_JOB_STATUSES = (
    "other", "transferred_assigned", "set_up_active", "set_up_interrupted", "set_up_finished",
    "start_up_active", "job_in_production", "job_interrupted", "job_finished",
    "tear_down_active", "tear_down_interrupted", "tear_down_finished",
)  # fmt: skip


def upgrade() -> None:
    conn = op.get_bind()
    statuses = ", ".join(f"'{status}'" for status in _JOB_STATUSES)
    for statement in (
        f"""CREATE TABLE machine_job (
            time            timestamptz NOT NULL,
            machine_id      integer     NOT NULL REFERENCES machine (id),
            job_name        text        NOT NULL,
            mould_id        text        NOT NULL,
            job_status      text        NOT NULL CHECK (job_status IN ({statuses})),
            active_cavities integer     NOT NULL CHECK (active_cavities > 0),
            nominal_parts   bigint      NOT NULL CHECK (nominal_parts >= 0),
            material        text,
            source          text        NOT NULL,
            seq             bigint      NOT NULL
        )""",
        "CREATE UNIQUE INDEX machine_job_machine_time"
        " ON machine_job (machine_id, time DESC, job_name, job_status)",
        "COMMENT ON TABLE machine_job IS"
        " 'job messages: a machine''s job (EUROMAP 77) from time on, until its next row'",
        "ALTER TABLE cycle ADD COLUMN job_name text",
        "COMMENT ON COLUMN cycle.job_name IS"
        " 'the JobName of the job the cycle made parts for; NULL: not told'",
    ):
        conn.exec_driver_sql(statement)


def downgrade() -> None:
    conn = op.get_bind()
    conn.exec_driver_sql("ALTER TABLE cycle DROP COLUMN job_name")
    conn.exec_driver_sql("DROP TABLE machine_job")
