"""task experts

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 18:37:57.328920
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

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "experts",
        sa.Column("id", sa.GUID(length=16), nullable=False),
        sa.Column("user_id", sa.GUID(length=16), nullable=False),
        sa.Column("skills", sa.JSON(), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("bio", sa.Text(), server_default=sa.text("('')"), nullable=False),
        sa.Column("auto_bio", sa.Text(), server_default=sa.text("('')"), nullable=False),
        sa.Column("completed_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("average_rating", sa.Float(), nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.CheckConstraint(
            "average_rating IS NULL OR average_rating BETWEEN 1 AND 5", name=op.f("ck_experts_rating_range")
        ),
        sa.CheckConstraint("completed_count >= 0", name=op.f("ck_experts_completed_count")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_experts_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experts")),
        sa.UniqueConstraint("user_id", name=op.f("uq_experts_user_id")),
    )
    with op.batch_alter_table("experts", schema=None) as batch_op:
        batch_op.create_index("ix_experts_completed", ["completed_count", "average_rating"], unique=False)
        batch_op.create_index("ix_experts_rating", ["average_rating", "completed_count"], unique=False)

    op.create_table(
        "expert_categories",
        sa.Column("id", sa.GUID(length=16), nullable=False),
        sa.Column("expert_id", sa.GUID(length=16), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["expert_id"], ["experts.id"], name=op.f("fk_expert_categories_expert_id_experts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_expert_categories")),
        sa.UniqueConstraint("category", "expert_id", name="uq_expert_categories_category_expert"),
    )
    with op.batch_alter_table("expert_categories", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_expert_categories_expert_id"), ["expert_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("expert_categories", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_expert_categories_expert_id"))

    op.drop_table("expert_categories")
    with op.batch_alter_table("experts", schema=None) as batch_op:
        batch_op.drop_index("ix_experts_rating")
        batch_op.drop_index("ix_experts_completed")

    op.drop_table("experts")
