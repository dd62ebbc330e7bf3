"""The services' database roles: each may read, and write only the tables of its job.

`moldlab db roles` makes them (or sets their password) and grants, after `moldlab db upgrade`
and again after each upgrade (a new table gets its grants then). The owner of the schema,
which runs the migrations, the plant file and `moldlab user`, is none of them; neither is
a superuser.

- moldlab_ingest writes what arrives: readings, cycles, states, jobs, gateway statuses, the
  message log and rejects, latest values, machines and signals, stale performance marks.
- moldlab_api only reads: what the API serves.
- moldlab_workspace writes only what the engineer workspace does, for the API (its
  MOLDLAB_API_WRITER_DATABASE_URL): users' logins and sessions, alert acknowledgements, and
  the performance rollup it keeps. No reading, cycle or master data.
- moldlab_scorer writes maintenance models, predictions and alerts.
"""

from __future__ import annotations

from collections.abc import Mapping

import psycopg
from psycopg import sql

WRITES: Mapping[str, tuple[str, ...]] = {
    "moldlab_ingest": (
        "telemetry", "cycle", "machine_state", "machine_job", "edge_status", "message_log",
        "rejected_message", "latest_value", "machine", "signal", "machine_signal",
        "gateway_machine", "performance_dirty",
    ),
    "moldlab_api": (),
    "moldlab_workspace": (
        "app_user", "app_session", "pdm_alert", "performance_slice", "performance_dirty",
    ),
    "moldlab_scorer": ("pdm_model", "pdm_prediction", "pdm_prediction_latest", "pdm_alert"),
}  # fmt: skip
ROLES = tuple(WRITES)


def grant_roles(conn: psycopg.Connection, passwords: Mapping[str, str]) -> None:
    """Make each role of `passwords` (or set its password) and grant it its tables; one
    transaction. The connection's user must own the schema (or be a superuser)."""
    with conn.transaction():
        database = conn.execute("SELECT current_database()").fetchone()
        assert database is not None
        for role, password in passwords.items():
            writes = WRITES[role]
            name = sql.Identifier(role)
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(
                sql.SQL(verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}")
                .format(name, sql.Literal(password))
            )  # fmt: skip
            for statement in (
                "GRANT CONNECT ON DATABASE {db} TO {role}",
                "GRANT USAGE ON SCHEMA public TO {role}",
                "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}",
                "GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}",
                # Tables a later migration makes can be read; their writers are granted by
                # running this again after the upgrade.
                "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {role}",
            ):
                conn.execute(sql.SQL(statement).format(db=sql.Identifier(database[0]), role=name))
            tables = [t for t in writes if _exists(conn, t)]
            if not tables:
                continue
            conn.execute(
                sql.SQL("GRANT INSERT, UPDATE, DELETE ON {} TO {}").format(
                    sql.SQL(", ").join(map(sql.Identifier, tables)), name
                )
            )


def _exists(conn: psycopg.Connection, table: str) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"public.{table}",)).fetchone() == (
        True,
    )
