"""Valid moldlab messages and the ways a hostile or broken publisher gets them wrong.

Both fuzz suites draw from here: the decoder's (hypothesis drives a `random.Random`) and the
running ingest's. Every choice comes from the `rng` given, so a seed repeats a corpus.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from contracts import (
    CYCLE_PARAMETERS,
    DEFECT_CAUSES,
    SIGNALS,
    STANDSTILL_REASONS,
    JobStatus,
    MachineState,
)

Json = dict[str, Any]

_SIGNALS = [s.name for s in SIGNALS]
_STATES = [s.value for s in MachineState]
_JOB_STATUSES = [s.value for s in JobStatus]
_NAME_CHARS = "ABCXYZ0129-_/#. äß"


def valid_message(
    rng: random.Random, *, machine: str, source: str, seq: int, now: datetime
) -> Json:
    """A valid message of a random kind, its timestamp within the last minute of `now`.

    Of schema version 1, 2 or 3, each with only what its version has: jobs and a cycle's job
    from 2, a bad cycle's defect cause from 3.
    """
    ts = now - timedelta(milliseconds=rng.randrange(60_000))
    head: Json = {
        "schema_version": rng.choice([1, 2, 3]),
        "machine_id": machine,
        "ts": ts.isoformat().replace("+00:00", "Z") if rng.random() < 0.7 else _offset(ts, rng),
        "source": source,
        "seq": seq,
    }
    kind = rng.choice(["telemetry", "telemetry", "cycle", "state", "job"])
    if kind == "telemetry":
        readings = [
            {
                "signal": rng.choice(_SIGNALS),
                "offset_ms": rng.randrange(0, 1000),
                "value": round(rng.uniform(0, 100), 3)
                if rng.random() < 0.9
                else rng.randrange(100),
            }
            for _ in range(rng.randint(1, 30))
        ]
        return {**head, "kind": "telemetry", "readings": readings}
    if kind == "cycle":
        names = rng.sample(sorted(CYCLE_PARAMETERS), rng.randint(0, 5))
        parameters = {name: round(rng.uniform(0.1, 60), 3) for name in ["CycleTime", *names]}
        quality = rng.choice(["good", "bad", "test"])
        cycle = {
            **head, "kind": "cycle", "shot": rng.randrange(10**6), "quality": quality,
            "parts": rng.randint(0, 8), "parameters": parameters,
        }  # fmt: skip
        if head["schema_version"] >= 2 and rng.random() < 0.7:
            cycle["job"] = _name(rng)
        if head["schema_version"] >= 3 and quality == "bad" and rng.random() < 0.7:
            cycle["defect"] = rng.choice([*DEFECT_CAUSES, _name(rng)])
        return cycle
    if kind == "job":
        job = {
            **head, "schema_version": rng.choice([2, 3]), "kind": "job", "job_name": _name(rng),
            "mould_id": _name(rng), "job_status": rng.choice(_JOB_STATUSES),
            "active_cavities": rng.randint(1, 16), "nominal_parts": rng.randrange(10**7),
        }  # fmt: skip
        if rng.random() < 0.5:
            job["material"] = rng.choice(["PP", "ABS", "HDPE", "PA6 GF30"])
        return job
    state = MachineState(rng.choice(_STATES))
    reasons = STANDSTILL_REASONS.get(state, ())
    reason = rng.choice(reasons) if reasons and rng.random() < 0.8 else None
    return {**head, "kind": "state", "state": state.value, "reason": reason}


def _name(rng: random.Random) -> str:
    """A job or mould name: printable, no blank at either end."""
    middle = "".join(rng.choice(_NAME_CHARS) for _ in range(rng.randint(0, 20)))
    return f"{rng.choice('JPM')}{middle}{rng.randint(0, 9)}"


def _offset(ts: datetime, rng: random.Random) -> str:
    hours = rng.choice([-5, -1, 1, 2, 9])
    return ts.astimezone(UTC).astimezone(_tz(hours)).isoformat()


def _tz(hours: int) -> Any:
    from datetime import timezone

    return timezone(timedelta(hours=hours))


# Values a broken publisher sends where another is expected.
HOSTILE_VALUES: list[Any] = [
    None, True, False, 0, -1, 1.0, 1e3, 1e308, -1e308, 1e-320, 2**63, 2**64, 10**30,
    "1", "1.5", "", "x" * 1000, "imm-01\n", "a\x00b", "ünïcödé", [], {}, [1, 2], {"a": 1},
    "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2026-11-21T08:00:00",
    "2026-13-01T00:00:00Z", 1_763_712_060, "1763712060", "NaN",
    2, 3, " PO-1", "PO-1 ", "x" * 65, "set_up_active", "job_in_production", "running",
    4, "good", "bad", "test", "short_shot",
]  # fmt: skip


def _pick_path(message: Json, rng: random.Random) -> tuple[Any, Any]:
    """A random (container, key) inside `message`."""
    container: Any = message
    while True:
        keys = list(container) if isinstance(container, dict) else list(range(len(container)))
        if not keys:
            return container, None
        key = rng.choice(keys)
        child = container[key]
        if isinstance(child, dict | list) and child and rng.random() < 0.6:
            container = child
            continue
        return container, key


def _set_value(message: Json, rng: random.Random) -> None:
    container, key = _pick_path(message, rng)
    if key is not None:
        container[key] = copy.deepcopy(rng.choice(HOSTILE_VALUES))


def _drop_key(message: Json, rng: random.Random) -> None:
    container, key = _pick_path(message, rng)
    if key is not None:
        del container[key]


def _add_key(message: Json, rng: random.Random) -> None:
    container, _ = _pick_path(message, rng)
    if isinstance(container, dict):
        container[rng.choice(["extra", "value", "Signal", "kind2", "x" * 70])] = 1


def _future(message: Json, rng: random.Random) -> None:  # a refusal of ingest, not decode
    later = datetime.now(UTC) + timedelta(minutes=rng.choice([6, 60, 60 * 24 * 365]))
    message["ts"] = later.isoformat()


def _past(message: Json, rng: random.Random) -> None:
    message["ts"] = (datetime.now(UTC) - timedelta(days=rng.choice([366, 3650]))).isoformat()


def _readings(message: Json) -> list[Json]:
    """The readings still shaped as readings (an earlier mutation may have broken them)."""
    readings = message.get("readings")
    return [r for r in readings if isinstance(r, dict)] if isinstance(readings, list) else []


def _offset_ahead(message: Json, rng: random.Random) -> None:
    for reading in _readings(message):
        reading["offset_ms"] = rng.choice([3_600_000, 3_600_001, -1])


def _out_of_range(message: Json, rng: random.Random) -> None:
    for reading in _readings(message)[:1]:
        reading["value"] = rng.choice([1e308, -1e308, 1e13, -300.0, 2.0**64])
    if isinstance(message.get("parameters"), dict):
        message["parameters"]["CycleTime"] = rng.choice([1e308, -1.0, 1e6])


MUTATIONS: list[Callable[[Json, random.Random], None]] = [
    _set_value, _set_value, _set_value, _drop_key, _add_key, _future, _past, _offset_ahead,
    _out_of_range,
]  # fmt: skip


def mutate(message: Json, rng: random.Random) -> bytes:
    """`message` broken in one to three ways, as bytes; sometimes broken as bytes too."""
    broken = json.loads(json.dumps(message))
    for _ in range(rng.randint(1, 3)):
        rng.choice(MUTATIONS)(broken, rng)
    payload = json.dumps(broken, separators=(",", ":")).encode()  # orjson: 64-bit ints only
    roll = rng.random()
    if roll < 0.05:
        return payload[: rng.randrange(len(payload))]  # cut short
    if roll < 0.10:
        at = rng.randrange(len(payload))
        return payload[:at] + bytes([rng.randrange(256)]) + payload[at + 1 :]  # a flipped byte
    if roll < 0.15 and payload.startswith(b'{"'):
        key = next(iter(broken), None) if isinstance(broken, dict) else None
        if key is not None:  # the same key twice
            first = json.dumps({key: broken[key]}, separators=(",", ":")).encode()
            return first[:-1] + b"," + payload[1:]
    return payload
