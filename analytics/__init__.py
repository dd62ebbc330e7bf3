"""Production performance and maintenance analytics, and the read-only queries behind them.

Exceptions::

    AnalyticsError
    ├── NotFound         no machine or signal of that name (a LookupError too)
    └── SchemaNotReady   the database has no moldlab schema yet (run `moldlab db upgrade`)
"""

from analytics.errors import AnalyticsError, NotFound, SchemaNotReady
from analytics.history import HistoryPoint, first_bucket, signal_history
from analytics.overview import (
    CycleSummary,
    MachineOverview,
    MachinePage,
    SignalValue,
    machine_overview,
    machine_page,
)
from analytics.storage import Backend, storage_backend

__all__ = [
    "AnalyticsError",
    "Backend",
    "CycleSummary",
    "HistoryPoint",
    "MachineOverview",
    "MachinePage",
    "NotFound",
    "SchemaNotReady",
    "SignalValue",
    "first_bucket",
    "machine_overview",
    "machine_page",
    "signal_history",
    "storage_backend",
]
