"""Commit confirmations on the wire: ranges, topics, and what a malformed one is told."""

from __future__ import annotations

import json

import pytest

from contracts import TopicError
from contracts.commits import (
    SUBSCRIBED_TOPIC,
    CommitError,
    commit_topic,
    decode_commits,
    encode_commits,
    gateway_of,
    ranges,
)


def test_seqs_travel_as_inclusive_ranges_and_come_back() -> None:
    assert ranges([7, 3, 4, 5, 9, 4]) == [[3, 5], [7, 7], [9, 9]]
    payload = encode_commits({"pi-1:imm-01": [10, 11, 12, 20], "pi-1": [5]})
    assert json.loads(payload) == {
        "committed": {"pi-1": [[5, 5]], "pi-1:imm-01": [[10, 12], [20, 20]]}
    }
    assert decode_commits(payload) == {"pi-1": [(5, 5)], "pi-1:imm-01": [(10, 12), (20, 20)]}


def test_a_gateway_reads_its_own_topic_outside_the_machines_namespace() -> None:
    assert commit_topic("s", "a", "l", "pi-1") == "moldlab/commit/v1/s/a/l/pi-1"
    assert not SUBSCRIBED_TOPIC.startswith("moldlab/v1/")  # ingest consumes moldlab/v1/...
    assert gateway_of("pi-1:imm-01") == gateway_of("pi-1") == "pi-1"
    with pytest.raises(TopicError):
        commit_topic("s", "a", "l", "pi/1")


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        (b"\xff", "not JSON"),
        (b"[1]", '"committed"'),
        (b'{"committed": []}', '"committed"'),
        (b'{"committed": {"a/b": [[1, 2]]}}', "not a source id"),
        (b'{"committed": {"pi": {"1": 2}}}', "must be a list"),
        (b'{"committed": {"pi": [[2, 1]]}}', "is not a range"),
        (b'{"committed": {"pi": [[-1, 1]]}}', "is not a range"),
        (b'{"committed": {"pi": [[1.0, 2]]}}', "is not a range"),
        (b'{"committed": {"pi": [[true, 2]]}}', "is not a range"),
        (b'{"committed": {"pi": [[1, 9223372036854775808]]}}', "is not a range"),
        (b'{"committed": {"pi": [[1, 2, 3]]}}', "is not a range"),
        (json.dumps({"committed": {"pi": [[1, 1]] * 100_001}}).encode(), "over 100000 ranges"),
        (json.dumps({"committed": {f"s{i}": [] for i in range(10_001)}}).encode(), "10001 sources"),
    ],
)
def test_a_malformed_commit_message_is_a_clear_error(payload: bytes, says: str) -> None:
    with pytest.raises(CommitError, match=says) as caught:
        decode_commits(payload)
    assert len(str(caught.value)) < 300
