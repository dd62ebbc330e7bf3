"""Ingest's Prometheus metrics and the HTTP endpoint that serves them.

    metrics = IngestMetrics()
    async with serve_metrics(metrics, "127.0.0.1", 9109):
        ...
        metrics.batch_committed(topics, prepared, result, committed_at)

Counted per batch, not per reading: ingest writes ~100,000 readings a second, and a batch
costs a few counter increments plus one histogram observation per message (~2 ms for a
batch of 500 messages, against ~200 ms to validate it).
"""

from __future__ import annotations

import collections
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from ingest.clocks import Clocks
from store.metrics import serve_registry

if TYPE_CHECKING:
    from ingest.writer import BatchResult, Prepared

__all__ = ["KINDS", "REJECT_REASONS", "IngestMetrics", "reject_reason", "serve_metrics"]

log = logging.getLogger(__name__)

# Label values, fixed so that every series exists from the start (at 0) and a stray topic
# cannot make new ones.
KINDS: Final = ("telemetry", "cycle", "state", "status", "job", "other")
REJECT_REASONS: Final = (
    "too_large",  # payload over MOLDLAB_INGEST_MAX_PAYLOAD_BYTES
    "topic",  # not moldlab/v1/site/area/line/machine/kind
    "json",  # not JSON
    "schema_version",  # a schema version ingest does not know
    "contract",  # JSON that is not a valid message (missing field, NaN, unknown kind, ...)
    "range",  # a value outside its unit's physical range
    "limit",  # a new machine or signal past the plant's limits (MOLDLAB_INGEST_MAX_*)
    "mismatch",  # machine id or kind contradicts the topic
    "future",  # timestamp more than 5 minutes ahead
    "too_old",  # timestamp more than a year old
    "database",  # the database refused the message
)
_COMMIT_BUCKETS_S: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LAG_BUCKETS_S: Final = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)


def reject_reason(reason: str) -> str:
    """The class (one of REJECT_REASONS) of a rejection reason from ingest.validation or the
    database fallback; "contract" for anything else the codec refused."""
    if reason.startswith("payload of "):
        return "too_large"
    if reason.startswith("limit: "):
        return "limit"
    if "outside its physical range" in reason:
        return "range"
    if reason.startswith("database refused it"):
        return "database"
    if reason.startswith("invalid JSON"):
        return "json"
    if reason.startswith("topic ") or "is not a valid topic segment" in reason:
        return "topic"
    if "contradicts topic" in reason:
        return "mismatch"
    if reason.startswith("timestamp "):
        return "future" if reason.endswith("in the future") else "too_old"
    if "schema_version" in reason:
        return "schema_version"
    return "contract"


class IngestMetrics:
    """The metrics of one ingest process, in a registry of their own (no global state)."""

    def __init__(self, *, max_clock_skew_s: float = 10.0) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.info = Info(
            "moldlab_ingest", "this worker's MQTT client id and subscription", registry=r
        )
        self.messages = Counter(
            "moldlab_ingest_messages",
            "messages acknowledged to the broker after commit, by the kind in their topic "
            "(written, duplicates and rejected alike)",
            ["kind"],
            registry=r,
        )
        self.written = Counter(
            "moldlab_ingest_messages_written", "messages that added rows", registry=r
        )
        self.duplicates = Counter(
            "moldlab_ingest_duplicates",
            "messages already written (same source and seq): redeliveries, dropped",
            registry=r,
        )
        self.readings = Counter("moldlab_ingest_readings", "telemetry readings written", registry=r)
        self.batches = Counter("moldlab_ingest_batches", "batches committed", registry=r)
        self.rejected = Counter(
            "moldlab_ingest_rejected",
            "messages stored in rejected_message, by class of reason",
            ["reason"],
            registry=r,
        )
        self.commit_seconds = Histogram(
            "moldlab_ingest_commit_seconds",
            "time to write and commit one batch (successful attempts)",
            buckets=_COMMIT_BUCKETS_S,
            registry=r,
        )
        self.lag_seconds = Histogram(
            "moldlab_ingest_lag_seconds",
            "from a valid message's timestamp to the commit of its batch (0 if ahead)",
            buckets=_LAG_BUCKETS_S,
            registry=r,
        )
        self.latest_written = Counter(
            "moldlab_ingest_latest_values_written",
            "newest signal values written to latest_value (at most once a second per signal)",
            registry=r,
        )
        self.clock_ahead = Gauge(
            "moldlab_ingest_clock_ahead_seconds",
            "how far a publisher's clock is ahead of ingest's (negative: behind), from its "
            "freshest message of the last minute (ingest.clocks)",
            ["publisher"],
            registry=r,
        )
        self.clocks = Clocks(self.clock_ahead, max_clock_skew_s)
        self.sequence_gaps = Gauge(
            "moldlab_ingest_sequence_gap_messages",
            "messages missing in the gateways' sequences of the last minutes, for over a "
            "minute (set by the one worker that watches; ingest.gaps)",
            registry=r,
        )
        self.inflight_batches = Gauge(
            "moldlab_ingest_inflight_batches",
            "batches being written, not yet acknowledged",
            registry=r,
        )
        self.broker_connected = Gauge(
            "moldlab_ingest_broker_connected", "1 while subscribed to the broker", registry=r
        )
        self.database_connected = Gauge(
            "moldlab_ingest_database_connected",
            "1 while the database connection is up",
            registry=r,
        )
        self.acknowledged = 0  # messages, as a plain number for the logs
        for kind in KINDS:
            self.messages.labels(kind)
        for reason in REJECT_REASONS:
            self.rejected.labels(reason)

    def batch_committed(
        self,
        topics: Sequence[str],
        prepared: Prepared,
        result: BatchResult,
        committed_at: datetime,
    ) -> None:
        """Count a committed batch, given the topics of all its messages."""
        kinds = collections.Counter(topic[topic.rfind("/") + 1 :] for topic in topics)
        for kind, n in kinds.items():
            self.messages.labels(kind if kind in KINDS else "other").inc(n)
        self.acknowledged += len(topics)
        self.batches.inc()
        self.written.inc(result.messages)
        self.duplicates.inc(result.duplicates)
        self.readings.inc(result.readings)
        if prepared.rejected:
            reasons = collections.Counter(reject_reason(r) for _, _, r in prepared.rejected)
            for reason, n in reasons.items():
                self.rejected.labels(reason).inc(n)
        if (refused := result.rejected - len(prepared.rejected)) > 0:
            self.rejected.labels("database").inc(refused)
        observe = self.lag_seconds.observe
        for _topic, message, _samples in prepared.valid.values():
            observe(max(0.0, (committed_at - message.ts).total_seconds()))
        self.clocks.observe(prepared.ahead_s)


@contextlib.asynccontextmanager
async def serve_metrics(
    metrics: IngestMetrics, host: str, port: int
) -> AsyncIterator[tuple[str, int] | None]:
    """Serve the metrics at http://host:port/metrics while inside (store.metrics); port 0:
    none; a port that is taken is logged and ingest goes on without them."""
    async with serve_registry(metrics.registry, host, port) as address:
        yield address
