"""What is known of a machine: its history (cycles, signals, states) and, from an export, the truth.

`read_export(dir)` yields one MachineHistory per machine of a simulator export (the files
simulators/export.py writes); `read_truth(dir)` gives the ground truth (failures with their
mode, health) that only labels and metrics may use, never features.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from contracts import CYCLE_PARAMETERS, SIGNALS

__all__ = [
    "FORMATS",
    "LOOKBACK_H",
    "ExportReadError",
    "ExportTruth",
    "Failure",
    "MachineHistory",
    "MachineTruth",
    "export_fingerprint",
    "read_export",
    "read_manifest",
    "read_truth",
]

# Hours of history the features need before the time scored (their longest window).
LOOKBACK_H = 168.0
FORMATS = ("moldlab-export/1", "moldlab-export/2")
PARAMETERS = tuple(CYCLE_PARAMETERS)
SIGNAL_NAMES = tuple(s.name for s in SIGNALS)
_FILES = ("cycles", "signals", "states", "failures")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ExportReadError(ValueError):
    """A directory that is not a finished export of a known format; the text says why."""


@dataclass(frozen=True, slots=True)
class MachineHistory:
    """What a scorer or trainer knows of one machine, from an export or from the database."""

    machine_id: str
    cycles: dict[str, np.ndarray]
    signals: dict[str, np.ndarray]
    states: dict[str, np.ndarray]
    last_service_us: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Failure:
    """One breakdown (ground truth): when, which component, how it came, when restored."""

    ts_us: int
    component: str
    reason: str
    mode: str  # "wear": precursors in the signals; "sudden": little or no warning
    restored_us: int | None


@dataclass(frozen=True, slots=True)
class MachineTruth:
    machine_id: str
    failures: tuple[Failure, ...]


@dataclass(frozen=True, slots=True)
class ExportTruth:
    """The ground truth of one export: failures per machine and the span it covers."""

    start_us: int
    end_us: int
    machines: tuple[str, ...]
    components: tuple[str, ...]  # the health columns: every component the simulator wears
    failures: dict[str, tuple[Failure, ...]]
    wear_time_factor: float | dict[str, float]  # per machine for hand-built floors


def read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest of a finished export; ExportReadError for anything else."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ExportReadError(f"{directory} is not a directory")
    path = directory / "manifest.json"
    if not path.is_file():
        raise ExportReadError(
            f"{directory} has no manifest.json: not an export, or one that did not finish"
        )
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ExportReadError(f"{path} cannot be read as JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") not in FORMATS:
        fmt = manifest.get("format") if isinstance(manifest, dict) else None
        raise ExportReadError(
            f"{directory} is an export of format {fmt!r}; this version reads {', '.join(FORMATS)}"
        )
    for name in _FILES:
        if not (directory / f"{name}.parquet").is_file():
            raise ExportReadError(f"{directory} lacks {name}.parquet")
    return manifest


def _read(directory: Path, name: str) -> pa.Table:
    try:
        return pq.read_table(directory / f"{name}.parquet")
    except (OSError, pa.ArrowException) as exc:
        raise ExportReadError(f"{directory / name}.parquet cannot be read: {exc}") from exc


def _us(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(column.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)


def _floats(table: pa.Table, name: str) -> np.ndarray:
    if name not in table.column_names:
        return np.full(table.num_rows, np.nan)
    col = table.column(name).cast(pa.float64())
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)


def _objects(table: pa.Table, name: str) -> np.ndarray:
    if name not in table.column_names:
        return np.full(table.num_rows, None, dtype=object)
    return np.asarray(table.column(name).to_pylist(), dtype=object)


def _by_machine(table: pa.Table) -> dict[str, pa.Table]:
    """Rows per machine, each sorted by time."""
    if table.num_rows == 0:
        return {}
    ids = table.column("machine_id")
    out: dict[str, pa.Table] = {}
    for mid in pc.unique(ids).to_pylist():
        part = table.filter(pc.equal(ids, mid))
        out[str(mid)] = part.take(pc.sort_indices(part, [("ts", "ascending")]))
    return out


def _cycles(t: pa.Table) -> dict[str, np.ndarray]:
    out = {"ts": _us(t.column("ts"))}
    for name in ("mould", "quality", "defect"):
        out[name] = _objects(t, name)
    for name in PARAMETERS:
        out[name] = _floats(t, name)
    return out


def _signals(t: pa.Table) -> dict[str, np.ndarray]:
    out = {"ts": _us(t.column("ts"))}
    for name in SIGNAL_NAMES:
        out[name] = _floats(t, name)
    return out


def _states(t: pa.Table) -> dict[str, np.ndarray]:
    return {
        "ts": _us(t.column("ts")),
        "state": _objects(t, "state"),
        "reason": _objects(t, "reason"),
    }


def empty_history(machine_id: str) -> MachineHistory:
    """A machine of which nothing is known yet."""
    cycles: dict[str, np.ndarray] = {"ts": np.zeros(0, np.int64)}
    for name in ("mould", "quality", "defect"):
        cycles[name] = np.zeros(0, object)
    for name in PARAMETERS:
        cycles[name] = np.zeros(0)
    signals: dict[str, np.ndarray] = {"ts": np.zeros(0, np.int64)}
    for name in SIGNAL_NAMES:
        signals[name] = np.zeros(0)
    states = {"ts": np.zeros(0, np.int64), "state": np.zeros(0, object)}
    states["reason"] = np.zeros(0, object)
    return MachineHistory(machine_id, cycles, signals, states)


def read_export(directory: Path) -> Iterator[MachineHistory]:
    """One MachineHistory per machine of the export in `directory`, in the manifest's order."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    cycles = _by_machine(_read(directory, "cycles"))
    signals = _by_machine(_read(directory, "signals"))
    states = _by_machine(_read(directory, "states"))
    machines = [str(m) for m in manifest.get("machines", [])] or sorted(signals)
    for mid in machines:
        base = empty_history(mid)
        yield MachineHistory(
            mid,
            _cycles(cycles[mid]) if mid in cycles else base.cycles,
            _signals(signals[mid]) if mid in signals else base.signals,
            _states(states[mid]) if mid in states else base.states,
        )


