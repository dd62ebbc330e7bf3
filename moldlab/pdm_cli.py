"""`moldlab pdm`: train, list and evaluate maintenance models (score, alerts: pdm_score_cli)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from moldlab import pdm_score_cli

_OWN = ("train", "models", "evaluate")


def add_parser(subparsers: Any) -> None:
    """Add `pdm` with its subcommands to the `moldlab` parser's subparsers."""
    pdm = subparsers.add_parser(
        "pdm",
        help="predictive maintenance: train, list and evaluate models; the scoring service",
        description="Models that warn of a component's failure within 8 h and 24 h and give "
        "its remaining useful life, trained on simulator exports (`moldlab sim --export`), "
        "measured event by event beside the best single-signal threshold.",
    )
    sub = pdm.add_subparsers(dest="pdm_command", required=True, metavar="PDM_COMMAND")
    train = sub.add_parser(
        "train",
        help="train a model on one or more exports",
        description="Compute the features of every machine of the exports, split the presses "
        "into groups (folds), score every row by models fitted without its press, choose per "
        "component the configuration, the alarm rule and the single-signal baseline on those "
        "out-of-fold scores, fit the failure classifiers (8 h, 24 h) and RUL quantile "
        "regressors on every row, and write the model directory (model.joblib, card.json with "
        "the data fingerprint, features, out-of-fold metrics and library versions).",
    )
    train.add_argument(
        "--data", type=Path, action="append", required=True, metavar="EXPORT_DIR",
        help="an export directory (repeatable)",
    )  # fmt: skip
    train.add_argument("--name", help="the model's name (default pdm-YYYYmmdd-HHMMSS)")
    _models_dir(train)
    train.add_argument("--seed", type=int, default=1, help="seed of the folds and the models")
    train.add_argument(
        "--fa-budget", type=float, default=0.5, metavar="PER_MACHINE_WEEK",
        help="false alarms allowed per machine-week of production (168 h in which the press "
        "made cycles), all components together, on the out-of-fold scores (above 0, at most "
        "50; default 0.5)",
    )  # fmt: skip
    models = sub.add_parser(
        "models",
        help="list the models",
        description="List the model directories with their card's headline figures, and "
        "say of each that cannot be loaded here (made with other library versions or other "
        "features) why.",
    )
    _models_dir(models)
    models.add_argument("--json", action="store_true", help="print the cards as JSON")
    evaluate = sub.add_parser(
        "evaluate",
        help="measure a model beside its baseline on an export",
        description="Score every machine of the export every 30 min and count, per component, "
        "failures warned >= 2 h and >= 8 h ahead, lead times, false alarms per machine-week "
        "(an alarm not followed by that component's failure within 24 h) and the RUL error, "
        "for the model and for its single-signal baseline. Hours are running hours: a press's "
        "standstills over 4 h (nights without a shift, weekends) do not count; false alarms "
        "are per calendar week. Failures in the first 24 h of the export are left out (no "
        "history to judge from); sudden failures are counted apart.",
    )
    evaluate.add_argument(
        "--model", required=True, help="a model name in the models directory, or a directory"
    )
    evaluate.add_argument("--data", type=Path, required=True, metavar="EXPORT_DIR")
    _models_dir(evaluate)
    evaluate.add_argument("--json", action="store_true", help="print JSON")
    pdm_score_cli.add_parsers(sub)


def _models_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--models-dir", type=Path,
        help="where models live (default $MOLDLAB_DATA_DIR/models, else ./.moldlab/models)",
    )  # fmt: skip


def _dir(given: Path | None) -> Path:
    from analytics.pdm.registry import default_models_dir

    return given if given is not None else default_models_dir()


def run(args: argparse.Namespace) -> int:
    """Run `moldlab pdm ...`; returns the exit code."""
    if args.pdm_command not in _OWN:
        return pdm_score_cli.run(args)
    from analytics.pdm import ExportReadError, ModelError, TrainError

    try:
        if args.pdm_command == "train":
            return _train(args)
        if args.pdm_command == "models":
            return _models(args)
        return _evaluate(args)
    except (ExportReadError, ModelError, TrainError, ValueError) as exc:
        print(f"moldlab pdm {args.pdm_command}: {exc}", file=sys.stderr)
        return 2


