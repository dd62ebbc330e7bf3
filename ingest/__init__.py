"""MQTT -> validated batches -> the store (PostgreSQL/TimescaleDB), exactly once."""

from ingest.errors import IngestError
from ingest.metrics import IngestMetrics
from ingest.service import run_ingest
from ingest.settings import IngestSettings
from ingest.validation import Inbound, Limits, RejectedMessage
from ingest.writer import BatchResult, Writer

__all__ = [
    "BatchResult",
    "Inbound",
    "IngestError",
    "IngestMetrics",
    "IngestSettings",
    "Limits",
    "RejectedMessage",
    "Writer",
    "run_ingest",
]
