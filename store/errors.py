"""The errors of the store.

Exceptions::

    StoreError
    └── SchemaNotReady   the database has no moldlab schema yet (run `moldlab db upgrade`)
"""

from __future__ import annotations


class StoreError(Exception):
    """Base of the errors the store raises itself (database errors pass through as psycopg's)."""


class SchemaNotReady(StoreError):
    """The database has no moldlab schema yet: `moldlab db upgrade` makes it."""
