"""The Parquet export: files, columns and rows that match the model, byte-identical reruns."""

from __future__ import annotations

import bisect
import itertools
import json
import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from contracts import CYCLE_PARAMETERS, SIGNALS
from moldlab.cli import main
from moldlab.sim_cli import DEFAULT_EXPORT_START
from simulators import (
    Component,
    ComponentFailed,
    ComponentLife,
    CycleDone,
    MachineModel,
    MachineSpec,
    demo_floor,
)
from simulators.export import DEFAULT_START, FILES, ExportError, ExportSummary, export_floor

START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
DAYS = 1.0
INTERVAL_S = 30.0
SEED = 7
# Wears out in about 4 running hours, and again after each repair: failures within a day.
FAST = MachineSpec(
    "imm-fast",
    lives=(ComponentLife(Component.EJECTOR, scale_h=4.0, shape=5.0, sudden_share=0.3),),
)
FLOOR = [*demo_floor(1), FAST]
TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class Export:
    path: Path
    summary: ExportSummary
    tables: dict[str, pa.Table]


def _export(path: Path, **kwargs: object) -> ExportSummary:
    options: dict[str, object] = {
        "days": DAYS, "start": START, "seed": SEED, "signal_interval_s": INTERVAL_S,
    }  # fmt: skip
    options.update(kwargs)
    return export_floor(FLOOR, path, **options)  # type: ignore[arg-type]  # options vary per test


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Export:
    path = tmp_path_factory.mktemp("export") / "out"
    summary = _export(path, source="test floor")
    tables = {name: pq.read_table(path / f"{name}.parquet") for name in FILES}
    return Export(path, summary, tables)


def _per_machine(table: pa.Table, machine_id: str) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = table.to_pylist()
    return [r for r in rows if r["machine_id"] == machine_id]


def _model_run(i: int, spec: MachineSpec) -> list[object]:
    """What the model does on its own over the export's span, with the export's seed."""
    model = MachineModel(spec, random.Random(SEED * 1000 + i), START)
    return list(model.advance(START + timedelta(days=DAYS)))


def test_writes_the_five_files_and_a_manifest(export: Export) -> None:
    names = sorted(p.name for p in export.path.iterdir())
    assert names == sorted([*(f"{n}.parquet" for n in FILES), "manifest.json"])
    manifest = json.loads((export.path / "manifest.json").read_text())
    assert manifest["format"] == "moldlab-export/2"
    assert manifest["wear_time_factor"] == 1.0
    assert manifest["seed"] == SEED
    assert manifest["start"] == "2026-03-02T00:00:00+00:00"
    assert manifest["end"] == "2026-03-03T00:00:00+00:00"
    assert manifest["days"] == DAYS
    assert manifest["machines"] == ["imm-01", "imm-fast"]
    assert manifest["machine_days"] == 2.0
    assert manifest["source"] == "test floor"
    assert manifest["moldlab_version"]
    assert manifest["rows"] == {name: t.num_rows for name, t in export.tables.items()}
    assert manifest["rows"] == export.summary.rows


def test_columns_and_utc_timestamps(export: Export) -> None:
    t = export.tables
    assert t["cycles"].column_names == [
        "machine_id", "ts", "shot", "mould", "quality", "parts", "defect", *CYCLE_PARAMETERS,
    ]  # fmt: skip
    assert t["signals"].column_names == ["machine_id", "ts", *(s.name for s in SIGNALS)]
    assert t["states"].column_names == ["machine_id", "ts", "state", "reason"]
    assert t["health"].column_names == ["machine_id", "ts", *(c.value for c in Component)]
    assert t["failures"].column_names == [
        "machine_id", "ts", "component", "reason", "mode", "restored_at", "restored_by",
    ]  # fmt: skip
    for table in t.values():
        assert table.schema.field("ts").type == TS
        stamps = table.column("ts").to_pylist()
        assert all(START <= ts <= START + timedelta(days=DAYS) for ts in stamps)
    assert t["failures"].schema.field("restored_at").type == TS


def test_rows_are_ordered_by_machine_then_time(export: Export) -> None:
    for name in ("cycles", "signals", "states", "health"):
        keys = list(
            zip(
                export.tables[name].column("machine_id").to_pylist(),
                export.tables[name].column("ts").to_pylist(),
                strict=True,
            )
        )
        assert keys == sorted(keys), name


def test_signals_and_health_every_interval(export: Export) -> None:
    per_machine = round(DAYS * 86_400 / INTERVAL_S)
    for name in ("signals", "health"):
        table = export.tables[name]
        assert table.num_rows == per_machine * len(FLOOR)
        stamps = [r["ts"] for r in _per_machine(table, "imm-01")]
        assert stamps == [START + timedelta(seconds=INTERVAL_S * k) for k in range(per_machine)]
    health = export.tables["health"]
    for comp in Component:
        values = health.column(comp.value).to_pylist()
        assert all(0.0 <= v <= 1.0 for v in values)
    assert min(health.column("ejector").to_pylist()) < 0.5  # the fast one wears


