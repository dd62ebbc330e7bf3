"""Rows of a seeded floor for `moldlab bench analytics`, drawn at the demo's rates and COPYed.

`--machines` presses on the demo plant file's site (its time zone, shifts, breaks and moulds),
each drawn activity by activity from its own seeded random source (as the simulator seeds its
machines): a cycle every ideal cycle time or a little slower, with pauses inside some cycles;
the simulator's random stops (simulators.specs.DEFAULT_STOPS: reasons and repair times) and
breakdowns with their reasons; an order of a day or two per mould, ended by a mould change
(setup) with a machine_job row at each JobStatus change; start-up scrap after a standstill,
process scrap by defect and a quality-control sample every two running hours; planned
maintenance every few weeks; the breaks the calendar plans. The simulator's own model is not
run: it takes about 0.3 s of CPU per machine-day (4.5 minutes for 900), where drawing these
rows takes a few milliseconds per machine-day. Telemetry is not drawn: no OEE figure reads it.
"""

from __future__ import annotations

import bisect
import math
import random
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection

from contracts import MachineState
from plant import Mould, Plant, ShiftCalendar
from plant.plantfile import Machine, parse_plant
from simulators.scenario import PACKAGED
from simulators.specs import DEFAULT_STOPS
from store.plant import write_plant

DAY_S = 86_400.0
_PLANT_FILE = PACKAGED / "demo-plant.yaml"
_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 in Unix microseconds: binary COPY's zero
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_COPY_TRAILER = struct.pack("!h", -1)
_NULL = struct.pack("!i", -1)

# --- the data --------------------------------------------------------------------------------

# Breakdowns: (reason, share, median repair hours); one every FAULT_MTBF_H running hours.
_FAULTS = (
    ("heater_burnout", 0.35, 1.0),
    ("ejector_failure", 0.2, 1.0),
    ("cooling_blocked", 0.15, 1.5),
    ("hydraulic_pump_failure", 0.1, 3.0),
    ("check_ring_failure", 0.1, 3.0),
    ("screw_barrel_wear", 0.1, 4.0),
)
FAULT_MTBF_H = 40.0
DEFECT_P = 0.02  # process scrap per cycle, besides start-up scrap after a standstill
_DEFECTS = ("short_shot", "sink_marks", "flash", "weight_out_of_tolerance", "flow_lines",
            "warpage", "contamination")  # fmt: skip
_DEFECT_WEIGHTS = (0.25, 0.2, 0.15, 0.15, 0.1, 0.1, 0.05)
STARTUP_SCRAP_AFTER_S = 600.0  # as the simulator: a standstill this long spoils the melt
TEST_SAMPLE_EVERY_S = 7200.0  # running time between quality-control samples
MICRO_PAUSES_PER_H = 3.0  # pauses inside a cycle (no state change): speed loss
SETUP_MEDIAN_MIN = 40.0
JOB_HOURS = (16.0, 40.0)  # orders last this long at the ideal cycle: a day or two
MAINTENANCE_EVERY_D = (21.0, 35.0)
MAINTENANCE_H = (2.0, 4.0)
KW_RUNNING = 18.0  # average electrical power while cycling, for CycleEnergy
PARAMETERS = ("CycleTime", "CycleEnergy", "CushionStroke", "PartWeight")  # of EUROMAP 77's 14

_PARAMETERS_JSON = (
    b'{"CycleTime": %.3f, "CycleEnergy": %.4f, "CushionStroke": %.3f, "PartWeight": %.3f}'
)
_CYCLE_COLUMNS = ("time", "machine_id", "shot", "parts", "cycle_time_s", "seq", "quality",
                  "source", "job_name", "defect", "parameters")  # fmt: skip
_STATE_COLUMNS = ("time", "machine_id", "seq", "state", "reason", "source")
_JOB_COLUMNS = ("time", "machine_id", "active_cavities", "nominal_parts", "seq", "job_name",
                "mould_id", "job_status", "material", "source")  # fmt: skip
