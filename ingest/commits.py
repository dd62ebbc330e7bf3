"""What a committed batch confirms to the edge gateways (contracts.commits), by topic."""

from __future__ import annotations

import json
from collections import defaultdict

from contracts import Topic, TopicError
from contracts.commits import SEQ_END, commit_topic, encode_commits, gateway_of, is_source
from ingest.writer import Prepared

_SOURCES_PER_MESSAGE = 1_000  # well within what a gateway reads (contracts.commits)
_SEQS_PER_MESSAGE = 10_000


def confirmations(prepared: Prepared) -> list[tuple[str, bytes]]:
    """(topic, payload) of the commit messages for the gateways that sent this committed
    batch: one per gateway, or several when it names many sources or seqs.

    Every message the batch made durable is confirmed: written now, written before (a
    redelivery), or recorded as rejected, lest the gateway send a rejected one for ever.
    A reject whose topic or (source, seq) cannot be read is confirmed to nobody.
    """
    seqs: defaultdict[str, defaultdict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for (source, seq), (topic, _, _) in prepared.valid.items():
        _add(seqs, topic, source, seq)
    for topic_text, payload, _ in prepared.rejected:
        key = _source_seq(payload)
        if key is None:
            continue
        try:
            topic = Topic.parse(topic_text)
        except TopicError:
            continue
        _add(seqs, topic, *key)
    return [
        (target, encode_commits(part))
        for target, by_source in seqs.items()
        for part in _parts(by_source)
    ]


def _parts(by_source: dict[str, list[int]]) -> list[dict[str, list[int]]]:
    """`by_source` cut into pieces of at most _SOURCES_PER_MESSAGE sources and about
    _SEQS_PER_MESSAGE seqs (a source's seqs are not split)."""
    parts: list[dict[str, list[int]]] = [{}]
    count = 0
    for source, seqs in by_source.items():
        if parts[-1] and (
            len(parts[-1]) >= _SOURCES_PER_MESSAGE or count + len(seqs) > _SEQS_PER_MESSAGE
        ):
            parts.append({})
            count = 0
        parts[-1][source] = seqs
        count += len(seqs)
    return parts


def _add(
    seqs: defaultdict[str, defaultdict[str, list[int]]], topic: Topic, source: str, seq: int
) -> None:
    try:
        target = commit_topic(topic.site, topic.area, topic.line, gateway_of(source))
    except TopicError:  # a source that no gateway of ours numbers
        return
    seqs[target][source].append(seq)


def _source_seq(payload: bytes) -> tuple[str, int] | None:
    """The (source, seq) a rejected payload claims, if it is JSON that has them."""
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    source, seq = data.get("source"), data.get("seq")
    if isinstance(source, str) and is_source(source) and type(seq) is int and 0 <= seq < SEQ_END:
        return source, seq
    return None
