"""Production performance and maintenance analytics, and the read-only queries behind them.

Exceptions::

    AnalyticsError
    ├── NotFound         no machine or signal of that name (a LookupError too)
    └── SpcError         an SPC chart or capability the data cannot give (a ValueError too)

A database without the moldlab schema raises `store.SchemaNotReady`.
"""

from analytics.errors import AnalyticsError, NotFound, SpcError
from analytics.history import HistoryPoint, first_bucket, signal_history
from analytics.overview import (
    CycleSummary,
    MachineOverview,
    MachinePage,
    SignalValue,
    machine_overview,
    machine_page,
)
from analytics.spc_query import (
    BaselinePeriod,
    CapabilityPeriod,
    CapabilityReport,
    ChartLimits,
    SpcPoint,
    SpcSeries,
    spc_capability,
    spc_series,
)

__all__ = [
    "AnalyticsError",
    "BaselinePeriod",
    "CapabilityPeriod",
    "CapabilityReport",
    "ChartLimits",
    "CycleSummary",
    "HistoryPoint",
    "MachineOverview",
    "MachinePage",
    "NotFound",
    "SignalValue",
    "SpcError",
    "SpcPoint",
    "SpcSeries",
    "first_bucket",
    "machine_overview",
    "machine_page",
    "signal_history",
    "spc_capability",
    "spc_series",
]
