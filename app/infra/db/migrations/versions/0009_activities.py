"""activities and their participants

Revision ID: 0009
Revises: 0008
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

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "activities",
        sa.Column("id", sa.GUID(length=16), nullable=False),
        sa.Column("creator_id", sa.GUID(length=16), nullable=False),
        sa.Column("title", sa.String(length=120), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("starts_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("reward_points", sa.Integer(), nullable=False),
        sa.Column("participant_count", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("ended_at", sa.DateTimeUTC(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTimeUTC(timezone=True), nullable=True),
        sa.Column("rewards_paid_at", sa.DateTimeUTC(timezone=True), nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.CheckConstraint("state IN ('scheduled', 'ended', 'cancelled')", name=op.f("ck_activities_known_state")),
        sa.CheckConstraint("capacity BETWEEN 1 AND 100000", name=op.f("ck_activities_capacity_range")),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_activities_ends_after_start")),
        sa.CheckConstraint(
            "participant_count >= 0 AND participant_count <= capacity", name=op.f("ck_activities_within_capacity")
        ),
        sa.CheckConstraint("reward_points >= 0", name=op.f("ck_activities_reward_not_negative")),
        sa.ForeignKeyConstraint(
            ["creator_id"], ["users.id"], name=op.f("fk_activities_creator_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_activities")),
    )
    with op.batch_alter_table("activities", schema=None) as batch_op:
        batch_op.create_index("ix_activities_creator_starts", ["creator_id", "starts_at"], unique=False)
        batch_op.create_index(
            "ix_activities_rewards_pending",
            ["ends_at"],
            unique=False,
            postgresql_where=sa.text("state = 'ended' AND rewards_paid_at IS NULL"),
            sqlite_where=sa.text("state = 'ended' AND rewards_paid_at IS NULL"),
        )
        batch_op.create_index(
            "ix_activities_scheduled_ends",
            ["ends_at"],
            unique=False,
            postgresql_where=sa.text("state = 'scheduled'"),
            sqlite_where=sa.text("state = 'scheduled'"),
        )
        batch_op.create_index("ix_activities_starts", ["starts_at"], unique=False)

    op.create_table(
        "activity_participants",
        sa.Column("activity_id", sa.GUID(length=16), nullable=False),
        sa.Column("user_id", sa.GUID(length=16), nullable=False),
        sa.Column("joined_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("rewarded_at", sa.DateTimeUTC(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["activity_id"],
            ["activities.id"],
            name=op.f("fk_activity_participants_activity_id_activities"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_activity_participants_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("activity_id", "user_id", name=op.f("pk_activity_participants")),
    )
    with op.batch_alter_table("activity_participants", schema=None) as batch_op:
        batch_op.create_index(
            "ix_activity_participants_unrewarded",
            ["activity_id"],
            unique=False,
            postgresql_where=sa.text("rewarded_at IS NULL"),
            sqlite_where=sa.text("rewarded_at IS NULL"),
        )
        batch_op.create_index("ix_activity_participants_user", ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("activity_participants", schema=None) as batch_op:
        batch_op.drop_index("ix_activity_participants_user")
        batch_op.drop_index(
            "ix_activity_participants_unrewarded",
            postgresql_where=sa.text("rewarded_at IS NULL"),
            sqlite_where=sa.text("rewarded_at IS NULL"),
        )

    op.drop_table("activity_participants")
    with op.batch_alter_table("activities", schema=None) as batch_op:
        batch_op.drop_index("ix_activities_starts")
        batch_op.drop_index(
            "ix_activities_scheduled_ends",
            postgresql_where=sa.text("state = 'scheduled'"),
            sqlite_where=sa.text("state = 'scheduled'"),
        )
        batch_op.drop_index(
            "ix_activities_rewards_pending",
            postgresql_where=sa.text("state = 'ended' AND rewards_paid_at IS NULL"),
            sqlite_where=sa.text("state = 'ended' AND rewards_paid_at IS NULL"),
        )
        batch_op.drop_index("ix_activities_creator_starts")

    op.drop_table("activities")
