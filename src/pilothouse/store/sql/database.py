"""One SQLite database file as the stores use it: migrated on open, one writer at a time, short sessions.

The object store and the metering store share the file and these rules: writes go through one lock
and begin ``IMMEDIATE`` (see ``engine``), reads are snapshot transactions, and opening the file runs
the Alembic migrations first — so a store never sees an old schema.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from pilothouse.store.sql.engine import BEGIN_MODE, create_sqlite_engine
from pilothouse.store.sql.migrate import upgrade


class SqliteDatabase:
    def __init__(self, path: Path, **engine_options: Any) -> None:
        self.path = Path(path)
        self.engine = create_sqlite_engine(self.path, **engine_options)
        self._writer = self.engine.execution_options(**{BEGIN_MODE: "IMMEDIATE"})
        self._lock = threading.Lock()
        try:
            with self._lock, self._writer.connect() as connection:
                upgrade(connection)
        except BaseException:
            self.engine.dispose()
            raise

    @contextmanager
    def read(self) -> Iterator[Session]:
        """One snapshot: every query inside sees the same committed state."""
        with Session(self.engine) as session, session.begin():
            yield session

    @contextmanager
    def write(self, *, expire_on_commit: bool = True) -> Iterator[Session]:
        """One short write transaction, serialised with every other writer of this process."""
        with self._lock, Session(self._writer, expire_on_commit=expire_on_commit) as session, session.begin():
            yield session

    def close(self) -> None:
        self.engine.dispose()
