"""The Modbus holding-register map shared by simulators and edge, declared in registers.yaml.

Pure: the caller reads the YAML (the packaged default is `contracts/registers.yaml`) and
passes the parsed dict to `RegisterMap.model_validate`; this module only validates the map
and converts values (numbers, and the job's texts) to and from 16-bit register words.

Registers belong to groups (e.g. `status`, `process`, `job`) that a poller reads at their
own interval; a read request never spans two groups.
"""

from __future__ import annotations

import itertools
import math
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from contracts.errors import ContractError
from contracts.messages import Job, JobStatus, Name, PartQuality
from contracts.signals import CYCLE_PARAMETERS, MachineState, signal_spec

STATE = "State"
STANDSTILL_REASON = "StandstillReason"
CYCLE_QUALITY = "CycleQuality"  # quality of the last cycle's parts: see `qualities`
DEFECT_CAUSE = "DefectCause"  # why the last cycle's parts are bad: see `defects`
COUNTER_SHOTS = "CounterShots"  # moves once per cycle: a new value means a new last cycle
# The job, in EUROMAP 77's terms (contracts.Job): words and texts.
JOB_STATUS = "JobStatus"  # code: see `job_statuses`
ACTIVE_CAVITIES = "ActiveCavities"
NOMINAL_PARTS = "NominalParts"
JOB_NAME = "JobName"  # empty: no job
MOULD_ID = "MouldId"
MATERIAL = "Material"  # optional
_JOB_NEEDS = (JOB_NAME, MOULD_ID, JOB_STATUS, ACTIVE_CAVITIES, NOMINAL_PARTS)
_JOB_ALL = (*_JOB_NEEDS, MATERIAL)
MAX_READ_REGISTERS = 125  # the most one Modbus read-holding-registers request may ask for
DEFAULT_GROUP = "default"  # the group of a register that names none
_GROUP_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")

_Code = Annotated[int, Field(ge=0, le=65535)]
_Reason = Annotated[str, Field(min_length=1, max_length=64)]


class RegisterType(StrEnum):
    UINT16 = "uint16"
    UINT32 = "uint32"
    FLOAT32 = "float32"


# Words that are codes or counts, not signals, with the types each may have (scale 1).
_WORDS: dict[str, tuple[RegisterType, ...]] = {
    STATE: (RegisterType.UINT16,),
    STANDSTILL_REASON: (RegisterType.UINT16,),
    CYCLE_QUALITY: (RegisterType.UINT16,),
    DEFECT_CAUSE: (RegisterType.UINT16,),
    JOB_STATUS: (RegisterType.UINT16,),
    ACTIVE_CAVITIES: (RegisterType.UINT16, RegisterType.UINT32),
    NOMINAL_PARTS: (RegisterType.UINT16, RegisterType.UINT32),
}


# struct format, number of 16-bit words, significant digits the raw type carries
_LAYOUT: dict[RegisterType, tuple[str, int, int]] = {
    RegisterType.UINT16: ("H", 1, 5),
    RegisterType.UINT32: ("I", 2, 10),
    RegisterType.FLOAT32: ("f", 2, 7),
}


def _group_name(value: str) -> str:
    if not _GROUP_NAME.fullmatch(value):
        raise ValueError(
            f"group {value!r} is not a short name: a lower-case letter, then up to 31 "
            "lower-case letters, digits or underscores"
        )
    return value


@dataclass(frozen=True, slots=True)
class Block:
    """One read request: `count` registers from `start`, all of one group."""

    start: int
    count: int
    group: str = DEFAULT_GROUP


