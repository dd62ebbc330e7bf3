"""Initial schema: dimensions, narrow telemetry, cycles, states, edge status, rejected messages.

On a server with the timescaledb extension, telemetry becomes a hypertable with compression,
retention and a real-time 1-minute continuous aggregate; on plain PostgreSQL the same names
answer the same queries (a BRIN index and a date_bin view stand in).

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import logging

from alembic import op
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

log = logging.getLogger("store.migrations")

_STATES = "'running','idle','setup','planned_stop','unplanned_stop','fault','offline'"

_TABLES = f"""
CREATE TABLE storage_info (
    key   text PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE machine (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    machine_key text NOT NULL UNIQUE,
    site        text NOT NULL,
    area        text NOT NULL,
    line        text NOT NULL,
    first_seen  timestamptz NOT NULL DEFAULT now(),
    last_seen   timestamptz
);
CREATE TABLE signal (
    id   integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL UNIQUE,
    unit text
);
CREATE TABLE telemetry (
    time       timestamptz      NOT NULL,
    machine_id integer          NOT NULL,
    signal_id  integer          NOT NULL,
    value      double precision NOT NULL
);
CREATE INDEX telemetry_machine_signal_time ON telemetry (machine_id, signal_id, time DESC);
CREATE TABLE latest_value (
    machine_id integer          NOT NULL REFERENCES machine (id),
    signal_id  integer          NOT NULL REFERENCES signal (id),
    time       timestamptz      NOT NULL,
    value      double precision NOT NULL,
    PRIMARY KEY (machine_id, signal_id)
);
CREATE TABLE cycle (
    time         timestamptz      NOT NULL,
    machine_id   integer          NOT NULL REFERENCES machine (id),
    shot         bigint           NOT NULL,
    quality      text             NOT NULL CHECK (quality IN ('good', 'bad', 'test')),
    parts        integer          NOT NULL,
    cycle_time_s double precision NOT NULL,
    parameters   jsonb            NOT NULL,
    source       text             NOT NULL,
    seq          bigint           NOT NULL
);
CREATE INDEX cycle_machine_time ON cycle (machine_id, time DESC);
CREATE TABLE machine_state (
    time       timestamptz NOT NULL,
    machine_id integer     NOT NULL REFERENCES machine (id),
    state      text        NOT NULL CHECK (state IN ({_STATES})),
    reason     text,
    source     text        NOT NULL,
    seq        bigint      NOT NULL
);
CREATE INDEX machine_state_machine_time ON machine_state (machine_id, time DESC);
CREATE TABLE edge_status (
    time     timestamptz NOT NULL,
    edge_key text        NOT NULL,
    online   boolean     NOT NULL,
    detail   text,
    source   text        NOT NULL,
    seq      bigint      NOT NULL
);
CREATE INDEX edge_status_edge_time ON edge_status (edge_key, time DESC);
-- (source, seq) of every message written: a redelivered message finds its row here and
-- writes nothing, at the cost of one unique check per message rather than per reading.
CREATE TABLE message_log (
    source      text        NOT NULL,
    seq         bigint      NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, seq)
);
CREATE TABLE rejected_message (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    topic       text        NOT NULL,
    payload     bytea       NOT NULL,
    reason      text        NOT NULL
);
CREATE INDEX rejected_message_received ON rejected_message (received_at DESC);
"""

_TIMESCALE = """
SELECT create_hypertable('telemetry', 'time', chunk_time_interval => INTERVAL '1 day');
ALTER TABLE telemetry SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'machine_id, signal_id',
    timescaledb.compress_orderby = 'time DESC'
);
SELECT add_compression_policy('telemetry', INTERVAL '7 days');
SELECT add_retention_policy('telemetry', INTERVAL '90 days');
"""

_CAGG = """
CREATE MATERIALIZED VIEW telemetry_1m WITH (timescaledb.continuous) AS
SELECT time_bucket(INTERVAL '1 minute', time) AS bucket, machine_id, signal_id,
       avg(value) AS avg, min(value) AS min, max(value) AS max, count(*) AS samples
FROM telemetry
GROUP BY bucket, machine_id, signal_id
WITH NO DATA;
ALTER MATERIALIZED VIEW telemetry_1m SET (timescaledb.materialized_only = false);
-- The refresh window reaches back 7 days so that an edge gateway's backlog, forwarded after
-- a long outage, still lands in the aggregate (only invalidated buckets are recomputed).
SELECT add_continuous_aggregate_policy('telemetry_1m',
    start_offset => INTERVAL '7 days', end_offset => INTERVAL '1 minute',
    schedule_interval => INTERVAL '1 minute');
"""

_PLAIN = """
CREATE INDEX telemetry_time_brin ON telemetry USING brin (time);
CREATE VIEW telemetry_1m AS
SELECT date_bin(INTERVAL '1 minute', time, TIMESTAMPTZ '2000-01-01') AS bucket,
       machine_id, signal_id,
       avg(value) AS avg, min(value) AS min, max(value) AS max, count(*) AS samples
FROM telemetry
GROUP BY bucket, machine_id, signal_id;
"""


def _enable_timescaledb(conn: Connection) -> bool:
    """Ask the server: True when the timescaledb extension is (or could be) enabled here."""
    available = conn.exec_driver_sql(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).first()
    if available is None:
        return False
    preloaded = conn.exec_driver_sql(
        "SELECT 'timescaledb' = ANY(string_to_array("
        "replace(current_setting('shared_preload_libraries'), ' ', ''), ','))"
    ).scalar()
    if not preloaded:
        # CREATE EXTENSION would end the session with a FATAL error, not a catchable one.
        log.warning(
            "timescaledb is installed but not in shared_preload_libraries; using plain tables"
        )
        return False
    try:
        with conn.begin_nested():
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except DBAPIError as exc:
        log.warning("timescaledb cannot be enabled (%s); using plain tables", exc)
        return False
    return True


def _run(script: str) -> None:
    conn = op.get_bind()
    for statement in script.split(";\n"):
        if statement.strip():
            conn.exec_driver_sql(statement)


def upgrade() -> None:
    conn = op.get_bind()
    timescale = _enable_timescaledb(conn)
    _run(_TABLES)
    if timescale:
        _run(_TIMESCALE)
        # WITH NO DATA lets the continuous aggregate be created inside this transaction,
        # so the whole migration stays atomic.
        _run(_CAGG)
    else:
        _run(_PLAIN)
    backend = "timescaledb" if timescale else "postgresql"
    conn.exec_driver_sql(
        "INSERT INTO storage_info (key, value) VALUES ('backend', %(backend)s)",
        {"backend": backend},
    )
    log.info("schema created on %s", backend)


def downgrade() -> None:
    backend = (
        op.get_bind()
        .exec_driver_sql("SELECT value FROM storage_info WHERE key = 'backend'")
        .scalar()
    )
    view = "MATERIALIZED VIEW" if backend == "timescaledb" else "VIEW"
    # A hypertable must be dropped on its own (TimescaleDB before 2.23).
    _run(
        f"""
DROP {view} telemetry_1m;
DROP TABLE telemetry;
DROP TABLE rejected_message, message_log, edge_status, machine_state, cycle, latest_value,
    signal, machine, storage_info;
"""
    )