_MAX_FA_BUDGET = 50.0  # more false alarms than a shift has hours is no alarm rule


def _train(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from analytics.pdm import TrainSettings, save_model, train
    from analytics.pdm.history import read_manifest
    from analytics.pdm.registry import check_name
    from moldlab.progress import ProgressBar

    name = check_name(args.name or datetime.now(UTC).strftime("pdm-%Y%m%d-%H%M%S"))
    if not (0 < args.fa_budget <= _MAX_FA_BUDGET):
        raise ValueError(
            f"--fa-budget must be above 0 and at most {_MAX_FA_BUDGET:g} false alarms per "
            f"machine-week, not {args.fa_budget}"
        )
    for d in args.data:
        read_manifest(d)  # every export checked before the long part begins
    bar = ProgressBar(f"training {name}", "%")
    model = train(
        args.data,
        name=name,
        settings=TrainSettings(seed=args.seed, fa_budget_per_machine_week=args.fa_budget),
        progress=lambda done, total: bar(100 * done / total, 100),
    )
    bar.finish()
    path = save_model(model, _dir(args.models_dir))
    print(f"model {name} written to {path} (components: {', '.join(model.components)})")
    for comp, part in model.card["component_models"].items():
        val = (part.get("out_of_fold") or {}).get("model") or {}
        rule = part.get("alarm_rule")
        when = (
            f"raise at {rule.get('score', 'p_24h')} >= {rule['on']:.3g}{_in_a_row(rule)}"
            if rule
            else "never raised"
        )
        print(f"  {comp}: {when}; out of fold {_headline(val)}")
    print(f"  {_share_line(model.card['alarm'])}")
    overall = model.card["metrics"]["out_of_fold"]
    for who in ("model", "baseline"):
        print(f"  all components, out of fold, {who}: {_headline(overall.get(who) or {})}")
    return 0


def _in_a_row(rule: dict[str, Any]) -> str:
    n = int(rule.get("confirm", 1))
    return f" on {n} scores in a row" if n > 1 else ""


def _share_line(alarm: dict[str, Any]) -> str:
    """How much of the false-alarm budget the levels were chosen for, and why."""
    held_out = alarm["budget_share_held_out"]
    share, held = alarm["budget_share"], held_out["per_share"]
    budget = alarm["false_alarm_budget_per_machine_week"]
    whole, kept = held["1"], held[f"{share:g}"]
    within = held_out.get("within_budget")  # None: a model from before the margin
    why = {
        None: "",
        True: " (the largest share within the budget by one standard error)",
        False: " (the smallest tried: none was within the budget by one standard error)",
    }[within]
    return (
        f"alarm levels chosen for {100 * share:.0f} % of the budget of {budget:g} false alarms "
        f"per machine-week of production: chosen without a group of presses, they raised "
        f"{_num(whole['false_alarms_per_production_week'])} on it at the whole budget, "
        f"{_num(kept['false_alarms_per_production_week'])} at {100 * share:.0f} %{why}"
        f"{_policy_clause(held_out)}"
    )


def _policy_clause(held_out: dict[str, Any]) -> str:
    """Which scores in a row the levels ask for and why (models before the policies: none)."""
    policies = held_out.get("per_policy")
    if not policies or len(policies) < 2:
        return ""
    warned = {
        n: (p["per_share"][f"{p['share']:g}"]["warned_2h"], p["per_share"]["1"]["wear_failures"])
        for n, p in policies.items()
    }
    rows = ", ".join(
        f"{'/'.join(str(c) for c in p['confirm'])} in a row: {warned[n][0]}/{warned[n][1]} "
        f"warned at {100 * p['share']:.0f} %"
        for n, p in policies.items()
    )
    confirm = "/".join(str(c) for c in held_out["confirm"])
    return f"; on {confirm} scores in a row, which warned most there ({rows})"


def _headline(m: dict[str, Any]) -> str:
    if not m:
        return "no rows"
    return (
        f"warned >=2 h {m['warned_2h']}/{m['wear_failures']}, "
        f"median lead {_h(m['lead_median_h'])}, "
        f"false alarms/machine-week {_num(m['false_alarms_per_machine_week'])}"
    )


def _h(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f} h"


def _num(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f} %"


def _summary_line(label: str, m: Any) -> str:
    """All components in one line, with the counts: a table's whole percent can read as a
    target met (43 of 48 is 89.6 %, not 90 %)."""
    share = "-" if not m.wear_failures else f"{100 * m.warned_2h / m.wear_failures:.1f} %"
    return (
        f"all components, {label}: warned >= 2 h {m.warned_2h} of {m.wear_failures} wear "
        f"failures ({share}), median lead {_h(m.lead_median_h)}, "
        f"{_num(m.false_alarms_per_machine_week)} false alarms per machine-week"
    )


def _unusable(path: Path, card: dict[str, Any]) -> str | None:
    """Why the model of `card` cannot be loaded on this installation, or None."""
    from analytics.pdm.model import ModelError
    from analytics.pdm.registry import check_card

    try:
        check_card(card, str(card.get("name", path.name)))
    except ModelError as exc:
        return str(exc)
    return None


def _models(args: argparse.Namespace) -> int:
    from analytics.pdm import list_models

    directory = _dir(args.models_dir)
    found = list_models(directory)
    if args.json:
        rows = [
            {
                "path": str(p),
                "card": card,
                "error": err,
                "unusable_here": _unusable(p, card) if card is not None else None,
            }
            for p, card, err in found
        ]
        print(json.dumps(rows, indent=2))
        return 0
    if not found:
        print(f"no models in {directory}")
        return 0
    for path, card, err in found:
        if card is None:
            print(f"{path.name}: unreadable ({err})")
            continue
        comps = ", ".join(card.get("components", []))
        print(f"{card.get('name', path.name)}  created {card.get('created', '?')}  {comps}")
        print(f"    {path}  data {str(card.get('data_fingerprint', '?'))[:12]}")
        if (why := _unusable(path, card)) is not None:
            print(f"    not usable here: {why}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from analytics.pdm import assess, load_model
    from analytics.pdm.history import read_manifest
    from analytics.pdm.registry import resolve_model
    from moldlab.progress import ProgressBar

    read_manifest(args.data)
    model = load_model(resolve_model(args.model, _dir(args.models_dir)))
    bar = ProgressBar(f"evaluating {model.name}", "machines")
    result = assess(model, args.data, progress=bar)
    bar.finish()
    if args.json:
        out = {"model": model.name, "data": str(args.data), **result.to_json()}
        print(json.dumps(out, indent=2))
        return 0
    print(
        f"model {model.name} on {args.data}: {result.machines} machines, "
        f"{result.machine_weeks:.1f} machine-weeks (hours below: running hours)"
    )
    head = (
        f"{'component':<18} {'':<8} {'wear':>4} {'>=2h':>5} {'>=8h':>5} {'lead q1/med/q3 h':>17} "
        f"{'FA':>4} {'FA/mw':>6} {'RUL MAE':>8} {'sudden':>7}"
    )
    print(head)
    for comp, m in result.model.items():
        for label, x in (("model", m), ("baseline", result.baseline.get(comp))):
            if x is None:
                print(f"{comp:<18} {label:<8} (none)")
                continue
            lead = f"{_num(x.lead_q1_h, 1)}/{_num(x.lead_median_h, 1)}/{_num(x.lead_q3_h, 1)}"
            print(
                f"{comp if label == 'model' else '':<18} {label:<8} {x.wear_failures:>4} "
                f"{_pct(x.recall_2h):>5} {_pct(x.recall_8h):>5} {lead:>17} "
                f"{x.false_alarms:>4} {_num(x.false_alarms_per_machine_week):>6} "
                f"{_h(x.rul_mae_h):>8} {x.sudden_warned_2h:>3}/{x.sudden_failures:<3}"
            )
    for label, x in (("model", result.model.get("all")), ("baseline", result.baseline.get("all"))):
        if x is not None:
            print(_summary_line(label, x))
    for comp, rule in result.baseline_rules.items():
        if rule:
            print(
                f"baseline {comp}: {rule['feature']} {rule['direction']}, "
                f"raise at {rule['on']:.4g}{_in_a_row(rule)}, clear at {rule['off']:.4g}"
            )
    for comp, n in result.not_modelled.items():
        print(f"{comp}: {n} failures, no model for it (none in the training data)")
    return 0
