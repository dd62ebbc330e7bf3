"""Commit confirmations: ingest tells each edge gateway which of its messages are committed.

A gateway keeps a message in its outbox until the database has it, not until the broker
has: a broker that restarts without its shared subscriptions, or loses its disk, deletes
what it acknowledged. After each commit, ingest publishes the (source, seq) of every
message the batch made durable (written, already written, or recorded as rejected) to the
gateway's commit topic; the gateway deletes those and sends again what stays unconfirmed.

Topics (outside moldlab/v1/..., which ingest consumes):

    moldlab/commit/v1/{site}/{area}/{line}/{gateway}   what of the gateway's is committed
    moldlab/commit/v1/subscribed                       an ingest worker has (re)subscribed:
                                                       what the broker took before may be lost

A commit's payload: {"committed": {"<source>": [[first, last], ...]}}, inclusive ranges of
sequence numbers. A source's gateway is the part of its id before ":" (edge sources are
`<gateway>:<machine>`, the gateway's own status is `<gateway>`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping

from contracts.errors import ContractError
from contracts.messages import SOURCE_PATTERN
from contracts.topics import check_segment

PREFIX = "moldlab/commit/v1"
SUBSCRIBED_TOPIC = f"{PREFIX}/subscribed"
MAX_SOURCES = 10_000  # in one commit message
MAX_RANGES = 100_000  # in one commit message, over all its sources
SEQ_END = 2**63  # sequence numbers are below this (contracts.messages)
_SOURCE = re.compile(SOURCE_PATTERN)


class CommitError(ContractError):
    """A commit message that is not one."""


def commit_topic(site: str, area: str, line: str, gateway: str) -> str:
    """The topic a gateway reads its commit confirmations from."""
    for field, value in (("site", site), ("area", area), ("line", line), ("gateway", gateway)):
        check_segment(field, value)
    return f"{PREFIX}/{site}/{area}/{line}/{gateway}"


def is_source(text: str) -> bool:
    """Whether `text` can be a message's source id."""
    return _SOURCE.fullmatch(text) is not None


def gateway_of(source: str) -> str:
    """The gateway whose outbox numbers `source`'s messages."""
    return source.split(":", 1)[0]


def ranges(seqs: Iterable[int]) -> list[list[int]]:
    """`seqs` as sorted inclusive [first, last] ranges."""
    out: list[list[int]] = []
    for seq in sorted(set(seqs)):
        if out and out[-1][1] == seq - 1:
            out[-1][1] = seq
        else:
            out.append([seq, seq])
    return out


def encode_commits(seqs_by_source: Mapping[str, Iterable[int]]) -> bytes:
    """The payload confirming `seqs_by_source`."""
    committed = {source: ranges(seqs) for source, seqs in sorted(seqs_by_source.items())}
    return json.dumps({"committed": committed}, separators=(",", ":")).encode()


def decode_commits(payload: bytes) -> dict[str, list[tuple[int, int]]]:
    """The inclusive seq ranges by source that `payload` confirms; CommitError if malformed."""
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        raise CommitError(f"a commit message is not JSON ({exc})") from None
    committed = data.get("committed") if isinstance(data, dict) else None
    if not isinstance(committed, dict):
        raise CommitError('a commit message needs an object "committed"')
    if len(committed) > MAX_SOURCES:
        raise CommitError(
            f"a commit message names {len(committed)} sources (at most {MAX_SOURCES})"
        )
    out: dict[str, list[tuple[int, int]]] = {}
    count = 0
    for source, spans in committed.items():
        if not is_source(source):
            raise CommitError(f"source {source[:140]!r} is not a source id")
        if not isinstance(spans, list):
            raise CommitError(f"source {source!r}: ranges must be a list")
        count += len(spans)
        if count > MAX_RANGES:
            raise CommitError(f"a commit message holds over {MAX_RANGES} ranges")
        out[source] = [_span(source, span) for span in spans]
    return out


def _span(source: str, span: object) -> tuple[int, int]:
    if (
        isinstance(span, list)
        and len(span) == 2
        and all(type(n) is int and 0 <= n < SEQ_END for n in span)
        and span[0] <= span[1]
    ):
        return span[0], span[1]
    raise CommitError(f"source {source!r}: {str(span)[:60]} is not a range [first, last]")
