"""The embedded store: the Store contract on one SQLite file, schema managed by Alembic.

``SqlStore(path)`` creates the file (and its directory) and migrates it to the newest schema on open.
"""

from pilothouse.store.sql.metering import SqlMeterStore
from pilothouse.store.sql.store import SqlStore

__all__ = ["SqlMeterStore", "SqlStore"]