_CYCLE_FIXED = struct.Struct("!hiqiiiqiiidiq")  # 11 fields; time, id, shot, parts, cycle_s, seq
_STATE_FIXED = struct.Struct("!hiqiiiq")  # 6 fields; time, machine_id, seq
_JOB_FIXED = struct.Struct("!hiqiiiiiqiq")  # 10 fields; time, id, cavities, nominal, seq


def _text(value: str | None) -> bytes:
    """A text field of a binary COPY row: its length and UTF-8 bytes, or NULL."""
    if value is None:
        return _NULL
    raw = value.encode()
    return struct.pack("!i", len(raw)) + raw


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _us(t: float) -> int:
    """Epoch seconds as binary COPY's timestamptz: microseconds since 2000-01-01 UTC."""
    return round(t * 1e6) - _PG_EPOCH_US


@dataclass(frozen=True, slots=True)
class MachineSetup:
    """One press of the benchmark's floor."""

    index: int
    key: str
    area: str
    line: str
    moulds: tuple[Mould, ...]  # worked through in turn, an order each
    speed: float  # cycle time over the ideal, before noise and pauses


def floor_plan(plant: Plant, machines: int) -> list[MachineSetup]:
    """`machines` presses on two lines, each alternating between two of the plant's moulds."""
    moulds = plant.moulds
    return [
        MachineSetup(
            index=i,
            key=f"imm-{i + 1:02d}",
            area="hall-a",
            line=f"line-{i % 2 + 1}",
            moulds=(moulds[i % len(moulds)], moulds[(i + 2) % len(moulds)]),
            speed=1.0 + 0.02 * (i % 4),
        )
        for i in range(machines)
    ]


@dataclass(slots=True)
class Counts:
    """Rows drawn, and what they hold."""

    cycles: int = 0
    states: int = 0
    jobs: int = 0
    bad: int = 0
    test: int = 0
    parts: int = 0
    stops: int = 0  # unplanned stops, idle and faults
    faults: int = 0
    setups: int = 0
    maintenance: int = 0
    across_shift_change: int = 0  # stops running over the end of a shift

    def add(self, other: Counts) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


