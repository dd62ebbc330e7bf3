"""Model directories: one per trained model, `<models dir>/<name>/`, holding

    model.joblib   the fitted estimators (joblib)
    card.json      the model card: name, created, data fingerprint, features, metrics on the
                   validation and hold-out rows, alarm rules, library versions, the
                   artefact's sha256

`load_model` checks the card before it unpickles anything: other library versions give a
ModelVersionError naming both, a missing or corrupt file a ModelError.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from importlib import metadata
from pathlib import Path
from typing import Any

from analytics.pdm.features import FEATURE_NAMES
from analytics.pdm.model import ModelError, ModelVersionError, PdmModel

__all__ = [
    "ARTEFACT",
    "CARD",
    "check_card",
    "default_models_dir",
    "list_models",
    "load_model",
    "moldlab_version",
    "resolve_model",
    "save_model",
]

ARTEFACT = "model.joblib"
CARD = "card.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def moldlab_version() -> str:
    try:
        return metadata.version("moldlab")
    except metadata.PackageNotFoundError:
        return "unknown"


def default_models_dir() -> Path:
    """$MOLDLAB_DATA_DIR/models if set, else ./.moldlab/models."""
    data = os.environ.get("MOLDLAB_DATA_DIR")
    return Path(data) / "models" if data else Path(".moldlab") / "models"


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(
            f"model name {name!r}: use letters, digits, '.', '_' and '-' (at most 100)"
        )
    return name


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_model(model: PdmModel, models_dir: Path) -> Path:
    """Write `model` to `models_dir/<name>/` (replacing one of that name); its path."""
    import joblib

    target = Path(models_dir) / check_name(model.name)
    target.mkdir(parents=True, exist_ok=True)
    tmp = target / (ARTEFACT + ".partial")
    joblib.dump(
        {
            "models": model.models,
            "reason_of": model.reason_of,
            "feature_center": model.feature_center,
            "feature_scale": model.feature_scale,
        },
        tmp,
        compress=3,
    )
    card = dict(model.card)
    card["artefact"] = {"file": ARTEFACT, "sha256": _sha256(tmp)}
    (target / CARD).unlink(missing_ok=True)  # no card: the directory is not a model meanwhile
    os.replace(tmp, target / ARTEFACT)
    card_tmp = target / (CARD + ".partial")
    card_tmp.write_text(json.dumps(card, indent=2, sort_keys=False) + "\n")
    os.replace(card_tmp, target / CARD)
    model.card = card
    return target


def read_card(path: Path) -> dict[str, Any]:
    """The card of the model directory `path`; ModelError when missing or unreadable."""
    card_path = Path(path) / CARD
    if not Path(path).is_dir():
        raise ModelError(f"{path} is not a model directory")
    if not card_path.is_file():
        raise ModelError(f"{path} has no {CARD}: not a model, or one not finished")
    try:
        card = json.loads(card_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{card_path} cannot be read: {exc}") from exc
    if not isinstance(card, dict) or not isinstance(card.get("versions"), dict):
        raise ModelError(f"{card_path} is not a model card (no versions)")
    return card


def check_card(card: dict[str, Any], name: str) -> None:
    """ModelVersionError when the model of `card` cannot be used here: made with other
    library versions or other features (nothing is unpickled)."""
    from analytics.pdm.train import library_versions

    here = library_versions()
    made = {k: str(v) for k, v in card["versions"].items()}
    differ = {k: (made.get(k), v) for k, v in here.items() if made.get(k) != v}
    if differ:
        text = ", ".join(f"{k} {a} (here {b})" for k, (a, b) in sorted(differ.items()))
        raise ModelVersionError(
            f"model {name} was made with {text}: retrain it with "
            "`moldlab pdm train` on this installation"
        )
    if card.get("features") != list(FEATURE_NAMES):
        raise ModelVersionError(
            f"model {name} was made with other features "
            f"({len(card.get('features') or [])}) than this moldlab computes "
            f"({len(FEATURE_NAMES)}): retrain it with `moldlab pdm train`"
        )


def load_model(path: Path) -> PdmModel:
    """The model in directory `path`: checked, then unpickled."""
    path = Path(path)
    card = read_card(path)
    check_card(card, str(card.get("name", path.name)))
    artefact = path / ARTEFACT
    if not artefact.is_file():
        raise ModelError(f"{path} has no {ARTEFACT}")
    want = (card.get("artefact") or {}).get("sha256")
    if want is None or _sha256(artefact) != want:
        raise ModelError(f"{artefact} is corrupt: its sha256 is not the one in {CARD}")
    import joblib

    try:
        blob = joblib.load(artefact)
        return PdmModel(
            name=str(card.get("name", path.name)),
            card=card,
            models=blob["models"],
            reason_of=blob["reason_of"],
            feature_center=blob["feature_center"],
            feature_scale=blob["feature_scale"],
        )
    except Exception as exc:  # unpickling runs arbitrary code paths: any failure is "corrupt"
        raise ModelError(f"{artefact} cannot be loaded: {type(exc).__name__}: {exc}") from exc


def list_models(models_dir: Path) -> list[tuple[Path, dict[str, Any] | None, str | None]]:
    """Every model directory under `models_dir`: (path, card or None, why not readable)."""
    out: list[tuple[Path, dict[str, Any] | None, str | None]] = []
    root = Path(models_dir)
    if not root.is_dir():
        return out
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            out.append((sub, read_card(sub), None))
        except ModelError as exc:
            out.append((sub, None, str(exc)))
    return out


def resolve_model(spec: str, models_dir: Path) -> Path:
    """A model given as a directory path or as a name under `models_dir`."""
    as_path = Path(spec)
    if as_path.is_dir():
        return as_path
    named = Path(models_dir) / spec
    if _NAME.match(spec) and named.is_dir():
        return named
    known = ", ".join(p.name for p, card, _ in list_models(models_dir) if card) or "none"
    raise ModelError(f"no model {spec!r} (a directory, or a name in {models_dir}: {known})")
