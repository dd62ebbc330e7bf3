"""Predictive maintenance: the scorer's predictions, its alerts and the model card in force.

`pdm_model` holds the card of every model a scorer ran (`moldlab pdm score`); the one in
force is the one a scorer started with last (`started_at`).

`pdm_prediction_latest` holds, per machine and component, the newest prediction (replaced
each scoring pass: what a dashboard shows); `pdm_prediction` a bounded history of them, one
row per machine and component every few minutes at most, pruned by the scorer after some
days (its settings say how many).

`pdm_alert` holds alerts: opened when the model's alarm says so, acknowledged by a person,
closed when the component fails, is serviced, or the alarm has stayed off long enough.
The partial unique index allows one alert that is not closed per machine and component, so
that an alarm raises its alert exactly once, whatever the number of scorers or restarts
(the scorer inserts with ON CONFLICT DO NOTHING and logs only the row it got back).

Plain tables on both backends: a few rows a machine and component.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None

# The figures a prediction carries, in both prediction tables.
_FIGURES = """
        p_8h       double precision NOT NULL CHECK (p_8h BETWEEN 0 AND 1),
        p_24h      double precision NOT NULL CHECK (p_24h BETWEEN 0 AND 1),
        rul_h      double precision NOT NULL,
        rul_low_h  double precision NOT NULL,
        rul_high_h double precision NOT NULL,
        alarm      boolean          NOT NULL,
        evidence   jsonb            NOT NULL,
        model      text             NOT NULL"""

_UPGRADE = (
    """CREATE TABLE pdm_model (
        name       text        PRIMARY KEY,
        card       jsonb       NOT NULL,
        started_at timestamptz NOT NULL DEFAULT now()
    )""",
    "CREATE INDEX pdm_model_started ON pdm_model (started_at DESC)",
    "COMMENT ON TABLE pdm_model IS 'model cards of the models scorers ran; in force: the"
    " newest started_at'",
    f"""CREATE TABLE pdm_prediction_latest (
        machine_id integer     NOT NULL REFERENCES machine (id),
        component  text        NOT NULL,
        time       timestamptz NOT NULL,{_FIGURES},
        written_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (machine_id, component)
    )""",
    f"""CREATE TABLE pdm_prediction (
        machine_id integer     NOT NULL REFERENCES machine (id),
        component  text        NOT NULL,
        time       timestamptz NOT NULL,{_FIGURES},
        PRIMARY KEY (machine_id, component, time)
    )""",
    "CREATE INDEX pdm_prediction_time ON pdm_prediction (time)",
    "COMMENT ON COLUMN pdm_prediction.time IS 'the time scored: the data up to it was used'",
    """CREATE TABLE pdm_alert (
        id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        machine_id      integer          NOT NULL REFERENCES machine (id),
        component       text             NOT NULL,
        opened_at       timestamptz      NOT NULL,
        status          text             NOT NULL DEFAULT 'open'
                        CHECK (status IN ('open', 'acknowledged', 'closed')),
        acknowledged_by text,
        acknowledged_at timestamptz,
        closed_at       timestamptz,
        close_reason    text CHECK (close_reason IN ('failed', 'serviced', 'cleared')),
        last_alarm_at   timestamptz      NOT NULL,
        p_8h            double precision NOT NULL,
        p_24h           double precision NOT NULL,
        rul_h           double precision NOT NULL,
        evidence        jsonb            NOT NULL,
        model           text             NOT NULL,
        CHECK ((status = 'closed') = (closed_at IS NOT NULL AND close_reason IS NOT NULL)),
        CHECK ((acknowledged_at IS NULL) = (acknowledged_by IS NULL))
    )""",
    "CREATE UNIQUE INDEX pdm_alert_one_open ON pdm_alert (machine_id, component)"
    " WHERE status <> 'closed'",
    "CREATE INDEX pdm_alert_opened ON pdm_alert (opened_at DESC)",
    "COMMENT ON COLUMN pdm_alert.opened_at IS 'the time scored when the model''s alarm rose'",
    "COMMENT ON COLUMN pdm_alert.last_alarm_at IS"
    " 'the newest time scored with the alarm on: the alert clears some hours after it'",
    "COMMENT ON COLUMN pdm_alert.close_reason IS 'failed: the component broke down;"
    " serviced: planned maintenance; cleared: the alarm stayed off long enough'",
)


def upgrade() -> None:
    conn = op.get_bind()
    for statement in _UPGRADE:
        conn.exec_driver_sql(statement)


def downgrade() -> None:
    conn = op.get_bind()
    for table in ("pdm_alert", "pdm_prediction", "pdm_prediction_latest", "pdm_model"):
        conn.exec_driver_sql(f"DROP TABLE {table}")
