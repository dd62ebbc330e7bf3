"""`moldlab pdm score|alerts|ack`: the scoring service and its alerts (added by pdm_cli)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from moldlab.dbargs import UsageError as _Usage
from moldlab.dbargs import add_database_option as _database
from moldlab.dbargs import database_url
from moldlab.runner import ENV_HELP

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from analytics.pdm.scorer import Scorer

log = logging.getLogger("moldlab.pdm")

_OWN = ("score", "alerts", "ack")
_ID_MAX = 2**63 - 1  # alert ids are bigint
# The score settings' upper bounds: beyond them a setting is a typo (and 1e308 s overflows).
_SETTING_MAX = {
    "interval_s": 86_400.0,
    "recent_s": 30 * 86_400.0,
    "clear_after_h": 8_760.0,
    "history_every_s": 86_400.0,
    "history_days": 3_650.0,
}


def add_parsers(pdm_sub: Any) -> None:
    """Add `score`, `alerts` and `ack` to the `moldlab pdm` subparsers."""
    score = pdm_sub.add_parser(
        "score",
        help="the scoring service: predictions and alerts from the database, every interval",
        description="Follow the database: every --interval-s, score every machine with a cycle "
        "in the last --recent-s with the model, write the newest prediction per machine and "
        "component (and a history, one row per --history-every-s, kept --history-days), and "
        "raise alerts: opened when the model's alarm says so, closed when the component fails, "
        "a planned maintenance starts, or the alarm stays off for --clear-after-h. Runs until "
        "Ctrl-C; survives database outages (one log line when lost, one when back). " + ENV_HELP,
    )
    score.add_argument(
        "--model", help="a model name in the models directory, or a model directory (default: "
        "the newest in the models directory)",
    )  # fmt: skip
    _models_dir(score)
    score.add_argument(
        "--interval-s", type=float, default=60.0, help="seconds between passes (default 60)"
    )
    score.add_argument(
        "--recent-s", type=float, default=900.0,
        help="a machine is scored while its newest cycle is at most this old (default 900)",
    )  # fmt: skip
    score.add_argument(
        "--clear-after-h", type=float, default=6.0,
        help="an alert closes as cleared when the alarm has been off this long (default 6)",
    )  # fmt: skip
    score.add_argument(
        "--history-every-s", type=float, default=600.0,
        help="one history row per machine and component this often (default 600)",
    )  # fmt: skip
    score.add_argument(
        "--history-days", type=float, default=7.0, help="days of history kept (default 7)"
    )
    score.add_argument(
        "--train-if-missing", type=Path, metavar="EXPORT_DIR",
        help="with no model in the models directory, export the packaged training scenario "
        "to EXPORT_DIR and train one first (what `moldlab demo` does)",
    )  # fmt: skip
    score.add_argument(
        "--max-machines", type=int, default=1000,
        help="score at most this many machines per pass; beyond it, those followed before "
        "first and one log line saying how many were left out (default 1000)",
    )  # fmt: skip
    score.add_argument(
        "--metrics-host", default=os.environ.get("MOLDLAB_PDM_METRICS_HOST", "127.0.0.1"),
        help="where Prometheus reads the scorer's metrics (MOLDLAB_PDM_METRICS_HOST, "
        "default 127.0.0.1)",
    )  # fmt: skip
    score.add_argument(
        "--metrics-port", type=int, default=int(os.environ.get("MOLDLAB_PDM_METRICS_PORT", 9111)),
        help="the metrics port (MOLDLAB_PDM_METRICS_PORT, default 9111; 0: none): passes, "
        "failed passes, predictions, alerts opened and closed, machines scored, database "
        "connected",
    )  # fmt: skip
    _database(score)
    alerts = pdm_sub.add_parser(
        "alerts",
        help="list the alerts (newest first)",
        description="List predictive-maintenance alerts, newest first. " + ENV_HELP,
    )
    alerts.add_argument(
        "--status", action="append", choices=("open", "acknowledged", "closed"),
        help="only these (repeatable; default: open and acknowledged)",
    )  # fmt: skip
    alerts.add_argument("--all", action="store_true", help="every status, closed ones too")
    alerts.add_argument("--place", help="only machines under site[/area[/line[/machine]]]")
    alerts.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    alerts.add_argument("--json", action="store_true", help="print JSON")
    _database(alerts)
    ack = pdm_sub.add_parser(
        "ack",
        help="acknowledge an open alert",
        description="Acknowledge an open alert in a person's name: it stays active (it closes "
        "when the component fails, is serviced, or the alarm clears) but shows who took it. "
        + ENV_HELP,
    )
    ack.add_argument("alert_id", type=int, metavar="ALERT_ID")
    ack.add_argument("--by", required=True, help="who acknowledges it (a name)")
    _database(ack)


def _models_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--models-dir", type=Path,
        help="where models are (default $MOLDLAB_DATA_DIR/models, else ./.moldlab/models)",
    )  # fmt: skip


def owns(command: str | None) -> bool:
    return command in _OWN


def run(args: argparse.Namespace) -> int:
    """Run `moldlab pdm score|alerts|ack`; returns the exit code."""
    import psycopg

    from store import SchemaNotReady

    def fail(message: str, code: int) -> int:
        print(f"moldlab pdm {args.pdm_command}: {message}", file=sys.stderr)
        return code

    try:
        url = database_url(args.database_url)
        if args.pdm_command == "score":
            return _score(args, url)
        if args.pdm_command == "alerts":
            return asyncio.run(_alerts(args, url))
        if args.pdm_command == "ack":
            return asyncio.run(_ack(args, url))
    except _Usage as exc:
        return fail(str(exc), 2)
    except (SchemaNotReady, psycopg.errors.UndefinedTable):
        return fail("the database has no maintenance tables: run `moldlab db upgrade` first", 1)
    except psycopg.OperationalError as exc:
        return fail(f"cannot reach the database: {' '.join(str(exc).split())[:300]}", 1)
    raise AssertionError(args.pdm_command)


def models_dir(given: Path | None) -> Path:
    """--models-dir, else $MOLDLAB_DATA_DIR/models, else ./.moldlab/models."""
    from analytics.pdm.registry import default_models_dir

    return given if given is not None else default_models_dir()


def newest_model(directory: Path) -> Path | None:
    """The model in `directory` created last (by its card), or None."""
    from analytics.pdm.registry import list_models

    found = [(str(card.get("created", "")), path) for path, card, _ in list_models(directory)
             if card is not None]  # fmt: skip
    return max(found)[1] if found else None


def load(model: str | None, directory: Path) -> Any:
    """The model asked for: a directory, a name in `directory`, or the newest there.

    UsageError when there is none or it cannot be loaded (other library versions, bad files).
    """
    from analytics.pdm.model import ModelError
    from analytics.pdm.registry import load_model, resolve_model

    try:
        path = resolve_model(model, directory) if model is not None else newest_model(directory)
        if path is None:
            raise _Usage(
                f"no model in {directory}: train one with `moldlab pdm train --data EXPORT_DIR`"
                " (or give --model, --models-dir)"
            )
        return load_model(path)
    except (ModelError, OSError) as exc:  # OSError: a name too long for a path, say
        raise _Usage(f"cannot use the model: {' '.join(str(exc).split())[:300]}") from exc


def _score(args: argparse.Namespace, url: str) -> int:
    from analytics.pdm.scorer import Scorer, ScorerSettings
    from moldlab.runner import run_until_signalled

    for name, most in _SETTING_MAX.items():
        if not 0 < getattr(args, name) <= most:  # NaN fails both
            raise _Usage(f"--{name.replace('_', '-')} must be more than 0 and at most {most:g}")
    if not 1 <= args.max_machines <= 100_000:
        raise _Usage("--max-machines must be 1 to 100000")
    directory = models_dir(args.models_dir)
    if args.train_if_missing is not None and args.model is None:
        from moldlab.pdm_bootstrap import BootstrapError, ensure_model

        try:
            model = ensure_model(directory, args.train_if_missing)
        except BootstrapError as exc:
            raise _Usage(str(exc)) from exc
    else:
        model = load(args.model, directory)
    settings = ScorerSettings(
        interval_s=args.interval_s,
        recent_s=args.recent_s,
        history_every_s=args.history_every_s,
        history_days=args.history_days,
        clear_after_h=args.clear_after_h,
        max_machines=args.max_machines,
    )
    log.info(
        "scoring with model %s every %g s (%d components)",
        model.name, settings.interval_s, len(model.components),
    )  # fmt: skip
    scorer = Scorer(model, settings)

    from store.metrics import serve_registry

    async def serve(stop: asyncio.Event) -> None:
        async with serve_registry(_metrics(scorer), args.metrics_host, args.metrics_port):
            await scorer.run(url, stop)

    return run_until_signalled(serve)


def _metrics(scorer: Scorer) -> CollectorRegistry:
    from prometheus_client import CollectorRegistry

    from store.metrics import Callbacks, Reading

    c = scorer.counts
    registry = CollectorRegistry()
    registry.register(Callbacks([
        Reading("moldlab_pdm_passes", "scoring passes written", lambda: c.passes, counter=True),
        Reading("moldlab_pdm_failed_passes", "passes that failed (database lost or refused)",
                lambda: c.failed_passes, counter=True),
        Reading("moldlab_pdm_predictions", "predictions written", lambda: c.predictions,
                counter=True),
        Reading("moldlab_pdm_alerts_opened", "alerts opened", lambda: c.alerts_opened,
                counter=True),
        Reading("moldlab_pdm_alerts_closed", "alerts closed", lambda: c.alerts_closed,
                counter=True),
        Reading("moldlab_pdm_machines_scored", "machines scored in the last pass",
                lambda: c.machines),
        Reading("moldlab_pdm_database_connected", "1 while the database is connected",
                lambda: float(c.database_connected)),
    ]))  # fmt: skip
    return registry


async def _alerts(args: argparse.Namespace, url: str) -> int:
    import psycopg

    from store.maintenance import STATUSES, alerts

    statuses = STATUSES if args.all else tuple(args.status or ("open", "acknowledged"))
    if not 1 <= args.limit <= 10_000:
        raise _Usage("--limit must be 1 to 10000")
    if args.place is not None and not _is_place(args.place):
        raise _Usage(
            "--place must be site[/area[/line[/machine]]], each part 1-64 of A-Z a-z 0-9 _ . -"
        )
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        rows = await alerts(conn, place=args.place, statuses=statuses, limit=args.limit)
    if args.json:
        print(json.dumps([_alert_json(a) for a in rows], indent=2))
        return 0
    if not rows:
        print("no alerts")
        return 0
    print(f"{'id':>6}  {'status':<12}  {'opened (UTC)':<16}  {'machine':<32}  {'component':<16}"
          "  p24h  detail")  # fmt: skip
    for a in rows:
        detail = (
            f"closed {a.closed_at:%Y-%m-%d %H:%M} ({a.close_reason})"
            if a.status == "closed" else
            f"by {a.acknowledged_by}" if a.status == "acknowledged" else
            (a.evidence[0]["text"] if a.evidence else "")
        )  # fmt: skip
        print(
            f"{a.id:>6}  {a.status:<12}  {a.opened_at:%Y-%m-%d %H:%M}  {a.place:<32}"
            f"  {a.component:<16}  {a.p_24h:4.2f}  {detail[:100]}"
        )
    return 0


def _is_place(place: str) -> bool:
    """site[/area[/line[/machine]]], as the API's `place` (contracts.ID_PATTERN per part)."""
    import re

    from contracts import ID_PATTERN

    parts = place.split("/")
    return len(parts) <= 4 and all(re.fullmatch(ID_PATTERN, part) for part in parts)


