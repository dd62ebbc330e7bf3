"""Production performance: OEE figures rolled up per machine and slice, and what made them stale.

`performance_slice` holds the figures (analytics.oee.Figures, as JSON) of one machine over
one slice of its site's calendar (a shift, or time between shifts up to local midnight),
with the micro-stop threshold they were computed with. It is a cache of the raw tables:
deleting any of its rows changes no figure, only the time to compute it.

`performance_dirty` marks what a write made stale, filled by triggers in the writer's own
transaction, so that no commit can slip past it: a cycle marks its time; a state, a job or a
publisher's birth or death marks from its time on (it holds until the next one); a cycle or
a state in an outage also from the machine's data before it (the outage's unknown time now
begins later), and a state from the start of an idle or unplanned stop it cuts short (which
may now be a micro-stop); a plant load marks every machine from when it takes effect.
Readers compute a marked slice from the raw rows; analytics.rollup recomputes it and removes
the marks it saw.

Shift windows come from versioned master data in the site's time zone, which a TimescaleDB
continuous aggregate (buckets of fixed width) cannot follow: the same tables serve both
backends, and both give the same numbers.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None

_STATEMENTS = (
    """CREATE TABLE performance_slice (
        machine_id   integer          NOT NULL REFERENCES machine (id),
        start_at     timestamptz      NOT NULL,
        end_at       timestamptz      NOT NULL CHECK (end_at > start_at),
        day          date             NOT NULL,
        shift        text,
        micro_stop_s double precision NOT NULL,
        figures      jsonb            NOT NULL,
        computed_at  timestamptz      NOT NULL DEFAULT now(),
        PRIMARY KEY (machine_id, start_at)
    )""",
    "CREATE INDEX performance_slice_start ON performance_slice (start_at)",
    "COMMENT ON TABLE performance_slice IS 'OEE figures per machine and calendar slice: a cache"
    " of cycle, machine_state, machine_job and edge_status, recomputed when marked stale'",
    """CREATE TABLE performance_dirty (
        id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        machine_id integer,
        start_at   timestamptz NOT NULL,
        end_at     timestamptz NOT NULL,
        marked_at  timestamptz NOT NULL DEFAULT now(),
        txid       bigint      NOT NULL DEFAULT txid_current()
    )""",
    "CREATE INDEX performance_dirty_machine ON performance_dirty (machine_id, start_at)",
    "COMMENT ON COLUMN performance_dirty.machine_id IS 'NULL: every machine (a plant load)'",
    # TG_ARGV[0]: 'at' (cycles: their times), 'until_next' (jobs: from their time on),
    # 'state' (states: from their time on). A cycle or a state also changes what came before
    # it when its publisher was dead at its time (the outage's unknown time now begins after
    # it, not at the machine's last data before it: marked from there), and a state ends the
    # idle or unplanned stop before it, which may now be a micro-stop (marked from its start).
    # One mark per machine and transaction: a statement widens the mark its transaction
    # already wrote (no other transaction sees it, so no pass can have taken it), so that a
    # batch of a thousand late rows, written one statement a row, leaves one mark a machine.
    """CREATE FUNCTION performance_add_mark(m integer, s timestamptz, e timestamptz)
    RETURNS void LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE performance_dirty SET start_at = least(start_at, s), end_at = greatest(end_at, e)
        WHERE machine_id IS NOT DISTINCT FROM m AND txid = txid_current();
        IF NOT FOUND THEN
            INSERT INTO performance_dirty (machine_id, start_at, end_at) VALUES (m, s, e);
        END IF;
    END $$""",
    """CREATE FUNCTION performance_mark_times() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM performance_add_mark(x.machine_id, x.start_at, x.end_at) FROM (
        SELECT n.machine_id,
               least(n.first, CASE WHEN o.dead THEN greatest(p.time, c.time) END, stop.time)
                   AS start_at,
               CASE WHEN TG_ARGV[0] = 'at' THEN n.last ELSE 'infinity'::timestamptz END
                   AS end_at
        FROM (SELECT machine_id, min(time) AS first, max(time) AS last
              FROM new_rows GROUP BY machine_id) n
        JOIN machine m ON m.id = n.machine_id
        LEFT JOIN LATERAL (
            SELECT NOT e.online AS dead FROM edge_status e
            WHERE TG_ARGV[0] <> 'until_next' AND e.received_at <= n.first
              AND e.edge_key IN (m.place, (SELECT g.gateway FROM gateway_machine g
                                           WHERE g.machine = m.place))
            ORDER BY e.received_at DESC LIMIT 1) o ON true
        LEFT JOIN LATERAL (
            SELECT s.time, s.state, s.reason FROM machine_state s
            WHERE TG_ARGV[0] <> 'until_next' AND s.machine_id = n.machine_id
              AND s.time < n.first
            ORDER BY s.time DESC LIMIT 1) p ON true
        LEFT JOIN LATERAL (
            SELECT max(k.time) AS time FROM cycle k
            WHERE o.dead AND k.machine_id = n.machine_id AND k.time < n.first) c ON true
        LEFT JOIN LATERAL (
            SELECT min(s.time) AS time FROM machine_state s
            WHERE TG_ARGV[0] = 'state' AND p.state IN ('idle', 'unplanned_stop')
              AND s.machine_id = n.machine_id AND s.time < n.first
              AND s.time > coalesce((
                  SELECT x.time FROM machine_state x
                  WHERE x.machine_id = n.machine_id AND x.time < n.first
                    AND (x.state, x.reason) IS DISTINCT FROM (p.state, p.reason)
                  ORDER BY x.time DESC LIMIT 1), '-infinity')) stop ON true) x;
        RETURN NULL;
    END $$""",
    """CREATE FUNCTION performance_mark_publishers() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM performance_add_mark(m.id, min(n.received_at), 'infinity'::timestamptz)
        FROM new_rows n
        JOIN machine m ON m.place = n.edge_key
            OR m.place IN (SELECT machine FROM gateway_machine WHERE gateway = n.edge_key)
        GROUP BY m.id;
        RETURN NULL;
    END $$""",
    """CREATE FUNCTION performance_mark_plant() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM performance_add_mark(NULL, min(valid_from), 'infinity'::timestamptz)
        FROM new_rows HAVING count(*) > 0;
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER cycle_marks_performance AFTER INSERT ON cycle
        REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
        EXECUTE FUNCTION performance_mark_times('at')""",
    """CREATE TRIGGER machine_state_marks_performance AFTER INSERT ON machine_state
        REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
        EXECUTE FUNCTION performance_mark_times('state')""",
    """CREATE TRIGGER machine_job_marks_performance AFTER INSERT ON machine_job
        REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
        EXECUTE FUNCTION performance_mark_times('until_next')""",
    """CREATE TRIGGER edge_status_marks_performance AFTER INSERT ON edge_status
        REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
        EXECUTE FUNCTION performance_mark_publishers()""",
    """CREATE TRIGGER plant_site_marks_performance AFTER INSERT ON plant_site
        REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
        EXECUTE FUNCTION performance_mark_plant()""",
    """CREATE TRIGGER plant_mould_marks_performance AFTER INSERT ON plant_mould
        REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
        EXECUTE FUNCTION performance_mark_plant()""",
    # What is already stored is stale from its start (none of it was ever rolled up).
    """INSERT INTO performance_dirty (machine_id, start_at, end_at)
        SELECT machine_id, min(time), 'infinity'::timestamptz FROM machine_state
        GROUP BY machine_id""",
)


def upgrade() -> None:
    conn = op.get_bind()
    for statement in _STATEMENTS:
        conn.exec_driver_sql(statement)


def downgrade() -> None:
    conn = op.get_bind()
    for table, trigger in (
        ("cycle", "cycle"),
        ("machine_state", "machine_state"),
        ("machine_job", "machine_job"),
        ("edge_status", "edge_status"),
        ("plant_site", "plant_site"),
        ("plant_mould", "plant_mould"),
    ):
        conn.exec_driver_sql(f"DROP TRIGGER {trigger}_marks_performance ON {table}")
    for function in ("times", "publishers", "plant"):
        conn.exec_driver_sql(f"DROP FUNCTION performance_mark_{function}()")
    conn.exec_driver_sql("DROP FUNCTION performance_add_mark(integer, timestamptz, timestamptz)")
    conn.exec_driver_sql("DROP TABLE performance_dirty")
    conn.exec_driver_sql("DROP TABLE performance_slice")
