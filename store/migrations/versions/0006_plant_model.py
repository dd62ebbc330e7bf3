"""The plant file: sites, shift calendars, moulds and machines, with effective-from history.

Each row is one version of one thing, in force from `valid_from` until `valid_to` (NULL: still
in force). A load of the plant file closes the version it replaces and adds the new one, so
that a figure of last month is computed from last month's master data. At most one version of
a thing is open (a partial unique index); `plant_load` records each load that changed
something. Machines are keyed by their full place, as the telemetry tables key them, in text:
master data may name a machine before it has sent anything. Plain tables on either backend
(small, rarely written).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None

_VALIDITY = """valid_from timestamptz NOT NULL,
    valid_to timestamptz,
    CHECK (valid_to IS NULL OR valid_to > valid_from)"""


def upgrade() -> None:
    conn = op.get_bind()
    for statement in (
        f"""CREATE TABLE plant_site (
            site text NOT NULL,
            name text NOT NULL,
            timezone text NOT NULL,
            calendar jsonb NOT NULL,
            {_VALIDITY},
            PRIMARY KEY (site, valid_from)
        )""",
        "COMMENT ON COLUMN plant_site.calendar IS"
        " 'shifts (local start, end, weekdays, breaks) and holidays, as in the plant file'",
        f"""CREATE TABLE plant_mould (
            mould text NOT NULL,
            cavities integer NOT NULL CHECK (cavities >= 1),
            ideal_cycle_s double precision NOT NULL CHECK (ideal_cycle_s > 0),
            part_weight_g double precision NOT NULL CHECK (part_weight_g > 0),
            material text NOT NULL,
            limits jsonb NOT NULL DEFAULT '{{}}',
            {_VALIDITY},
            PRIMARY KEY (mould, valid_from)
        )""",
        "COMMENT ON COLUMN plant_mould.limits IS"
        " 'specification limits by EUROMAP 77 cycle parameter: {lower, upper, target}'",
        f"""CREATE TABLE plant_machine (
            site text NOT NULL,
            area text NOT NULL,
            line text NOT NULL,
            machine_key text NOT NULL,
            clamp_force_kn double precision,
            screw_diameter_mm double precision,
            max_shot_volume_cm3 double precision,
            {_VALIDITY},
            PRIMARY KEY (site, area, line, machine_key, valid_from)
        )""",
        "CREATE UNIQUE INDEX plant_site_open ON plant_site (site) WHERE valid_to IS NULL",
        "CREATE UNIQUE INDEX plant_mould_open ON plant_mould (mould) WHERE valid_to IS NULL",
        "CREATE UNIQUE INDEX plant_machine_open ON plant_machine (site, area, line, machine_key)"
        " WHERE valid_to IS NULL",
        """CREATE TABLE plant_load (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            loaded_at timestamptz NOT NULL DEFAULT now(),
            effective_from timestamptz NOT NULL,
            source text NOT NULL,
            added integer NOT NULL,
            changed integer NOT NULL,
            retired integer NOT NULL
        )""",
    ):
        conn.exec_driver_sql(statement)


def downgrade() -> None:
    conn = op.get_bind()
    for table in ("plant_load", "plant_machine", "plant_mould", "plant_site"):
        conn.exec_driver_sql(f"DROP TABLE {table}")