def _alert_json(a: Any) -> dict[str, Any]:
    def iso(t: Any) -> str | None:
        return None if t is None else str(t.isoformat())

    return {
        "id": a.id, "place": a.place, "component": a.component, "status": a.status,
        "opened_at": iso(a.opened_at), "acknowledged_by": a.acknowledged_by,
        "acknowledged_at": iso(a.acknowledged_at), "closed_at": iso(a.closed_at),
        "close_reason": a.close_reason, "last_alarm_at": iso(a.last_alarm_at),
        "p_8h": a.p_8h, "p_24h": a.p_24h, "rul_h": a.rul_h, "evidence": a.evidence,
        "model": a.model,
    }  # fmt: skip


async def _ack(args: argparse.Namespace, url: str) -> int:
    import psycopg

    from store.maintenance import AckError, acknowledge

    if not 1 <= args.alert_id <= _ID_MAX:
        raise _Usage(f"ALERT_ID must be a whole number from 1 to {_ID_MAX}")
    by = " ".join(str(args.by).split())
    # Not printable: a control character, or bytes that were not UTF-8 (decoded as surrogates).
    if not by or len(by) > 100 or not by.isprintable():
        raise _Usage("--by must be a name of 1-100 printable characters")
    async with await psycopg.AsyncConnection.connect(url) as conn:
        try:
            alert = await acknowledge(conn, args.alert_id, by)
        except AckError as exc:
            await conn.rollback()
            print(f"moldlab pdm ack: {exc}", file=sys.stderr)
            return 1
        await conn.commit()
    log.info("alert %d acknowledged by %s: %s %s", alert.id, by, alert.place, alert.component)
    print(f"alert {alert.id} ({alert.place} {alert.component}) acknowledged by {by}")
    return 0