class Register(BaseModel):
    """One value in holding registers: value = raw * scale, in the signal's contract unit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    address: int = Field(ge=0, le=65535)
    type: RegisterType
    word_order: Literal["ABCD", "CDAB"] = "ABCD"  # ABCD: high word at the lower address
    scale: float = 1.0
    unit: str = "1"
    group: str = DEFAULT_GROUP  # registers read together, at the group's poll interval

    _short_name = field_validator("group")(_group_name)

    @property
    def width(self) -> int:
        return _LAYOUT[self.type][1]

    @property
    def end(self) -> int:
        """The first address after this register."""
        return self.address + self.width

    @model_validator(mode="after")
    def _check(self) -> Register:
        if (types := _WORDS.get(self.name)) is not None:
            if self.type not in types or self.scale != 1:
                kinds = " or ".join(t.value for t in types)
                raise ValueError(f"{self.name} must be a {kinds} with scale 1")
        elif (unit := _unit_of(self.name)) is None:
            raise ValueError(
                f"{self.name!r} is neither a signal of contracts.SIGNALS, a cycle parameter "
                f"of contracts.CYCLE_PARAMETERS nor one of {', '.join(_WORDS)}"
            )
        elif self.unit != unit:
            raise ValueError(f"{self.name} is in {unit!r}, not {self.unit!r}; convert by scale")
        if not math.isfinite(self.scale) or self.scale == 0:
            raise ValueError(f"{self.name}: scale must be finite and non-zero")
        if self.end > 65536:
            raise ValueError(f"{self.name} at {self.address} runs past register 65535")
        return self

    def decode(self, words: Sequence[int]) -> float:
        fmt, width, digits = _LAYOUT[self.type]
        ordered = list(words) if self.word_order == "ABCD" else list(reversed(words))
        (raw,) = struct.unpack(f">{fmt}", struct.pack(f">{width}H", *ordered))
        # Rounded to the digits the raw type carries: 45.37, not float32's 45.369998931884766.
        return float(f"{raw * self.scale:.{digits}g}")

    def encode(self, value: float) -> list[int]:
        fmt, width, _ = _LAYOUT[self.type]
        raw = value / self.scale
        try:
            data = struct.pack(f">{fmt}", raw if fmt == "f" else round(raw))
        except (struct.error, OverflowError, ValueError) as exc:
            raise ContractError(f"{self.name} = {value} does not fit a {self.type}") from exc
        words = list(struct.unpack(f">{width}H", data))
        return words if self.word_order == "ABCD" else words[::-1]


class TextRegister(BaseModel):
    """A text in `length` holding registers: ASCII, two characters a register, NUL-padded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Literal["JobName", "MouldId", "Material"]
    address: int = Field(ge=0, le=65535)
    length: int = Field(ge=1, le=32, description="registers: twice as many characters")
    byte_order: Literal["AB", "BA"] = "AB"  # AB: the first character in the high byte
    group: str = DEFAULT_GROUP

    _short_name = field_validator("group")(_group_name)

    @property
    def width(self) -> int:
        return self.length

    @property
    def end(self) -> int:
        return self.address + self.length

    @model_validator(mode="after")
    def _fits(self) -> TextRegister:
        if self.end > 65536:
            raise ValueError(f"{self.name} at {self.address} runs past register 65535")
        return self

    def decode(self, words: Sequence[int]) -> str:
        """The text up to the first NUL, without the blanks around it; "" for none."""
        data = struct.pack(f">{self.length}H", *words)
        if self.byte_order == "BA":
            data = bytes(b for pair in zip(data[1::2], data[::2], strict=True) for b in pair)
        text = data.split(b"\0", 1)[0].strip(b" ")
        if any(not 0x20 <= byte < 0x7F for byte in text):
            raise ContractError(f"{self.name} is not printable ASCII: {text[:40]!r}")
        return text.decode("ascii")

    def encode(self, text: str, *, clip: bool = False) -> list[int]:
        """The words of `text`; ContractError if it is not printable ASCII or too long (unless
        `clip`: cut to the characters the registers hold, as a panel's field would)."""
        if clip:
            text = text[: 2 * self.length].rstrip(" ")
        if len(text) > 2 * self.length:
            raise ContractError(
                f"{self.name} {text[:40]!r} is longer than {2 * self.length} characters"
            )
        if not all(" " <= char < "\x7f" for char in text):
            raise ContractError(f"{self.name} {text[:40]!r} is not printable ASCII")
        data = text.encode("ascii").ljust(2 * self.length, b"\0")
        if self.byte_order == "BA":
            data = bytes(b for pair in zip(data[1::2], data[::2], strict=True) for b in pair)
        return list(struct.unpack(f">{self.length}H", data))


def _unit_of(name: str) -> str | None:
    spec = signal_spec(name)
    return spec.unit if spec else CYCLE_PARAMETERS.get(name)


