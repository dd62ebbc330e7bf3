"""Machine identity is its full place (site/area/line/machine); which machines each gateway serves.

A machine used to be unique by its id alone, so that an imm-01 on a second site became the
first site's imm-01 moved. From here a machine is unique by its place: `machine.place`,
"site/area/line/machine_key", generated from the four columns, with a unique index in the
"C" collation (byte order), which orders and pages the API's machine list.

`edge_status.edge_key` becomes the status topic's place too ("site/area/line/id"), so two
sites' publishers with the same id stay apart. Rows written before this revision get their
machine's place where a machine of that id exists (an MQTT-native machine's own status); a
gateway's keep its bare id, since their topic's place was not stored. `received_at`, when
ingest wrote the status, orders a publisher's statuses: a last will is made before its
session's birth, so neither the timestamp nor the sequence number says which came last.

`gateway_machine` holds, per machine place, the gateway whose latest birth listed it: its
death then takes those machines offline ("gateway lost").

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

_UPGRADE = (
    "ALTER TABLE machine DROP CONSTRAINT machine_machine_key_key",
    """ALTER TABLE machine ADD COLUMN place text COLLATE "C" NOT NULL
        GENERATED ALWAYS AS (site || '/' || area || '/' || line || '/' || machine_key) STORED""",
    "ALTER TABLE machine ADD CONSTRAINT machine_place_key UNIQUE (place)",
    'ALTER TABLE edge_status ALTER COLUMN edge_key TYPE text COLLATE "C"',
    "UPDATE edge_status es SET edge_key = m.place FROM machine m WHERE m.machine_key = es.edge_key",
    "ALTER TABLE edge_status ADD COLUMN received_at timestamptz",
    "UPDATE edge_status SET received_at = time",
    "ALTER TABLE edge_status ALTER COLUMN received_at SET NOT NULL",
    "ALTER TABLE edge_status ALTER COLUMN received_at SET DEFAULT now()",
    "DROP INDEX edge_status_edge_time",
    "CREATE INDEX edge_status_edge_received ON edge_status (edge_key, received_at DESC)",
    """CREATE TABLE gateway_machine (
        machine   text COLLATE "C" PRIMARY KEY,
        gateway   text COLLATE "C" NOT NULL,
        listed_at timestamptz      NOT NULL DEFAULT now()
    )""",
    "CREATE INDEX gateway_machine_gateway ON gateway_machine (gateway)",
    "COMMENT ON COLUMN gateway_machine.machine IS"
    " 'a machine place site/area/line/machine, listed by its gateway''s latest birth'",
    "COMMENT ON COLUMN gateway_machine.gateway IS"
    " 'the gateway''s status place site/area/line/gateway_id (edge_status.edge_key)'",
)

_DOWNGRADE = (
    "DROP TABLE gateway_machine",
    "DROP INDEX edge_status_edge_received",
    "CREATE INDEX edge_status_edge_time ON edge_status (edge_key, time DESC)",
    "ALTER TABLE edge_status DROP COLUMN received_at",
    "UPDATE edge_status SET edge_key = split_part(edge_key, '/', 4)"
    " WHERE strpos(edge_key, '/') > 0",
    "ALTER TABLE edge_status ALTER COLUMN edge_key TYPE text COLLATE pg_catalog.default",
    "ALTER TABLE machine DROP CONSTRAINT machine_place_key",
    "ALTER TABLE machine DROP COLUMN place",
    "ALTER TABLE machine ADD CONSTRAINT machine_machine_key_key UNIQUE (machine_key)",
)


def upgrade() -> None:
    conn = op.get_bind()
    for statement in _UPGRADE:
        conn.exec_driver_sql(statement)


def downgrade() -> None:
    conn = op.get_bind()
    shared = conn.exec_driver_sql(
        "SELECT machine_key, count(*) FROM machine GROUP BY machine_key HAVING count(*) > 1"
        " ORDER BY machine_key LIMIT 5"
    ).fetchall()
    if shared:
        # Before 0004 a machine id was unique: two machines of one id cannot both go back.
        ids = ", ".join(f"{key} ({count} places)" for key, count in shared)
        raise RuntimeError(
            f"cannot downgrade below 0004: machine ids on more than one place: {ids}"
        )
    for statement in _DOWNGRADE:
        conn.exec_driver_sql(statement)
