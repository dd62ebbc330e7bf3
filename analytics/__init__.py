"""Production performance and maintenance analytics, and the read-only queries behind them.

Exceptions::

    AnalyticsError
    └── NotFound         no machine or signal of that name (a LookupError too)

A database without the moldlab schema raises `store.SchemaNotReady`.
"""

from analytics.errors import AnalyticsError, NotFound
from analytics.history import HistoryPoint, first_bucket, signal_history
from analytics.overview import (
    CycleSummary,
    MachineOverview,
    MachinePage,
    SignalValue,
    machine_overview,
    machine_page,
)

__all__ = [
    "AnalyticsError",
    "CycleSummary",
    "HistoryPoint",
    "MachineOverview",
    "MachinePage",
    "NotFound",
    "SignalValue",
    "first_bucket",
    "machine_overview",
    "machine_page",
    "signal_history",
]
