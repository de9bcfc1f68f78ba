"""Fixtures for the store tests: a fresh SQLite store per test, always closed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pilothouse.store.sql import SqlStore


@pytest.fixture
def open_store(tmp_path: Path) -> Iterator[Callable[..., SqlStore]]:
    """Open (and reopen) stores on one file; every store opened is closed after the test."""
    opened: list[SqlStore] = []

    def _open(**kwargs: Any) -> SqlStore:
        store = SqlStore(tmp_path / "data" / "store.db", **kwargs)
        opened.append(store)
        return store

    yield _open
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: Callable[..., SqlStore]) -> SqlStore:
    return open_store()
