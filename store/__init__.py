"""The database every part shares: schema and migrations, backend detection, shared queries.

ingest writes through it, analytics and the API read through it; only `moldlab db upgrade`
(and the demo) changes the schema. `store.plant` keeps each version of the plant file's
master data and answers "as of time t" (`moldlab plant load|show`).

Exceptions::

    StoreError
    ├── SchemaNotReady   the database has no moldlab schema yet (run `moldlab db upgrade`)
    └── PlantConflict    (store.plant) a plant-file change that would rewrite history
"""

from store.backend import Backend, database_backend, storage_backend
from store.errors import SchemaNotReady, StoreError
from store.schema import downgrade, head_revision, upgrade

__all__ = [
    "Backend",
    "SchemaNotReady",
    "StoreError",
    "database_backend",
    "downgrade",
    "head_revision",
    "storage_backend",
    "upgrade",
]
