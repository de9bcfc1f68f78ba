"""Metering: intervals (replicas, job workers, pool coverage), their usage samples and request tallies.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "meter_intervals",
        sa.Column("id", sa.String(160), primary_key=True),
        sa.Column("kind", sa.String(63), nullable=False),
        sa.Column("namespace", sa.String(63), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("owner_uid", sa.String(36), nullable=False),
        sa.Column("pool", sa.String(63), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=True),
        sa.Column("requested", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_meter_intervals_ended_at", "meter_intervals", ["ended_at"])
    op.create_index("ix_meter_intervals_started_at", "meter_intervals", ["started_at"])
    for table, extra, fk in (
        ("meter_samples", sa.Column("usage", sa.JSON(), nullable=False), "fk_meter_samples_interval"),
        ("meter_tallies", sa.Column("count", sa.Integer(), nullable=False), "fk_meter_tallies_interval"),
    ):
        op.create_table(
            table,
            sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
            sa.Column("interval_id", sa.String(160), nullable=False),
            sa.Column("at", sa.DateTime(), nullable=False),
            extra,
            sa.ForeignKeyConstraint(["interval_id"], ["meter_intervals.id"], name=fk, ondelete="CASCADE"),
        )
        op.create_index(f"ix_{table}_interval_at", table, ["interval_id", "at"])


def downgrade() -> None:
    for table in ("meter_tallies", "meter_samples"):
        op.drop_index(f"ix_{table}_interval_at", table_name=table)
        op.drop_table(table)
    op.drop_index("ix_meter_intervals_started_at", table_name="meter_intervals")
    op.drop_index("ix_meter_intervals_ended_at", table_name="meter_intervals")
    op.drop_table("meter_intervals")
