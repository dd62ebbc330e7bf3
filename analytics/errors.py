"""The errors of analytics' queries.

Exceptions::

    AnalyticsError
    ├── NotFound         no machine or signal of that name (a LookupError too)
    └── SchemaNotReady   the database has no moldlab schema yet (run `moldlab db upgrade`)
"""

from __future__ import annotations


class AnalyticsError(Exception):
    """Base of the errors analytics raises itself (database errors pass through as psycopg's)."""


class NotFound(AnalyticsError, LookupError):
    """No machine or signal of that name."""


class SchemaNotReady(AnalyticsError):
    """The database has no moldlab schema yet: `moldlab db upgrade` makes it."""
