"""The file on disk: reopening keeps everything, SQLite is set up as intended, migrations match the models."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from pilothouse.api.event import ObjectReference
from pilothouse.store.protocol import Store
from pilothouse.store.sql import SqlStore
from pilothouse.store.sql.migrate import alembic_config
from pilothouse.store.sql.schema import Base

from .helpers import KIND, endpoint


def test_reopening_keeps_objects_history_events_log_and_version(
    open_store: Callable[..., SqlStore],
) -> None:
    store = open_store()
    created = store.create(endpoint(labels={"a": "b"}))
    created.spec.autoscaling.maxReplicas = 3
    updated = store.update(created)
    store.record_event(ObjectReference(kind=KIND, namespace="default", name="iris"), "Normal", "R", "m")
    store.close()

    reopened = open_store()
    assert reopened.get(KIND, "default", "iris") == updated
    assert [r.generation for r in reopened.history(updated.metadata.uid or "")] == [1, 2]
    assert [e.reason for e in reopened.list_events()] == ["R"]
    assert [e.resource_version for e in reopened.watch(since=1, timeout=0.05)] == [2]
    assert reopened.current_version() == 2
    assert reopened.create(endpoint("wine")).metadata.resourceVersion == "3"


def test_store_creates_parent_directories_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "store.db"
    with SqlStore(path) as store:
        store.create(endpoint())
    connection = sqlite3.connect(path)
    try:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        connection.close()


def test_foreign_keys_are_enforced(store: SqlStore) -> None:
    created = store.create(endpoint())
    store.delete(KIND, "default", "iris")
    # The cascade only happens with foreign keys on.
    assert store.history(created.metadata.uid or "") == []


def test_migrations_match_the_models(tmp_path: Path) -> None:
    with SqlStore(tmp_path / "store.db"):
        pass
    engine = create_engine(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
            head = ScriptDirectory.from_config(alembic_config()).get_current_head()
            assert context.get_current_revision() == head
    finally:
        engine.dispose()


def test_compare_metadata_would_notice_a_drift(tmp_path: Path) -> None:
    # The drift check above must be able to fail: an empty database differs from the models.
    engine = create_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
            assert {d[1].name for d in diff if d[0] == "add_table"} == {
                "objects",
                "changes",
                "spec_revisions",
                "events",
                "counters",
                "meter_intervals",
                "meter_samples",
                "meter_tallies",
            }
    finally:
        engine.dispose()


def test_downgrade_and_upgrade_again(tmp_path: Path) -> None:
    with SqlStore(tmp_path / "store.db") as store:
        store.create(endpoint())
    engine = create_engine(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        with engine.connect() as connection:
            command.downgrade(alembic_config(connection), "base")
            connection.commit()
            assert MigrationContext.configure(connection).get_current_revision() is None
    finally:
        engine.dispose()
    with SqlStore(tmp_path / "store.db") as store:
        assert store.current_version() == 0
        assert store.list(KIND).items == []


def test_sql_store_implements_the_store_protocol(store: SqlStore) -> None:
    as_protocol: Store = store  # checked by mypy
    assert as_protocol.current_version() == 0
