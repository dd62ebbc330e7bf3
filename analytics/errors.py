"""The errors of analytics' queries.

Exceptions::

    AnalyticsError
    └── NotFound         no machine or signal of that name (a LookupError too)

A database without the moldlab schema raises `store.SchemaNotReady`.
"""

from __future__ import annotations


class AnalyticsError(Exception):
    """Base of the errors analytics raises itself (database errors pass through as psycopg's)."""


class NotFound(AnalyticsError, LookupError):
    """No machine or signal of that name."""
