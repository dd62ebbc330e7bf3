"""Training data: a simulated floor run as fast as the CPU allows, written to Parquet.

One directory per export; rows are ordered by machine, then time; timestamps are UTC
(`timestamp[us, tz=UTC]`):

    cycles.parquet    machine_id, ts, shot, mould, quality, parts, defect, one column per
                      cycle parameter (contracts.CYCLE_PARAMETERS)
    signals.parquet   machine_id, ts, one column per signal (contracts.SIGNALS), every
                      `signal_interval_s` from the start, as the sensors read it: NaN where
                      a sensor dropped out
    states.parquet    machine_id, ts, state, reason: a state lasts until the machine's next row
    health.parquet    ground truth at the signal times: machine_id, ts, one column per
                      Component (1.0: as new)
    failures.parquet  ground truth: machine_id, ts, component, reason, mode ("wear": worn
                      out, with precursors in the signals; "sudden": little or no warning),
                      restored_at, restored_by (null while not restored within the export)
    manifest.json     format "moldlab-export/2", seed, start, days, machines, source,
                      wear_time_factor (every life that many times shorter than in real
                      life), versions, row counts; written last, so a directory without it
                      holds an unfinished export

Machine i runs on `random.Random(seed * 1000 + i)`, as in the real-time simulator, and
nothing in the files depends on the wall clock: one seed gives the same files, byte for
byte (with the same pyarrow version, which the manifest records).
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from contracts import CYCLE_PARAMETERS, SIGNALS
from simulators.faults import Component
from simulators.model import (
    ComponentFailed,
    ComponentRestored,
    CycleDone,
    Event,
    MachineModel,
    StateEntered,
)
from simulators.specs import MachineSpec

__all__ = [
    "DEFAULT_START",
    "FILES",
    "ExportError",
    "ExportSummary",
    "ProgressCallback",
    "export_floor",
]

# A Monday, so that the default export begins with a full week; fixed so default runs repeat.
DEFAULT_START = datetime(2026, 1, 5, tzinfo=UTC)
FILES = ("cycles", "signals", "states", "health", "failures")
DAY_S = 86_400
MAX_DAYS = 3_650.0  # ten years per machine; more is a typo (1e308 overflowed the clock)
ROW_GROUP_ROWS = 65_536  # rows buffered (as Arrow arrays) before a row group is written

ProgressCallback = Callable[[float, float], None]  # (machine-days done, machine-days in all)


class ExportError(ValueError):
    """Arguments an export cannot run with; the text says which and why."""


@dataclass(frozen=True, slots=True)
class ExportSummary:
    out_dir: Path
    machine_days: float
    rows: dict[str, int] = field(default_factory=dict)


_TS = pa.timestamp("us", tz="UTC")
_SIGNAL_NAMES = tuple(s.name for s in SIGNALS)
_PARAMETERS = tuple(CYCLE_PARAMETERS)
_COMPONENTS = tuple(Component)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


def _field(name: str, type_: pa.DataType, nullable: bool = False) -> pa.Field:
    return pa.field(name, type_, nullable=nullable)


_KEY = [_field("machine_id", pa.string()), _field("ts", _TS)]
SCHEMAS: dict[str, pa.Schema] = {
    "cycles": pa.schema(
        [
            *_KEY,
            _field("shot", pa.int64()),
            _field("mould", pa.string()),
            _field("quality", pa.string()),
            _field("parts", pa.int32()),
            _field("defect", pa.string(), nullable=True),
            *(_field(name, pa.float64()) for name in _PARAMETERS),
        ]
    ),
    "signals": pa.schema([*_KEY, *(_field(name, pa.float64()) for name in _SIGNAL_NAMES)]),
    "states": pa.schema(
        [*_KEY, _field("state", pa.string()), _field("reason", pa.string(), nullable=True)]
    ),
    "health": pa.schema([*_KEY, *(_field(c.value, pa.float64()) for c in _COMPONENTS)]),
    "failures": pa.schema(
        [
            *_KEY,
            _field("component", pa.string()),
            _field("reason", pa.string()),
            _field("mode", pa.string()),
            _field("restored_at", _TS, nullable=True),
            _field("restored_by", pa.string(), nullable=True),
        ]
    ),
}


def _us(ts: datetime) -> int:
    """Epoch microseconds, exactly (no float round trip)."""
    return (ts - _EPOCH) // _ONE_US


class _Sink:
    """One Parquet file, fed column lists, written in row groups of about ROW_GROUP_ROWS."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = path
        self.rows = 0
        self._schema = schema
        self._tmp = path.with_name(path.name + ".partial")
        # Plain options only: nothing here writes a time or a host name into the file.
        self._writer = pq.ParquetWriter(self._tmp, schema, compression="zstd")
        self._buffer: list[pa.Table] = []
        self._buffered = 0

    def add(self, columns: Sequence[Sequence[Any]]) -> None:
        n = len(columns[0])
        if n == 0:
            return
        arrays = [pa.array(col, type=f.type) for col, f in zip(columns, self._schema, strict=True)]
        self._buffer.append(pa.Table.from_arrays(arrays, schema=self._schema))
        self._buffered += n
        self.rows += n
        if self._buffered >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            self._writer.write_table(pa.concat_tables(self._buffer), row_group_size=1 << 30)
            self._buffer = []
            self._buffered = 0

    def close(self) -> None:
        """Write what is buffered and give the file its final name."""
        self._flush()
        self._writer.close()
        self._tmp.replace(self.path)

    def abort(self) -> None:
        self._writer.close()
        self._tmp.unlink(missing_ok=True)


