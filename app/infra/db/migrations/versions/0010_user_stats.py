"""user statistics

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 19:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import GUID, DateTimeUTC
from alembic import op

# Migrations run inside Alembic's transaction: on PostgreSQL a failing one leaves
# no half-applied schema behind. (No autocommit_block, except for CREATE INDEX
# CONCURRENTLY, which cannot run in a transaction.)
sa.GUID = GUID  # type: ignore[attr-defined]
sa.DateTimeUTC = DateTimeUTC  # type: ignore[attr-defined]

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_stats",
        sa.Column("user_id", sa.GUID(length=16), nullable=False),
        sa.Column("tasks_posted", sa.Integer(), nullable=False),
        sa.Column("tasks_taken", sa.Integer(), nullable=False),
        sa.Column("tasks_completed", sa.Integer(), nullable=False),
        sa.Column("completion_rate", sa.Float(), nullable=True),
        sa.Column("ratings_count", sa.Integer(), nullable=False),
        sa.Column("average_rating", sa.Float(), nullable=True),
        sa.Column("activities_joined", sa.Integer(), nullable=False),
        sa.Column("points_balance", sa.BigInteger(), nullable=False),
        sa.Column("computed_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_stats_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_stats")),
    )


def downgrade() -> None:
    op.drop_table("user_stats")
