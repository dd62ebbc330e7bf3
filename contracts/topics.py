"""The unified-namespace topic: moldlab/v1/{site}/{area}/{line}/{machine}/{kind}.

A machine is identified by its place, site/area/line/machine (`Place`): two sites may each
have an imm-01, and they are two machines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from contracts.errors import ContractError
from contracts.messages import MessageKind

PREFIX = "moldlab/v1"
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _shown(text: str, limit: int = 120) -> str:
    """`text` quoted for an error message, cut short: a topic may be 64 KiB long."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} chars)"


class TopicError(ContractError):
    """A topic or topic segment that does not follow the moldlab namespace."""


def check_segment(field: str, value: str) -> str:
    """Return `value` if it can stand as one topic segment, else raise TopicError."""
    if not _SEGMENT.fullmatch(value):  # match() would let a trailing newline through
        raise TopicError(
            f"{field} {_shown(value)} is not a valid topic segment "
            "(1-64 of A-Z a-z 0-9 _ . -, starting with a letter or digit)"
        )
    return value


def _check_place(where: Place | Topic) -> None:
    for field in ("site", "area", "line", "machine"):
        check_segment(field, getattr(where, field))


@dataclass(frozen=True, slots=True)
class Place:
    """Where a machine (or a publisher) is: `str(place)` is "site/area/line/machine"."""

    site: str
    area: str
    line: str
    machine: str

    def __post_init__(self) -> None:
        _check_place(self)

    def __str__(self) -> str:
        return f"{self.site}/{self.area}/{self.line}/{self.machine}"

    @classmethod
    def parse(cls, text: str) -> Place:
        """The place written as "site/area/line/machine"; TopicError if it is not one."""
        parts = text.split("/")
        if len(parts) != 4:
            raise TopicError(f"place {_shown(text)} is not site/area/line/machine")
        return cls(*parts)


@dataclass(frozen=True, slots=True)
class Topic:
    site: str
    area: str
    line: str
    machine: str
    kind: MessageKind

    def __post_init__(self) -> None:
        _check_place(self)

    @property
    def place(self) -> Place:
        """The place of the machine (or publisher) the topic is about."""
        # Its segments are checked already: ingest asks this of every message it takes.
        place = object.__new__(Place)
        set_ = object.__setattr__
        set_(place, "site", self.site)
        set_(place, "area", self.area)
        set_(place, "line", self.line)
        set_(place, "machine", self.machine)
        return place

    def __str__(self) -> str:
        return f"{PREFIX}/{self.site}/{self.area}/{self.line}/{self.machine}/{self.kind.value}"

    @classmethod
    def parse(cls, topic: str) -> Topic:
        parts = topic.split("/")
        if len(parts) != 7 or "/".join(parts[:2]) != PREFIX:
            raise TopicError(f"topic {_shown(topic)} is not {PREFIX}/site/area/line/machine/kind")
        try:
            kind = MessageKind(parts[6])
        except ValueError:
            kinds = ", ".join(k.value for k in MessageKind)
            raise TopicError(
                f"topic {_shown(topic)} has unknown kind {_shown(parts[6])} ({kinds})"
            ) from None
        return cls(parts[2], parts[3], parts[4], parts[5], kind)

    @staticmethod
    def subscription(site: str = "+") -> str:
        """The filter that matches every message of a site (all sites by default)."""
        return f"{PREFIX}/{site}/+/+/+/+"
