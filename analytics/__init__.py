"""Production performance and maintenance analytics, and the read-only queries behind them."""

from analytics.overview import (
    CycleSummary,
    HistoryPoint,
    MachineOverview,
    SignalValue,
    machine_overview,
    signal_history,
)

__all__ = [
    "CycleSummary",
    "HistoryPoint",
    "MachineOverview",
    "SignalValue",
    "machine_overview",
    "signal_history",
]
