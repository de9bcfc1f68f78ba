"""The SQLite engine and the connection settings every store connection needs.

WAL lets readers (lists, watches) run while one writer commits; ``busy_timeout`` makes a writer from
another process wait instead of failing; foreign keys are off by default in SQLite and must be switched
on per connection. The driver's own transaction handling is turned off and ``BEGIN`` is emitted here, so
a write transaction can start as ``BEGIN IMMEDIATE``: it takes the write lock up front, instead of
reading under a snapshot and then failing to upgrade it when another writer got there first.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection
from sqlalchemy.pool import ConnectionPoolEntry

BUSY_TIMEOUT_MS = 30_000
BEGIN_MODE = "sqlite_begin"
"""Execution option naming how a transaction on this connection begins: DEFERRED (default) or IMMEDIATE."""

BeginMode = Literal["DEFERRED", "IMMEDIATE"]


def _on_connect(dbapi_connection: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
    dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, see _on_begin
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes; WAL-safe
    finally:
        cursor.close()


def _on_begin(conn: Connection) -> None:
    mode: Any = conn.get_execution_options().get(BEGIN_MODE, "DEFERRED")
    if mode not in ("DEFERRED", "IMMEDIATE"):
        raise ValueError(f"unknown transaction begin mode {mode!r}")
    conn.exec_driver_sql(f"BEGIN {mode}")


def create_sqlite_engine(path: Path, pool_size: int = 8, max_overflow: int = 32) -> Engine:
    """An engine for one SQLite file (created with its parent directories on first connect)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        f"sqlite+pysqlite:///{path}",
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=False,
    )
    event.listen(engine, "connect", _on_connect)
    event.listen(engine, "begin", _on_begin)
    return engine
