"""The errors of analytics' queries.

Exceptions::

    AnalyticsError
    ├── NotFound         no machine or signal of that name (a LookupError too)
    └── SpcError         an SPC chart or capability the data cannot give (a ValueError too):
                         too few points, no spread, too many points for one request

A database without the moldlab schema raises `store.SchemaNotReady`.
"""

from __future__ import annotations


class AnalyticsError(Exception):
    """Base of the errors analytics raises itself (database errors pass through as psycopg's)."""


class NotFound(AnalyticsError, LookupError):
    """No machine or signal of that name."""


class SpcError(AnalyticsError, ValueError):
    """An SPC chart or capability the data cannot give: too few points, no spread, too many."""