class _Failures:
    """Breakdowns of one machine, each closed by the repair or maintenance that follows it."""

    def __init__(self) -> None:
        self.rows: list[list[Any]] = []  # ts, component, reason, mode, restored_at, restored_by
        self._open: dict[Component, list[Any]] = {}

    def failed(self, ev: ComponentFailed) -> None:
        row: list[Any] = [_us(ev.ts), ev.component.value, ev.reason, ev.mode, None, None]
        self.rows.append(row)
        self._open[ev.component] = row

    def restored(self, ev: ComponentRestored) -> None:
        for comp in ev.components:
            row = self._open.pop(comp, None)
            if row is not None:
                row[4], row[5] = _us(ev.ts), ev.why


def _check(
    specs: Sequence[MachineSpec],
    out_dir: Path,
    days: float,
    start: datetime,
    signal_interval_s: float,
    force: bool,
) -> None:
    if not specs:
        raise ExportError("no machines to export")
    ids = [s.machine_id for s in specs]
    if dupes := sorted({i for i in ids if ids.count(i) > 1}):
        raise ExportError(f"machine ids used more than once: {dupes}")
    if not (math.isfinite(days) and 0 < days <= MAX_DAYS):
        raise ExportError(f"days must be a positive number of at most {MAX_DAYS:g}, not {days}")
    if not (math.isfinite(signal_interval_s) and 0.001 <= signal_interval_s <= DAY_S):
        raise ExportError(
            f"signal interval must be between 0.001 s and one day, not {signal_interval_s} s"
        )
    if start.tzinfo is None:
        raise ExportError(f"start must be timezone-aware, not {start.isoformat()}")
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"{out_dir} exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise ExportError(f"{out_dir} is not empty (force to overwrite the export files in it)")


def export_floor(
    specs: Sequence[MachineSpec],
    out_dir: Path,
    *,
    days: float,
    start: datetime = DEFAULT_START,
    seed: int = 1,
    signal_interval_s: float = 10.0,
    source: str = "",
    force: bool = False,
    progress: ProgressCallback | None = None,
) -> ExportSummary:
    """Run `specs` for `days` days from `start` and write the export files into `out_dir`.

    ExportError for arguments it cannot run with, before anything is written; an existing
    non-empty `out_dir` only with `force` (export files in it are replaced, others kept).
    """
    _check(specs, out_dir, days, start, signal_interval_s, force)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "manifest.json").unlink(missing_ok=True)  # the directory is unfinished again
    total_us = round(days * DAY_S * 1e6)
    interval_us = round(signal_interval_s * 1e6)
    machine_days = days * len(specs)
    sinks: dict[str, _Sink] = {}
    try:
        for name in FILES:
            sinks[name] = _Sink(out_dir / f"{name}.parquet", SCHEMAS[name])
        done = 0.0

        def day_done(day_fraction: float) -> None:
            nonlocal done
            done += day_fraction
            if progress is not None:
                progress(done, machine_days)

        for i, spec in enumerate(specs):
            rng = random.Random(seed * 1000 + i)
            _run_machine(spec, rng, start, total_us, interval_us, sinks, day_done)
        for sink in sinks.values():
            sink.close()
    except BaseException:
        for sink in sinks.values():
            sink.abort()
        raise
    rows = {name: sink.rows for name, sink in sinks.items()}
    manifest = {
        "format": "moldlab-export/2",
        "moldlab_version": _version("moldlab"),
        "pyarrow_version": pa.__version__,
        "source": source,
        "seed": seed,
        "start": start.astimezone(UTC).isoformat(),
        "end": (start + timedelta(microseconds=total_us)).astimezone(UTC).isoformat(),
        "days": days,
        "signal_interval_s": signal_interval_s,
        "machines": [s.machine_id for s in specs],
        "machine_days": machine_days,
        "wear_time_factor": _wear_time_factor(specs),
        "rows": rows,
    }
    text = json.dumps(manifest, indent=2) + "\n"
    tmp = out_dir / "manifest.json.partial"
    tmp.write_text(text)
    os.replace(tmp, out_dir / "manifest.json")
    return ExportSummary(out_dir, machine_days, rows)


