"""Initial schema: objects, the watch log, spec revisions, events and the resourceVersion counter.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "objects",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(63), nullable=False),
        sa.Column("namespace", sa.String(63), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("uid", sa.String(36), nullable=False, unique=True),
        sa.Column("resource_version", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("creation_timestamp", sa.DateTime(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("status", sa.JSON(), nullable=False),
        sa.UniqueConstraint("kind", "namespace", "name", name="uq_objects_kind_namespace_name"),
    )
    op.create_table(
        "changes",
        sa.Column("resource_version", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(63), nullable=False),
        sa.Column("namespace", sa.String(63), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("type", sa.String(8), nullable=False),
        sa.Column("object", sa.JSON(), nullable=False),
    )
    op.create_index("ix_changes_kind_rv", "changes", ["kind", "resource_version"])
    op.create_table(
        "spec_revisions",
        sa.Column("uid", sa.String(36), primary_key=True),
        sa.Column("generation", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["uid"], ["objects.uid"], name="fk_spec_revisions_uid", ondelete="CASCADE"),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(63), nullable=False),
        sa.Column("namespace", sa.String(63), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("uid", sa.String(36), nullable=True),
        sa.Column("type", sa.String(8), nullable=False),
        sa.Column("reason", sa.String(128), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_timestamp", sa.DateTime(), nullable=False),
        sa.Column("last_timestamp", sa.DateTime(), nullable=False),
        sa.Column("source", sa.String(63), nullable=False),
    )
    op.create_index("ix_events_object", "events", ["kind", "namespace", "name"])
    op.create_index("ix_events_last_timestamp", "events", ["last_timestamp"])
    counters = op.create_table(
        "counters",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.Integer(), nullable=False),
    )
    op.bulk_insert(
        counters, [{"name": "resource_version", "value": 0}, {"name": "pruned_through", "value": 0}]
    )


def downgrade() -> None:
    op.drop_table("counters")
    op.drop_index("ix_events_last_timestamp", table_name="events")
    op.drop_index("ix_events_object", table_name="events")
    op.drop_table("events")
    op.drop_table("spec_revisions")
    op.drop_index("ix_changes_kind_rv", table_name="changes")
    op.drop_table("changes")
    op.drop_table("objects")
