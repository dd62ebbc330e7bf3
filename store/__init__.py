"""The database every part shares: schema and migrations, backend detection, shared queries.

ingest writes through it, analytics and the API read through it; only `moldlab db upgrade`
(and the demo) changes the schema.

Exceptions::

    StoreError
    └── SchemaNotReady   the database has no moldlab schema yet (run `moldlab db upgrade`)
"""

from store.backend import Backend, database_backend, storage_backend
from store.errors import SchemaNotReady, StoreError
from store.schema import downgrade, upgrade

__all__ = [
    "Backend",
    "SchemaNotReady",
    "StoreError",
    "database_backend",
    "downgrade",
    "storage_backend",
    "upgrade",
]
