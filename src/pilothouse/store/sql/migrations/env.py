"""Alembic environment for the embedded store, run in-process by ``pilothouse.store.sql.migrate``.

The store passes its own open connection in ``config.attributes["connection"]``, so migrations use the
same SQLite pragmas as the store and nothing depends on an ``alembic.ini`` or the current directory.
Online mode only: the store is always migrated against a live database.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from pilothouse.store.sql.schema import Base

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("pilothouse migrations run through pilothouse.store.sql.migrate.upgrade(connection)")

context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
