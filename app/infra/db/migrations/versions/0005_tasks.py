"""tasks

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 18:12:54.808014
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

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", sa.GUID(length=16), nullable=False),
        sa.Column("poster_id", sa.GUID(length=16), nullable=False),
        sa.Column("taker_id", sa.GUID(length=16), nullable=True),
        sa.Column("title", sa.String(length=120), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("reward_points", sa.Integer(), nullable=False),
        sa.Column("held_points", sa.Integer(), nullable=False),
        sa.Column("coupon_id", sa.GUID(length=16), nullable=True),
        sa.Column("hold_id", sa.GUID(length=16), nullable=False),
        sa.Column("deadline", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("cancel_reason", sa.String(length=16), nullable=True),
        sa.Column("taken_at", sa.DateTimeUTC(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTimeUTC(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTimeUTC(timezone=True), nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('open', 'taken', 'completed', 'cancelled')", name=op.f("ck_tasks_known_status")),
        sa.CheckConstraint(
            "status NOT IN ('taken', 'completed') OR taker_id IS NOT NULL", name=op.f("ck_tasks_taken_has_taker")
        ),
        sa.CheckConstraint("rating IS NULL OR rating BETWEEN 1 AND 5", name=op.f("ck_tasks_rating_range")),
        sa.CheckConstraint(
            "reward_points > 0 AND held_points > 0 AND held_points <= reward_points", name=op.f("ck_tasks_points")
        ),
        sa.CheckConstraint("taker_id IS NULL OR taker_id <> poster_id", name=op.f("ck_tasks_not_own_task")),
        sa.ForeignKeyConstraint(["coupon_id"], ["coupons.id"], name=op.f("fk_tasks_coupon_id_coupons")),
        sa.ForeignKeyConstraint(["hold_id"], ["point_holds.id"], name=op.f("fk_tasks_hold_id_point_holds")),
        sa.ForeignKeyConstraint(["poster_id"], ["users.id"], name=op.f("fk_tasks_poster_id_users"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["taker_id"], ["users.id"], name=op.f("fk_tasks_taker_id_users"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
    )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_index("ix_tasks_category_created", ["category", "created_at"], unique=False)
        batch_op.create_index(
            "ix_tasks_open_deadline",
            ["deadline"],
            unique=False,
            postgresql_where=sa.text("status = 'open'"),
            sqlite_where=sa.text("status = 'open'"),
        )
        batch_op.create_index("ix_tasks_poster_created", ["poster_id", "created_at"], unique=False)
        batch_op.create_index("ix_tasks_status_created", ["status", "created_at"], unique=False)
        batch_op.create_index("ix_tasks_taker_created", ["taker_id", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_tasks_taker_created")
        batch_op.drop_index("ix_tasks_status_created")
        batch_op.drop_index("ix_tasks_poster_created")
        batch_op.drop_index(
            "ix_tasks_open_deadline",
            postgresql_where=sa.text("status = 'open'"),
            sqlite_where=sa.text("status = 'open'"),
        )
        batch_op.drop_index("ix_tasks_category_created")

    op.drop_table("tasks")