def _wear_time_factor(specs: Sequence[MachineSpec]) -> float | dict[str, float]:
    """The scenario's factor; per machine if they differ (a floor put together by hand)."""
    factors = {s.machine_id: s.wear_time_factor for s in specs}
    values = set(factors.values())
    return values.pop() if len(values) == 1 else factors


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def _run_machine(
    spec: MachineSpec,
    rng: random.Random,
    start: datetime,
    total_us: int,
    interval_us: int,
    sinks: dict[str, _Sink],
    day_done: Callable[[float], None],
) -> None:
    """Run one machine day by day, handing each day's rows to the sinks."""
    mid = spec.machine_id
    model = MachineModel(spec, rng, start)
    start_us = _us(start)
    failures = _Failures()
    events: list[Event] = model.start()
    k = 0  # signal samples at start + k * interval, for every k with k * interval < total
    for day in range(math.ceil(total_us / (DAY_S * 1_000_000))):
        day_end = min((day + 1) * DAY_S * 1_000_000, total_us)
        sample_ts: list[int] = []
        samples: list[dict[str, float]] = []
        truths: list[dict[Component, float]] = []
        advance, sample, truth = model.advance_to, model.sample, model.truth
        while (offset := k * interval_us) < day_end:
            t_us = start_us + offset
            events += advance(t_us / 1e6)
            sample_ts.append(t_us)
            samples.append(sample())
            truths.append(truth())
            k += 1
        events += advance((start_us + day_end) / 1e6)
        _write_day(mid, events, sample_ts, samples, truths, failures, sinks)
        events = []
        day_done((day_end - day * DAY_S * 1_000_000) / (DAY_S * 1_000_000))
    n = len(failures.rows)
    sinks["failures"].add([[mid] * n, *map(list, zip(*failures.rows, strict=True))])


def _write_day(
    mid: str,
    events: list[Event],
    sample_ts: list[int],
    samples: list[dict[str, float]],
    truths: list[dict[Component, float]],
    failures: _Failures,
    sinks: dict[str, _Sink],
) -> None:
    cycles: list[CycleDone] = []
    states: list[StateEntered] = []
    for ev in events:
        if isinstance(ev, CycleDone):
            cycles.append(ev)
        elif isinstance(ev, StateEntered):
            states.append(ev)
        elif isinstance(ev, ComponentFailed):
            failures.failed(ev)
        elif isinstance(ev, ComponentRestored):
            failures.restored(ev)
    if samples and (extra := samples[0].keys() - set(_SIGNAL_NAMES)):
        raise ExportError(f"the model samples signals the contract does not name: {extra}")
    if cycles and (extra := cycles[0].parameters.keys() - set(_PARAMETERS)):
        raise ExportError(f"the model gives cycle parameters the contract does not name: {extra}")
    sinks["cycles"].add(
        [
            [mid] * len(cycles),
            [_us(c.ts) for c in cycles],
            [c.shot for c in cycles],
            [c.mould for c in cycles],
            [c.quality.value for c in cycles],
            [c.parts for c in cycles],
            [c.defect for c in cycles],
            *([c.parameters[name] for c in cycles] for name in _PARAMETERS),
        ]
    )
    ids = [mid] * len(samples)
    sinks["signals"].add([ids, sample_ts, *([s[name] for s in samples] for name in _SIGNAL_NAMES)])
    sinks["health"].add([ids, sample_ts, *([h[c] for h in truths] for c in _COMPONENTS)])
    sinks["states"].add(
        [
            [mid] * len(states),
            [_us(s.ts) for s in states],
            [s.state.value for s in states],
            [s.reason for s in states],
        ]
    )