class MachineRows:
    """One press drawn activity by activity, as binary COPY rows of cycle, machine_state and
    machine_job (see the module docstring for what it does and how often)."""

    def __init__(
        self,
        setup: MachineSetup,
        machine_id: int,
        calendar: ShiftCalendar,
        start: float,
        end: float,
        seed: int,
    ) -> None:
        self.setup = setup
        self.end = end
        self.counts = Counts()
        self._id = machine_id
        self._rng = rng = random.Random(seed * 1000 + setup.index)
        self._source = f"bench:{setup.key}"
        self._source_field = _text(self._source)
        # Planned stops of the calendar (breaks, time without a shift), and shift ends.
        stops = calendar.planned_stops_between(_dt(start), _dt(end + DAY_S))
        self._off = [(s.start, s.end, s.reason) for s in stops] + [(math.inf, math.inf, "")]
        self._off_i = 0
        self._shift_ends = sorted(
            s.end.timestamp() for s in calendar.shifts_between(_dt(start), _dt(end + DAY_S))
        )
        self._cycles = bytearray()
        self._states = bytearray()
        self._jobs = bytearray()
        self.t = start
        self.until = start
        self._seq = 0
        self._shot = 0
        self._state: MachineState | None = None
        self._reason: str | None = None
        self._stop_since: float | None = None
        self._startup_scrap = 0
        self._since_sample = rng.uniform(0.0, TEST_SAMPLE_EVERY_S)
        self._run_s = 0.0  # running time so far: the clock of random stops and breakdowns
        self._stop_at = [rng.expovariate(1.0 / (c.mtbf_h * 3600)) for c in DEFAULT_STOPS]
        self._fault_at = rng.expovariate(1.0 / (FAULT_MTBF_H * 3600))
        self._next_event = 0.0
        day = rng.uniform(3.0, MAINTENANCE_EVERY_D[0])
        self._maintenance: list[float] = []
        while start + day * DAY_S < end:
            self._maintenance.append(start + day * DAY_S)
            day += rng.uniform(*MAINTENANCE_EVERY_D)
        # The order on the press when the data begins is under way.
        self._mould_i = rng.randrange(len(setup.moulds))
        self._new_job(start, "job_in_production", started=rng.uniform(0.1, 0.9))
        self._enter(start, MachineState.RUNNING, None)
        self._start_cycle()

    # --- rows ------------------------------------------------------------------------------

    def take(self) -> tuple[bytes, bytes, bytes]:
        """The rows drawn since the last call: cycles, states, jobs (without COPY headers)."""
        out = bytes(self._cycles), bytes(self._states), bytes(self._jobs)
        self._cycles.clear()
        self._states.clear()
        self._jobs.clear()
        return out

    def _seq_next(self) -> int:
        self._seq += 1
        return self._seq

    def _enter(self, t: float, state: MachineState, reason: str | None) -> None:
        if state is self._state and reason == self._reason:
            return
        if state is not MachineState.RUNNING and self._stop_since is None:
            self._stop_since = t
        self._state, self._reason = state, reason
        self._states += _STATE_FIXED.pack(6, 8, _us(t), 4, self._id, 8, self._seq_next())
        self._states += _text(state.value) + _text(reason) + self._source_field
        self.counts.states += 1

    def _job_row(self, t: float, status: str) -> None:
        self._jobs += _JOB_FIXED.pack(
            10, 8, _us(t), 4, self._id, 4, self._cavities, 8, self._nominal, 8, self._seq_next()
        )
        mould = self.setup.moulds[self._mould_i]
        self._jobs += self._job_field + _text(mould.id) + _text(status) + _text(mould.material)
        self._jobs += self._source_field
        self._job_status = status
        self.counts.jobs += 1

    def _new_job(self, t: float, status: str, started: float = 0.0) -> None:
        """An order of the mounted mould; `started`: the share of it already made."""
        rng = self._rng
        mould = self.setup.moulds[self._mould_i]
        # Now and then a cavity is blocked off and the order runs on the others.
        blocked = mould.cavities >= 4 and rng.random() < 0.1
        self._cavities = mould.cavities - blocked
        hours = rng.uniform(*JOB_HOURS)
        self._nominal = int(round(hours * 3600 / mould.ideal_cycle_s * mould.cavities, -2))
        self._shots_left = math.ceil(self._nominal * (1.0 - started) / self._cavities)
        self._job_name = f"{self.setup.key}-{_dt(t):%y%m%d-%H%M}"
        self._job_field = _text(self._job_name)
        self._job_row(t, status)
        self._ideal = mould.ideal_cycle_s
        self._weight = mould.part_weight_g
        self._cycle_base = mould.ideal_cycle_s * self.setup.speed
        self._cycle_tail = self._source_field + self._job_field
        self._parts = self._cavities

    # --- time --------------------------------------------------------------------------------

    def advance(self, to: float) -> None:
        """Draw what happens until `to` (or the end of the data)."""
        to = min(to, self.end)
        while self.until <= to:
            t = self.t = self.until
            if self._state is MachineState.RUNNING:
                self._cycle_done(t)
                if (
                    self._run_s < self._next_event
                    and self._shots_left > 0
                    and t < self._off[self._off_i][0]
                    and (not self._maintenance or t < self._maintenance[0])
                ):
                    self._start_cycle()
                    continue
            self._next_activity(t)

    def _start_cycle(self) -> None:
        rng = self._rng
        ct = self._cycle_base * (1.0 + abs(rng.gauss(0.0, 0.01)))
        if rng.random() < MICRO_PAUSES_PER_H * ct / 3600.0:
            ct += 25.0 * math.exp(rng.gauss(0.0, 0.7))
        self._ct = ct
        self.until = self.t + ct

    def _cycle_done(self, t: float) -> None:
        rng = self._rng
        ct = self._ct
        self._run_s += ct
        self._since_sample += ct
        self._shot += 1
        counts = self.counts
        counts.cycles += 1
        counts.parts += self._parts
        if self._startup_scrap > 0:
            self._startup_scrap -= 1
            quality, defect = b"\x00\x00\x00\x03bad", _text("startup_scrap")
        elif rng.random() < DEFECT_P:
            quality = b"\x00\x00\x00\x03bad"
            defect = _text(rng.choices(_DEFECTS, _DEFECT_WEIGHTS)[0])
        elif self._since_sample >= TEST_SAMPLE_EVERY_S:
            self._since_sample = 0.0
            quality, defect = b"\x00\x00\x00\x04test", _NULL
        else:
            quality, defect = b"\x00\x00\x00\x04good", _NULL
            self._shots_left -= 1
        if quality[4] == 98:  # b"bad"
            counts.bad += self._parts
        elif quality[4] == 116:  # b"test"
            counts.test += self._parts
        params = _PARAMETERS_JSON % (
            ct,
            ct * KW_RUNNING / 3600.0,
            5.0 + rng.gauss(0.0, 0.06),
            self._weight * (1.0 + rng.gauss(0.0, 0.0015)),
        )
        self._cycles += _CYCLE_FIXED.pack(
            11, 8, _us(t), 4, self._id, 8, self._shot, 4, self._parts, 8, ct, 8, self._seq_next()
        )
        self._cycles += quality + self._cycle_tail + defect
        self._cycles += struct.pack("!ib", len(params) + 1, 1) + params
        if self._job_status == "start_up_active" and defect is _NULL:
            self._job_row(t, "job_in_production")  # start-up is over
        if self._shots_left <= 0:
            self._job_row(t, "job_finished")

    def _stand(self, t: float, state: MachineState, reason: str, seconds: float) -> None:
        self._enter(t, state, reason)
        self.until = t + seconds
        if state is not MachineState.PLANNED_STOP:
            self.counts.stops += 1
            k = bisect.bisect_right(self._shift_ends, t)
            if k < len(self._shift_ends) and self._shift_ends[k] < self.until:
                self.counts.across_shift_change += 1

    def _next_activity(self, t: float) -> None:
        """Decide, at the end of a cycle or a stop, what the press does next (as the model)."""
        rng = self._rng
        while self._off[self._off_i][1] <= t:
            self._off_i += 1
        off_start, off_end, off_reason = self._off[self._off_i]
        if self._maintenance and self._maintenance[0] <= t:
            self._maintenance.pop(0)
            hours = rng.uniform(*MAINTENANCE_H)
            self._stand(t, MachineState.PLANNED_STOP, "planned_maintenance", hours * 3600)
            self.counts.maintenance += 1
        elif off_start <= t:
            self._enter(t, MachineState.PLANNED_STOP, off_reason)
            self.until = off_end
        elif self._shots_left <= 0:
            # The next mould goes in: the setup of the next order.
            self._mould_i = (self._mould_i + 1) % len(self.setup.moulds)
            minutes = SETUP_MEDIAN_MIN * math.exp(rng.gauss(0.0, 0.3))
            self._stand(t, MachineState.SETUP, "mould_change", minutes * 60)
            self._new_job(t, "set_up_active")
            self.counts.setups += 1
        elif self._run_s >= self._fault_at:
            self._fault_at = self._run_s + rng.expovariate(1.0 / (FAULT_MTBF_H * 3600))
            reason, _, median_h = rng.choices(_FAULTS, [f[1] for f in _FAULTS])[0]
            repair_h = median_h * math.exp(rng.gauss(0.0, 0.5))
            self._stand(t, MachineState.FAULT, reason, repair_h * 3600)
            self.counts.faults += 1
        elif self._run_s >= min(self._stop_at):
            k = self._stop_at.index(min(self._stop_at))
            cause = DEFAULT_STOPS[k]
            self._stop_at[k] = self._run_s + rng.expovariate(1.0 / (cause.mtbf_h * 3600))
            minutes = cause.repair_median_min * math.exp(rng.gauss(0.0, cause.repair_sigma))
            self._stand(t, cause.state, cause.reason, minutes * 60)
        else:
            if self._stop_since is not None:
                if t - self._stop_since >= STARTUP_SCRAP_AFTER_S:
                    self._startup_scrap = rng.randint(1, 3)
                self._stop_since = None
            self._enter(t, MachineState.RUNNING, None)
            if self._job_status == "set_up_active":
                self._job_row(t, "start_up_active")
            self._start_cycle()
        self._next_event = min(self._fault_at, *self._stop_at)


