"""Polling one Modbus TCP machine: typed snapshots; offline once, back once, backoff between.

Each register group of the map is read at its own interval, over the one connection; a
read that sees the shot counter move brings the machine's last cycle along, a read of the
job registers the machine's job.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from contracts import CYCLE_PARAMETERS, ContractError, Job, MachineState, PartQuality, signal_spec
from contracts.registers import COUNTER_SHOTS, JOB_NAME, STATE, Block, RegisterMap
from edge.backoff import backoff
from edge.config import ModbusConfig
from edge.errors import DeviceError

_log = logging.getLogger(__name__)
_SAME_ROUND_S = 0.005  # groups due this close together are read in one round

_PART_COUNTERS = ("CounterGood", "CounterBad")  # parts, where CounterShots counts shots
_MAX_PARTS = 1024  # the most parts one shot may make (contracts.CycleRecord.parts)

_T = TypeVar("_T")


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class CycleSeen:
    """The machine's last cycle, seen because its shot counter moved since the read before."""

    shot: int  # the shot counter after this cycle
    quality: PartQuality
    parts: int  # parts a shot makes, from the part and shot counters (1 until known)
    parameters: dict[str, float]  # the cycle parameters (contracts.CYCLE_PARAMETERS) read
    missed: int = 0  # cycles between the one before and this one that no read saw
    defect: str | None = None  # why its parts are bad (DefectCause); a bad cycle's only


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one poll saw; a machine that did not answer is an offline snapshot, no values."""

    ts: datetime
    values: dict[str, float] = field(default_factory=dict)  # signal -> value in contract unit
    state: MachineState | None = None  # None: the map has no State word, or not in this group
    reason: str | None = None
    cycle: CycleSeen | None = None  # the last cycle, if the shot counter moved
    group: str | None = None  # the register group read; None: every group, or offline
    job_read: bool = False  # whether the job registers were read (the map has them)
    job: Job | None = None  # the job they showed; None: none (an empty JobName) or not read


class ModbusPoller:
    """Polls one machine over Modbus TCP while `run()` runs, each register group at its interval.

    A machine that stops answering any read is reported once (a log line and one offline
    snapshot) and tried again after 1 s, 2 s ... 30 s (jittered); it is reported once when
    it is back. `last_shot` is the shot of the last cycle already recorded (before a restart):
    a first read that shows another shot brings that cycle; without it the first read only
    learns the counter. `polls`, `errors` and `cycles_missed` count group reads, failed
    reads and cycles that happened between two reads and so went unrecorded.
    """

    def __init__(
        self,
        machine_id: str,
        config: ModbusConfig,
        register_map: RegisterMap,
        *,
        last_shot: int | None = None,
        clock: Callable[[], datetime] = _utcnow,
        rng: random.Random | None = None,
    ) -> None:
        self.machine_id = machine_id
        self.config = config
        self.register_map = register_map
        self.address = f"{config.host}:{config.port} unit {config.unit_id}"
        self._clock = clock
        self._rng = rng
        self._blocks = register_map.blocks()
        state_group = register_map.group_of(STATE)
        # The State word's group first: after a start or an outage the state comes first.
        self.groups = sorted(register_map.groups, key=lambda group: group != state_group)
        self.intervals_s = {group: config.interval_s(group) for group in self.groups}
        self.polls = 0
        self.errors = 0
        self.cycles_missed = 0
        self._shot = last_shot
        self._parts_made: int | None = None  # CounterGood + CounterBad at self._shot
        self._parts_per_shot = 1
        # No reconnects or retries inside pymodbus: run() decides when to try again.
        self._client = AsyncModbusTcpClient(
            config.host, port=config.port, timeout=config.timeout_s, retries=0, reconnect_delay=0
        )

    async def read(self, group: str | None = None) -> Snapshot:
        """Read `group` (None: every group) once; DeviceError if the machine answers wrong."""
        if group is not None and group not in self.intervals_s:
            raise ValueError(f"no register group {group!r}; groups: {', '.join(self.groups)}")
        self.polls += 1
        try:
            ts, values, texts = await self._read_blocks(
                [b for b in self._blocks if group in (None, b.group)]
            )
            try:
                state, reason = self.register_map.state_from(values) or (None, None)
                cycle = self._cycle_in(values)
                job = self.register_map.job_from(values, texts)
            except ContractError as exc:
                raise DeviceError(f"{self.address}: {exc}") from exc
        except DeviceError:
            self.errors += 1
            raise
        # Cycle parameters, codes and job words are not telemetry: they travel on their own.
        signals = {k: v for k, v in values.items() if signal_spec(k) is not None}
        return Snapshot(ts, signals, state, reason, cycle, group, JOB_NAME in texts, job)

    async def _read_blocks(
        self, blocks: list[Block]
    ) -> tuple[datetime, dict[str, float], dict[str, str]]:
        client = self._client
        try:
            if not client.connected and not await _answer(client.connect()):
                raise DeviceError(f"{self.address}: cannot connect")
            ts = self._clock()
            values: dict[str, float] = {}
            texts: dict[str, str] = {}
            for block in blocks:
                response = await _answer(
                    client.read_holding_registers(
                        block.start, count=block.count, device_id=self.config.unit_id
                    )
                )
                if response.isError():
                    raise DeviceError(
                        f"{self.address}: exception code {response.exception_code} "
                        f"reading {block.count} registers at {block.start}"
                    )
                values.update(self.register_map.decode(block.start, response.registers))
                texts.update(self.register_map.decode_texts(block.start, response.registers))
        except ModbusException as exc:
            client.close()  # start afresh: a late answer must not pass for the next one
            raise DeviceError(f"{self.address}: {exc}") from exc
        except ContractError as exc:  # a text that is not printable ASCII
            raise DeviceError(f"{self.address}: {exc}") from exc
        return ts, values, texts

    def _cycle_in(self, values: Mapping[str, float]) -> CycleSeen | None:
        """The last cycle if the shot counter in `values` moved; the counters become the base."""
        if not math.isfinite(values.get(COUNTER_SHOTS, math.nan)):  # not read, or a float NaN
            return None
        shot = int(values[COUNTER_SHOTS])
        counted = [values.get(c, math.nan) for c in _PART_COUNTERS]
        made = int(sum(counted)) if all(map(math.isfinite, counted)) else None
        quality = self.register_map.quality_from(values)  # may raise: nothing changed yet
        # A machine may leave the last scrap's code standing: only a bad cycle has a defect.
        defect = self.register_map.defect_from(values) if quality is PartQuality.BAD else None
        last_shot, last_made = self._shot, self._parts_made
        self._shot, self._parts_made = shot, made
        if last_shot is None or shot == last_shot:
            return None
        shots = shot - last_shot  # < 0: the counter was reset
        # Part counters count every cavity of a good or bad shot; a test sample's parts are
        # in neither, so over one (and otherwise) the last known rate holds.
        if (
            quality is not PartQuality.TEST
            and shots > 0
            and made is not None
            and last_made is not None
            and made >= last_made
        ):
            self._parts_per_shot = min(round((made - last_made) / shots), _MAX_PARTS)
        missed = max(shots - 1, 0)
        if missed:
            self.cycles_missed += missed
            _log.warning(
                "machine %s: %d cycles between two polls not recorded", self.machine_id, missed
            )
        if quality is None:  # no cycle since the machine (or its counters) started
            return None
        parameters = {k: v for k, v in values.items() if k in CYCLE_PARAMETERS and math.isfinite(v)}
        if "CycleTime" not in parameters:  # a cycle record needs it; the map has it: NaN
            self.cycles_missed += 1
            _log.warning("machine %s: cycle %d not recorded: no CycleTime", self.machine_id, shot)
            return None
        return CycleSeen(shot, quality, self._parts_per_shot, parameters, missed, defect)

    def close(self) -> None:
        """Close the connection (run() does so when it ends)."""
        self._client.close()

    async def run(self, on_snapshot: Callable[[Snapshot], None]) -> None:
        """Poll until cancelled, a snapshot per round of the groups due; closes the connection.

        Groups due at the same moment are read in one round and make one snapshot, so a
        machine whose groups poll at one interval gives one snapshot (and batch) per interval.
        """
        answering: bool | None = None  # unknown before the first poll
        delays = backoff(rng=self._rng)
        due = dict.fromkeys(self.groups, time.monotonic())
        try:
            while True:
                await asyncio.sleep(max(min(due.values()) - time.monotonic(), 0))
                now = time.monotonic()
                # In the map's order, so the State group comes first.
                round_ = [g for g in self.groups if due[g] <= now + _SAME_ROUND_S]
                try:
                    snapshot = _merged([await self.read(group) for group in round_])
                except DeviceError as exc:
                    if answering is not False:
                        _log.warning("machine %s offline: %s", self.machine_id, exc)
                        on_snapshot(Snapshot(self._clock(), state=MachineState.OFFLINE))
                        answering = False
                    await asyncio.sleep(next(delays))
                    due = dict.fromkeys(self.groups, time.monotonic())
                    continue
                if not answering:
                    verb = "back" if answering is False else "answering"
                    _log.info("machine %s %s at %s", self.machine_id, verb, self.address)
                    answering, delays = True, backoff(rng=self._rng)
                on_snapshot(snapshot)
                # Keep the cadence; after a stall poll at once rather than rush missed polls.
                for group in round_:
                    due[group] = max(due[group] + self.intervals_s[group], time.monotonic())
        finally:
            self.close()


async def _answer(request: Awaitable[_T]) -> _T:
    """Await pymodbus's `request`; CancelledError if the task was cancelled meanwhile.

    pymodbus awaits each answer with asyncio.wait_for, which on Python 3.11 returns an answer
    that came in the loop turn of a cancellation and drops the cancellation (CPython
    gh-86296): a poller so cancelled would poll on for ever. The task still counts it.
    """
    answer = await request
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
    return answer


def _merged(snapshots: list[Snapshot]) -> Snapshot:
    """One snapshot of the groups read in one round: the first's time, everyone's values."""
    if len(snapshots) == 1:
        return snapshots[0]
    first = snapshots[0]
    values: dict[str, float] = {}
    for snapshot in snapshots:
        values.update(snapshot.values)
    stated = next((s for s in snapshots if s.state is not None), first)
    cycle = next((s.cycle for s in snapshots if s.cycle is not None), None)
    jobbed = next((s for s in snapshots if s.job_read), first)
    return Snapshot(
        first.ts, values, stated.state, stated.reason, cycle, None, jobbed.job_read, jobbed.job
    )