def read_truth(directory: Path) -> ExportTruth:
    """The ground truth of the export in `directory`: failures (with mode) per machine."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    table = _read(directory, "failures")
    machines = tuple(str(m) for m in manifest.get("machines", []))
    failures: dict[str, list[Failure]] = {m: [] for m in machines}
    for mid, part in _by_machine(table).items():
        ts = _us(part.column("ts"))
        restored = part.column("restored_at").to_pylist()
        restored_us = _us(part.column("restored_at").fill_null(0))
        modes = _objects(part, "mode")
        for i in range(part.num_rows):
            failures.setdefault(mid, []).append(
                Failure(
                    ts_us=int(ts[i]),
                    component=str(part.column("component")[i].as_py()),
                    reason=str(part.column("reason")[i].as_py()),
                    mode=str(modes[i]) if modes[i] is not None else "wear",
                    restored_us=None if restored[i] is None else int(restored_us[i]),
                )
            )
    health = directory / "health.parquet"
    health_schema = pq.read_schema(health) if health.is_file() else None
    components = (
        tuple(n for n in health_schema.names if n not in ("machine_id", "ts"))
        if health_schema is not None
        else tuple(sorted({f.component for fs in failures.values() for f in fs}))
    )
    start_us = _iso_us(manifest["start"])
    end_us = _iso_us(manifest["end"])
    return ExportTruth(
        start_us=start_us,
        end_us=end_us,
        machines=machines or tuple(sorted(failures)),
        components=components,
        failures={m: tuple(fs) for m, fs in failures.items()},
        wear_time_factor=_factor(manifest.get("wear_time_factor", 1.0)),
    )


def _factor(value: Any) -> float | dict[str, float]:
    if isinstance(value, dict):
        return {str(k): float(v) for k, v in value.items()}
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise ExportReadError(f"manifest wear_time_factor {value!r} is not a number") from exc


def _iso_us(text: str) -> int:
    ts = datetime.fromisoformat(text)
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return (ts - _EPOCH) // timedelta(microseconds=1)


def export_fingerprint(directory: Path) -> str:
    """sha256 over the export's manifest and files, in name order."""
    directory = Path(directory)
    read_manifest(directory)
    digest = hashlib.sha256()
    for path in sorted(directory.iterdir()):
        if path.is_file() and (path.suffix == ".parquet" or path.name == "manifest.json"):
            digest.update(path.name.encode() + b"\0")
            with path.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
    return digest.hexdigest()