class RegisterMap(BaseModel):
    """A machine's holding registers and the codes of its words (State, StandstillReason,
    CycleQuality, DefectCause, JobStatus)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    registers: tuple[Register, ...] = Field(min_length=1)
    texts: tuple[TextRegister, ...] = ()
    states: dict[_Code, MachineState] = Field(default_factory=dict)
    reasons: dict[Annotated[int, Field(ge=1, le=65535)], _Reason] = Field(default_factory=dict)
    qualities: dict[Annotated[int, Field(ge=1, le=65535)], PartQuality] = Field(
        default_factory=dict
    )
    defects: dict[Annotated[int, Field(ge=1, le=65535)], Name] = Field(default_factory=dict)
    alarms: dict[Annotated[int, Field(ge=0, le=15)], _Reason] = Field(default_factory=dict)
    job_statuses: dict[_Code, JobStatus] = Field(default_factory=dict)

    @property
    def fields(self) -> tuple[Register | TextRegister, ...]:
        """Numbers and texts: everything that takes registers."""
        return (*self.registers, *self.texts)

    @model_validator(mode="after")
    def _check(self) -> RegisterMap:
        names = [r.name for r in self.fields]
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"registers named more than once: {dupes}")
        ordered = sorted(self.fields, key=lambda r: r.address)
        for before, after in itertools.pairwise(ordered):
            if after.address < before.end:
                raise ValueError(
                    f"{before.name} ({before.address}-{before.end - 1}) overlaps "
                    f"{after.name} ({after.address}-{after.end - 1})"
                )
        if STATE in names and not self.states:
            raise ValueError(f"a {STATE} register needs a `states` table (code: state)")
        if CYCLE_QUALITY in names and not self.qualities:
            raise ValueError(
                f"a {CYCLE_QUALITY} register needs a `qualities` table (code: quality)"
            )
        if CYCLE_QUALITY in names and not {COUNTER_SHOTS, "CycleTime"} <= set(names):
            raise ValueError(
                f"a {CYCLE_QUALITY} register needs {COUNTER_SHOTS} and CycleTime registers: "
                "a cycle record is a shot with its cycle time"
            )
        if DEFECT_CAUSE in names and CYCLE_QUALITY not in names:
            raise ValueError(
                f"a {DEFECT_CAUSE} register needs a {CYCLE_QUALITY} register: a defect is "
                "the cause of a bad cycle's parts"
            )
        if any(name in names for name in _JOB_ALL):
            if missing := [name for name in _JOB_NEEDS if name not in names]:
                raise ValueError(
                    f"a job needs {', '.join(_JOB_NEEDS)} registers; missing: {', '.join(missing)}"
                )
            if not self.job_statuses:
                raise ValueError(f"a {JOB_STATUS} register needs a `job_statuses` table")
        # Values that only make sense together must come in the same read.
        self._same_group(STATE, [STANDSTILL_REASON])
        self._same_group(COUNTER_SHOTS, [CYCLE_QUALITY, DEFECT_CAUSE, *CYCLE_PARAMETERS])
        self._same_group(JOB_NAME, _JOB_ALL)
        return self

    def _same_group(self, leader: str, followers: Sequence[str]) -> None:
        group = self.group_of(leader)
        if group is None:
            return
        for register in self.fields:
            if register.name in followers and register.group != group:
                raise ValueError(
                    f"{register.name} must be in the group of {leader} ({group!r}), "
                    f"not {register.group!r}: they are read together"
                )

    @property
    def groups(self) -> tuple[str, ...]:
        """The register groups, in the order of their lowest address."""
        ordered = sorted(self.fields, key=lambda r: r.address)
        return tuple(dict.fromkeys(r.group for r in ordered))

    def group_of(self, name: str) -> str | None:
        """The group of register `name`; None if the map has no such register."""
        return next((r.group for r in self.fields if r.name == name), None)

    def blocks(self, max_registers: int = MAX_READ_REGISTERS) -> list[Block]:
        """Reads covering every register: contiguous runs of one group, `max_registers` at most."""
        # A value is read whole: the widest (a text) sets the least a read must take.
        widest = max(2, *(f.width for f in self.fields))
        if not widest <= max_registers <= MAX_READ_REGISTERS:
            raise ValueError(f"max_registers must be {widest}..{MAX_READ_REGISTERS}")
        blocks: list[Block] = []
        for reg in sorted(self.fields, key=lambda r: r.address):
            last = blocks[-1] if blocks else None
            if (
                last
                and last.group == reg.group
                and last.start + last.count == reg.address
                and (last.count + reg.width <= max_registers)
            ):
                blocks[-1] = Block(last.start, last.count + reg.width, reg.group)
            else:
                blocks.append(Block(reg.address, reg.width, reg.group))
        return blocks

    def decode(self, block_start: int, registers: Sequence[int]) -> dict[str, float]:
        """The values of every register lying wholly in `registers`, read from `block_start`."""
        end = block_start + len(registers)
        return {
            r.name: r.decode(registers[r.address - block_start : r.end - block_start])
            for r in self.registers
            if block_start <= r.address and r.end <= end
        }

    def decode_texts(self, block_start: int, registers: Sequence[int]) -> dict[str, str]:
        """The texts lying wholly in `registers`, read from `block_start` ("" for none)."""
        end = block_start + len(registers)
        return {
            t.name: t.decode(registers[t.address - block_start : t.end - block_start])
            for t in self.texts
            if block_start <= t.address and t.end <= end
        }

    def encode(self, values: Mapping[str, float]) -> dict[int, list[int]]:
        """Register words by start address for each value the map has (others are ignored)."""
        return {r.address: r.encode(values[r.name]) for r in self.registers if r.name in values}

    def encode_job(self, job: Job | None, *, clip: bool = False) -> dict[int, list[int]]:
        """Register words by start address of the map's job registers; None: no job (zeros).

        `clip`: texts longer than their registers are cut short, as a panel's field would.
        """
        if job is None:
            return {f.address: [0] * f.width for f in self.fields if f.name in _JOB_ALL}
        numbers: dict[str, float] = {
            JOB_STATUS: self.job_status_code(job.job_status),
            ACTIVE_CAVITIES: job.active_cavities,
            NOMINAL_PARTS: job.nominal_parts,
        }
        texts = {JOB_NAME: job.job_name, MOULD_ID: job.mould_id, MATERIAL: job.material or ""}
        return self.encode(numbers) | {
            t.address: t.encode(texts[t.name], clip=clip) for t in self.texts
        }

    def job_status_code(self, status: JobStatus) -> int:
        for code, known in self.job_statuses.items():
            if known is status:
                return code
        raise ContractError(f"the register map has no code for job status {status.value!r}")

    def job_from(self, values: Mapping[str, float], texts: Mapping[str, str]) -> Job | None:
        """The job in decoded `values` and `texts`; None if not read, or JobName is empty.

        An unlisted JobStatus code reads as `other`; registers that make no job (no mould,
        no cavities) are a ContractError.
        """
        name = texts.get(JOB_NAME)
        if not name:
            return None
        status = self.job_statuses.get(int(values.get(JOB_STATUS, 0)), JobStatus.OTHER)
        try:
            return Job(
                job_name=name,
                mould_id=texts.get(MOULD_ID, ""),
                job_status=status,
                active_cavities=int(values.get(ACTIVE_CAVITIES, 0)),
                nominal_parts=int(values.get(NOMINAL_PARTS, 0)),
                material=texts.get(MATERIAL) or None,
            )
        except ValidationError as exc:
            found = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                for e in exc.errors(include_url=False, include_input=False)[:3]
            )
            raise ContractError(f"the job registers make no job: {found}") from None

    def state_code(self, state: MachineState) -> int:
        for code, known in self.states.items():
            if known is state:
                return code
        raise ContractError(f"the register map has no code for state {state.value!r}")

    def reason_code(self, reason: str | None) -> int:
        if reason is None:
            return 0
        for code, known in self.reasons.items():
            if known == reason:
                return code
        raise ContractError(f"the register map has no code for standstill reason {reason!r}")

    def quality_code(self, quality: PartQuality | None) -> int:
        """The CycleQuality word for `quality`; 0 before the first cycle."""
        if quality is None:
            return 0
        for code, known in self.qualities.items():
            if known is quality:
                return code
        raise ContractError(f"the register map has no code for part quality {quality.value!r}")

    def quality_from(self, values: Mapping[str, float]) -> PartQuality | None:
        """The last cycle's part quality in decoded `values`; None before the first cycle."""
        code = int(values.get(CYCLE_QUALITY, 0))
        if code == 0:
            return None
        if code not in self.qualities:
            raise ContractError(
                f"unknown {CYCLE_QUALITY} code {code}; known: {sorted(self.qualities)}"
            )
        return self.qualities[code]

    def defect_code(self, defect: str | None) -> int:
        """The DefectCause word for `defect`; 0 for none. "code_<n>" (how an unlisted code
        reads) is code n again."""
        if defect is None:
            return 0
        for code, known in self.defects.items():
            if known == defect:
                return code
        number = defect.removeprefix("code_")
        if number != defect and number.isdigit() and 1 <= int(number) <= 65535:
            return int(number)
        raise ContractError(f"the register map has no code for defect cause {defect!r}")

    def defect_from(self, values: Mapping[str, float]) -> str | None:
        """The last cycle's defect cause in decoded `values`; None for 0 or not read.

        An unlisted code reads as "code_<n>" rather than being refused, as a standstill
        reason's does: a new code of a machine's quality control never stops the data.
        """
        code = int(values.get(DEFECT_CAUSE, 0))
        if code == 0:
            return None
        return self.defects.get(code, f"code_{code}")

    def state_from(self, values: Mapping[str, float]) -> tuple[MachineState, str | None] | None:
        """The state and standstill reason in decoded `values`; None if the map has no State."""
        if STATE not in values:
            return None
        code = int(values[STATE])
        if code not in self.states:
            raise ContractError(f"unknown {STATE} code {code}; known: {sorted(self.states)}")
        reason_code = int(values.get(STANDSTILL_REASON, 0))
        reason = self.reasons.get(reason_code, f"code_{reason_code}") if reason_code else None
        return self.states[code], reason
