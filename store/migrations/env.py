"""Alembic environment: runs the migrations on the connection `store.schema` hands over.

That connection is inside one transaction, so an upgrade is all or nothing.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

connection: Connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None)
with context.begin_transaction():
    context.run_migrations()