def demo_plant(machines: int) -> Plant:
    """The demo plant file (site, calendar, moulds) with the benchmark's presses."""
    plant = parse_plant(_PLANT_FILE.read_text(), str(_PLANT_FILE))
    site = plant.sites[0]
    presses = [
        Machine(site=site.id, area=m.area, line=m.line, id=m.key)
        for m in floor_plan(plant, machines)
    ]
    return plant.model_copy(update={"machines": presses, "effective_from": None})


async def _copy(conn: AsyncConnection[Any], table: str, columns: Sequence[str],
                chunks: Iterator[bytes]) -> None:  # fmt: skip
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
    async with conn.cursor() as cur, cur.copy(statement) as copy:
        await copy.write(_COPY_HEADER)
        for chunk in chunks:
            await copy.write(chunk)
        await copy.write(_COPY_TRAILER)


async def load(
    conn: AsyncConnection[Any],
    plant: Plant,
    start: float,
    end: float,
    seed: int,
    progress: Callable[[float, float], None] | None = None,
) -> tuple[dict[str, int], Counts]:
    """Write the plant file and the presses' rows over [start, end); rows per table."""
    site = plant.sites[0]
    # From a day before the data, so that its first slices already follow the calendar.
    await write_plant(conn, plant, _dt(start - DAY_S), "moldlab bench analytics")
    calendar = site.shift_calendar()
    setups = floor_plan(plant, len(plant.machines))
    days = (end - start) / DAY_S
    total = Counts()
    done = 0.0
    for setup in setups:
        cur = await conn.execute(
            "INSERT INTO machine (machine_key, site, area, line, first_seen)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (setup.key, site.id, setup.area, setup.line, _dt(start)),
        )
        row = await cur.fetchone()
        assert row is not None  # INSERT ... RETURNING gives the row
        gen = MachineRows(setup, int(row[0]), calendar, start, end, seed)
        states: list[bytes] = []
        jobs: list[bytes] = []

        def days_of(gen: MachineRows = gen, states: list[bytes] = states,
                    jobs: list[bytes] = jobs) -> Iterator[bytes]:  # fmt: skip
            nonlocal done
            at = start
            while at < end:
                step = min(DAY_S, end - at)
                at += step
                gen.advance(at)
                cycles, s, j = gen.take()
                states.append(s)
                jobs.append(j)
                yield cycles
                done += step / DAY_S
                if progress:
                    progress(done, days * len(setups))

        await _copy(conn, "cycle", _CYCLE_COLUMNS, days_of())
        await _copy(conn, "machine_state", _STATE_COLUMNS, iter(states))
        await _copy(conn, "machine_job", _JOB_COLUMNS, iter(jobs))
        total.add(gen.counts)
    # Each line's edge gateway came up before the data begins (and stayed up).
    for line in sorted({s.line for s in setups}):
        gateway = f"{site.id}/hall-a/{line}/edge-{line}"
        await conn.execute(
            "INSERT INTO edge_status (time, edge_key, online, detail, source, seq, received_at)"
            " VALUES (%s, %s, true, 'birth', %s, 1, %s)",
            (_dt(start - 60), gateway, f"bench:{gateway}", _dt(start - 60)),
        )
        for s in setups:
            if s.line == line:
                await conn.execute(
                    "INSERT INTO gateway_machine (machine, gateway, listed_at) VALUES (%s, %s, %s)",
                    (f"{site.id}/{s.area}/{s.line}/{s.key}", gateway, _dt(start - 60)),
                )
    rows = {"cycle": total.cycles, "machine_state": total.states, "machine_job": total.jobs,
            "edge_status": len({s.line for s in setups})}  # fmt: skip
    return rows, total