def test_cycles_match_the_model(export: Export) -> None:
    for i, spec in enumerate(FLOOR):
        events = _model_run(i, spec)
        cycles = [e for e in events if isinstance(e, CycleDone)]
        rows = _per_machine(export.tables["cycles"], spec.machine_id)
        assert len(rows) == len(cycles) > 1000
        assert [r["shot"] for r in rows] == list(range(1, len(cycles) + 1))
        assert [r["ts"] for r in rows] == [c.ts for c in cycles]
        assert [r["CycleTime"] for r in rows] == [c.parameters["CycleTime"] for c in cycles]
        assert [r["defect"] for r in rows] == [c.defect for c in cycles]
        assert [r["quality"] for r in rows] == [c.quality.value for c in cycles]
        assert {r["quality"] for r in rows} <= {"good", "bad", "test"}
        # Only bad parts have a cause.
        assert all((r["defect"] is not None) == (r["quality"] == "bad") for r in rows)


def _hours(cycles: list[dict[str, Any]]) -> float:
    """Running hours of `cycles`: their cycle times added up."""
    return sum(float(c["CycleTime"]) for c in cycles) / 3600


def test_quality_control_samples_every_2_running_hours_are_neither_good_nor_bad(
    export: Export,
) -> None:
    for spec in FLOOR:
        assert spec.test_sample_interval_h == 2.0  # the default
        rows = _per_machine(export.tables["cycles"], spec.machine_id)
        samples = [k for k, r in enumerate(rows) if r["quality"] == "test"]
        cavities = {m.name: m.cavities for m in spec.moulds}
        assert len(samples) >= 5  # a day of mostly running
        # Each is taken once 2 h of cycles ran since the last (CycleTime rounded to 1 ms),
        # at the first cycle that makes no scrap: a few cycles later at most.
        after = 0
        for k in samples:
            running_h = _hours(rows[after : k + 1])
            assert 2.0 - 1e-3 <= running_h < 2.1, (spec.machine_id, k, running_h)
            assert rows[k]["defect"] is None
            assert rows[k]["parts"] == cavities[str(rows[k]["mould"])]  # a whole shot
            after = k + 1
        assert _hours(rows[after:]) < 2.1  # none missed at the end
        # The part counters count good and bad parts: a sample's are in neither.
        ends = [r["ts"] for r in rows]
        good = list(itertools.accumulate(r["parts"] if r["quality"] == "good" else 0 for r in rows))
        bad = list(itertools.accumulate(r["parts"] if r["quality"] == "bad" else 0 for r in rows))
        signals = _per_machine(export.tables["signals"], spec.machine_id)
        for row in signals:
            n = bisect.bisect_right(ends, row["ts"])
            assert row["CounterGood"] == (good[n - 1] if n else 0)
            assert row["CounterBad"] == (bad[n - 1] if n else 0)
            assert row["CounterShots"] == n


def test_failures_match_the_model_and_its_ground_truth(export: Export) -> None:
    failed = [e for e in _model_run(1, FAST) if isinstance(e, ComponentFailed)]
    rows = _per_machine(export.tables["failures"], "imm-fast")
    assert len(rows) == len(failed) >= 2
    assert [(r["ts"], r["component"], r["reason"], r["mode"]) for r in rows] == [
        (e.ts, e.component.value, e.reason, e.mode) for e in failed
    ]
    assert {r["mode"] for r in rows} <= {"wear", "sudden"}
    assert _per_machine(export.tables["failures"], "imm-01") == []
    health = _per_machine(export.tables["health"], "imm-fast")
    for row in rows:
        if row["restored_at"] is None:
            continue
        assert row["restored_by"] == "repair"
        assert row["ts"] < row["restored_at"]  # type: ignore[operator]  # both datetimes
        broken = [h["ejector"] for h in health if row["ts"] <= h["ts"] < row["restored_at"]]  # type: ignore[operator]  # as above
        assert broken
        assert all(v == pytest.approx(0.15) for v in broken)  # worn to its threshold
    faults = _per_machine(export.tables["states"], "imm-fast")
    assert any(s["state"] == "fault" and s["reason"] == "ejector_failure" for s in faults)


def test_states_begin_with_the_start(export: Export) -> None:
    for spec in FLOOR:
        rows = _per_machine(export.tables["states"], spec.machine_id)
        assert rows[0]["ts"] == START
        assert len(rows) > 10
        assert {r["state"] for r in rows} >= {"running", "planned_stop"}


