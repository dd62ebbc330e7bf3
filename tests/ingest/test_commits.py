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
        topic: decode_commits(payload)
        for topic, payload in confirmations(prepare(batch, Limits())).items()
    }
    assert told == {
        "moldlab/commit/v1/s/hall/l1/pi-1": {"pi-1:imm-01": [(1, 2), (9, 9)]},
        "moldlab/commit/v1/s/hall/l2/pi-2": {"pi-2:imm-01": [(7, 7)]},
        "moldlab/commit/v1/s/hall/l2/sim-9": {"sim-9": [(3, 3)]},
    }
    assert Topic.parse(batch[0].topic).line == "l1"
