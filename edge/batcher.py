"""One machine's snapshots as messages: a telemetry batch per interval, state changes, cycles,
jobs."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from contracts import (
    CycleRecord,
    Job,
    JobRecord,
    MachineState,
    Reading,
    StateChange,
    TelemetryBatch,
)
from contracts.codec import AnyMessage
from contracts.signals import parameter_range, signal_range
from edge.modbus import Snapshot

_log = logging.getLogger(__name__)


class Batcher:
    """Collects a machine's readings into one TelemetryBatch per `interval_s`.

    A new state (or standstill reason) first sends the readings before it, then a
    StateChange; the first snapshot announces the state the machine is in. A job that
    differs in anything from the last one sent (the first one seen included) is sent as a
    JobRecord. A snapshot with a cycle sends its CycleRecord at once, whatever the batch
    holds, naming the job last read.
    """

    def __init__(
        self,
        machine_id: str,
        source: str,
        next_seq: Callable[[], int],
        emit: Callable[[AnyMessage], None],
        *,
        interval_s: float,
        poll_interval_s: float,
    ) -> None:
        self.machine_id = machine_id
        self.source = source
        self.interval_s = interval_s
        self.poll_interval_s = poll_interval_s
        self._next_seq = next_seq
        self._emit = emit
        self._state: tuple[MachineState, str | None] | None = None
        self._job: Job | None = None  # the machine's job as last read (and sent)
        self._batch_ts: datetime | None = None
        self._readings: list[Reading] = []
        self._reported: set[str] = set()  # signals whose out-of-range readings were logged

    def add(self, snapshot: Snapshot) -> None:
        ts = snapshot.ts
        if snapshot.state is not None and (snapshot.state, snapshot.reason) != self._state:
            self.flush()
            self._state = (snapshot.state, snapshot.reason)
            self._emit(
                StateChange(**self._header(ts), state=snapshot.state, reason=snapshot.reason)
            )
        if snapshot.job_read and snapshot.job != self._job:
            self._job = snapshot.job  # None: no job now (nothing to send)
            if snapshot.job is not None:
                self._emit(JobRecord(**self._header(ts), **snapshot.job.model_dump()))
        if (cycle := snapshot.cycle) is not None:
            parameters = self._physical(cycle.parameters, parameter_range)
            if "CycleTime" in parameters:
                self._emit(
                    CycleRecord(
                        **self._header(ts),
                        shot=cycle.shot,
                        quality=cycle.quality,
                        parts=cycle.parts,
                        parameters=parameters,
                        job=self._job.job_name if self._job else None,
                        defect=cycle.defect,
                    )
                )
        values = self._physical(snapshot.values, signal_range)
        if not values:
            return
        if self._batch_ts is not None:
            elapsed_s = (ts - self._batch_ts).total_seconds()
            if not 0 <= elapsed_s < self.interval_s:  # a late poll, or the clock was set back
                self.flush()
        self._batch_ts = self._batch_ts or ts
        elapsed_s = (ts - self._batch_ts).total_seconds()
        offset_ms = round(elapsed_s * 1000)
        self._readings += [
            Reading(signal=k, offset_ms=offset_ms, value=v) for k, v in values.items()
        ]
        # Send now if the next poll falls into the next interval (half a poll of slack for
        # jitter), rather than holding the batch back one more poll.
        if elapsed_s + 1.5 * self.poll_interval_s > self.interval_s:
            self.flush()

    def _physical(
        self, values: Mapping[str, float], bounds: Callable[[str], tuple[float, float]]
    ) -> dict[str, float]:
        """`values` less those outside their physical range (NaN included): a broken sensor
        or register reads them, and the contract carries none. Logged once per signal."""
        kept = {}
        for name, value in values.items():
            low, high = bounds(name)
            if low <= value <= high:
                kept[name] = value
            elif name not in self._reported:
                self._reported.add(name)
                _log.warning(
                    "machine %s: %s read %.6g, outside its physical range [%g, %g]; such "
                    "readings are dropped (logged once)",
                    self.machine_id, name, value, low, high,
                )  # fmt: skip
        return kept

    def flush(self) -> None:
        """Send the readings collected so far, if any."""
        if self._batch_ts is not None and self._readings:
            self._emit(TelemetryBatch(**self._header(self._batch_ts), readings=self._readings))
        self._batch_ts, self._readings = None, []

    def _header(self, ts: datetime) -> dict[str, Any]:
        return {
            "machine_id": self.machine_id,
            "ts": ts,
            "source": self.source,
            "seq": self._next_seq(),
        }