def test_same_seed_same_bytes_other_seed_other_data(tmp_path: Path) -> None:
    kwargs = {"days": 0.25, "signal_interval_s": 10.0}
    _export(tmp_path / "a", **kwargs)
    _export(tmp_path / "b", **kwargs)
    _export(tmp_path / "c", seed=SEED + 1, **kwargs)
    for name in [*(f"{n}.parquet" for n in FILES), "manifest.json"]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    for name in ("cycles.parquet", "signals.parquet"):
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "c" / name).read_bytes(), name
    # Quality-control samples too come from the seed alone: the same cycles in both runs.
    qualities = pq.read_table(tmp_path / "a" / "cycles.parquet").column("quality").to_pylist()
    assert "test" in qualities


def test_a_part_day_and_an_interval_that_does_not_divide_it(tmp_path: Path) -> None:
    summary = _export(tmp_path / "out", days=0.01, signal_interval_s=7.0)  # 864 s
    assert summary.rows["signals"] == len(FLOOR) * math.ceil(864 / 7)
    assert summary.machine_days == pytest.approx(0.02)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"days": 0}, "days must be a positive number"),
        ({"days": -1.0}, "days must be a positive number"),
        ({"days": math.nan}, "days must be a positive number"),
        ({"days": 1e308}, "days must be a positive number of at most 3650"),
        ({"signal_interval_s": 0.0}, "signal interval must be"),
        ({"start": datetime(2026, 3, 2)}, "start must be timezone-aware"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_written(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ExportError, match=message):
        _export(tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_bad_floors_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="no machines"):
        export_floor([], tmp_path / "out", days=1)
    with pytest.raises(ExportError, match=r"more than once: \['imm-01'\]"):
        export_floor([FAST, *demo_floor(1), *demo_floor(1)], tmp_path / "out", days=1)


def test_a_non_empty_directory_needs_force(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="not empty"):
        _export(tmp_path, days=0.01)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    _export(tmp_path, days=0.01, force=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert (tmp_path / "manifest.json").exists()
    not_a_dir = tmp_path / "notes.txt"
    with pytest.raises(ExportError, match="not a directory"):
        _export(not_a_dir, days=0.01, force=True)


def test_progress_is_reported_per_machine_day(tmp_path: Path) -> None:
    calls: list[tuple[float, float]] = []
    export_floor([FAST], tmp_path / "out", days=1.5, progress=lambda *a: calls.append(a))
    assert calls == [(1.0, 1.5), (1.5, 1.5)]


# --- through the CLI: `moldlab sim --export` ------------------------------------------------


def test_cli_exports_a_scenario_with_its_start_and_seed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "faults"
    code = main(["sim", "--scenario", "faults", "--export", str(out), "--days", "0.05"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 22400
    assert manifest["start"] == "2026-01-04T23:00:00+00:00"  # the scenario's, in UTC
    assert manifest["source"] == "scenario faults"
    assert manifest["wear_time_factor"] == 30.0  # the scenario's, stated for the trainer
    assert len(manifest["machines"]) == 6
    assert "wrote 0.3 machine-days" in captured.out
    assert "0.3/0.3 machine-days" in captured.err  # the progress bar's final line


def test_cli_options_override_the_scenario(tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = ["sim", "--scenario", "demo", "--export", str(out), "--days", "0.02", "--seed", "5",
            "--start", "2026-06-01T10:00+02:00", "--signal-interval-s", "60"]  # fmt: skip
    assert main(argv) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 5
    assert manifest["start"] == "2026-06-01T08:00:00+00:00"  # in UTC
    assert manifest["signal_interval_s"] == 60.0


def test_cli_default_floor_and_start(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["sim", "--machines", "2", "--export", str(out), "--days", "0.01"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 1
    assert manifest["start"] == "2026-01-05T00:00:00+00:00"
    assert DEFAULT_EXPORT_START == DEFAULT_START  # the CLI keeps its own copy
    assert manifest["machines"] == ["imm-01", "imm-02"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--days", "1"], "--days goes with --export DIR"),
        (["--speed", "0"], "--speed, --machines and --interval-s must be positive"),
        (["--speed", "nan"], "--speed, --machines and --interval-s must be positive"),
        (["--start", "monday"], "--start 'monday' is neither an ISO 8601"),
        (["--export", "{out}"], "--export needs --days N"),
        (["--export", "{out}", "--days", "0"], "days must be a positive number"),
        (["--export", "{out}", "--days", "1e308"], "days must be a positive number"),
        (["--export", "{out}", "--days", "1", "--start", "monday"], "neither an ISO 8601"),
        (["--export", "{out}", "--days", "1", "--start", "2026-01-05"], "has no time zone"),
        (["--export", "{out}", "--days", "1", "--modbus-port", "5020"], "does not take"),
        (["--export", "{full}", "--days", "1"], "is not empty"),
        (["--export", "{out}", "--days", "1", "--scenario", "nope"], "nope: no such file"),
    ],
)
def test_cli_bad_input_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("")
    args = [a.format(out=tmp_path / "out", full=full) for a in argv]
    assert main(["sim", *args]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()
