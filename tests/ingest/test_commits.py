"""What a committed batch confirms, to which gateway: pure, no broker."""

from __future__ import annotations

from datetime import UTC, datetime

from contracts import MachineState, StateChange, Topic, encode
from contracts.commits import decode_commits
from ingest.commits import confirmations
from ingest.validation import Inbound, Limits
from ingest.writer import prepare


def _state(site: str, line: str, source: str, seq: int) -> Inbound:
    message = StateChange(
        machine_id="imm-01", ts=datetime.now(UTC), source=source, seq=seq,
        state=MachineState.RUNNING,
    )  # fmt: skip
    topic = f"moldlab/v1/{site}/hall/{line}/imm-01/state"
    return Inbound(topic, encode(message), datetime.now(UTC))


def test_each_gateway_is_told_its_written_duplicate_and_rejected_messages() -> None:
    late = _state("s", "l1", "pi-1:imm-01", 9)
    rejected = Inbound(  # kind contradicts the topic: rejected, recorded, still confirmed
        late.topic.replace("/state", "/cycle"), late.payload, late.received_at
    )
    batch = [
        _state("s", "l1", "pi-1:imm-01", 1),
        _state("s", "l1", "pi-1:imm-01", 2),
        _state("s", "l1", "pi-1:imm-01", 2),  # a redelivery in the same batch
        _state("s", "l2", "pi-2:imm-01", 7),
        _state("s", "l2", "sim-9", 3),  # a machine of its own, no gateway: its own topic
        rejected,
        Inbound("moldlab/v1/s/hall/l1/imm-01/state", b"{not json", datetime.now(UTC)),
        Inbound("not/a/topic", late.payload, datetime.now(UTC)),
    ]
    told = {
        topic: decode_commits(payload) for topic, payload in confirmations(prepare(batch, Limits()))
    }
    assert told == {
        "moldlab/commit/v1/s/hall/l1/pi-1": {"pi-1:imm-01": [(1, 2), (9, 9)]},
        "moldlab/commit/v1/s/hall/l2/pi-2": {"pi-2:imm-01": [(7, 7)]},
        "moldlab/commit/v1/s/hall/l2/sim-9": {"sim-9": [(3, 3)]},
    }
    assert Topic.parse(batch[0].topic).line == "l1"


def test_a_batch_of_many_sources_is_confirmed_in_messages_a_gateway_reads_whole() -> None:
    # 50,000 sources under one gateway's name (a flood, or a forger): confirmations the
    # gateway would refuse as too large would hold up the confirmation of its own.
    batch = [_state("s", "l1", f"pi-1:m{n}", n) for n in range(50_000)]
    limits = Limits(max_machines=100_000, max_machines_per_site=100_000)
    sent = confirmations(prepare(batch, limits))
    assert len(sent) == 50
    seen: dict[str, list[tuple[int, int]]] = {}
    for topic, payload in sent:
        assert topic == "moldlab/commit/v1/s/hall/l1/pi-1"
        seen |= decode_commits(payload)  # CommitError if a gateway would refuse it
    assert seen == {f"pi-1:m{n}": [(n, n)] for n in range(50_000)}
