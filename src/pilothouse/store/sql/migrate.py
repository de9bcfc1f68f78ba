"""Bring a database to the newest schema by running the packaged Alembic revisions in-process.

The Alembic ``Config`` is built here, pointing at the ``migrations`` directory next to this file, so
opening a store works from any working directory and an installed wheel needs no ``alembic.ini``.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Run every pending revision on ``connection`` and commit."""
    command.upgrade(alembic_config(connection), revision)
    connection.commit()
