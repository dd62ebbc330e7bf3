"""MQTT -> validated batches -> PostgreSQL/TimescaleDB; owns the database schema."""

from ingest.metrics import IngestMetrics
from ingest.schema import downgrade, storage_backend, upgrade
from ingest.service import IngestError, run_ingest
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
    "downgrade",
    "run_ingest",
    "storage_backend",
    "upgrade",
]
