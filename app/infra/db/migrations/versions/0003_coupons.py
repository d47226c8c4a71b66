"""coupons

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 17:26:39.410252
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

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "coupon_templates",
        sa.Column("id", sa.GUID(length=16), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.Column("min_reward", sa.Integer(), nullable=True),
        sa.Column("total_quantity", sa.Integer(), nullable=False),
        sa.Column("per_user_limit", sa.Integer(), nullable=False),
        sa.Column("claimed_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("valid_from", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("valid_until", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("coupon_expires_at", sa.DateTimeUTC(timezone=True), nullable=True),
        sa.Column("coupon_valid_days", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), server_default=sa.text("'active'"), nullable=False),
        sa.Column("closed_at", sa.DateTimeUTC(timezone=True), nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(coupon_expires_at IS NULL) <> (coupon_valid_days IS NULL)", name=op.f("ck_coupon_templates_one_validity")
        ),
        sa.CheckConstraint(
            "claimed_count >= 0 AND claimed_count <= total_quantity",
            name=op.f("ck_coupon_templates_claimed_within_total"),
        ),
        sa.CheckConstraint("valid_until > valid_from", name=op.f("ck_coupon_templates_window_order")),
        sa.CheckConstraint(
            "value > 0 AND total_quantity > 0 AND per_user_limit > 0", name=op.f("ck_coupon_templates_positive_amounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coupon_templates")),
    )
    with op.batch_alter_table("coupon_templates", schema=None) as batch_op:
        batch_op.create_index("ix_coupon_templates_created", ["created_at"], unique=False)
        batch_op.create_index(
            "ix_coupon_templates_due",
            ["valid_until"],
            unique=False,
            postgresql_where=sa.text("status = 'active'"),
            sqlite_where=sa.text("status = 'active'"),
        )

    op.create_table(
        "coupons",
        sa.Column("id", sa.GUID(length=16), nullable=False),
        sa.Column("template_id", sa.GUID(length=16), nullable=False),
        sa.Column("owner_id", sa.GUID(length=16), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.Column("min_reward", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("claimed_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTimeUTC(timezone=True), nullable=True),
        sa.Column("task_id", sa.GUID(length=16), nullable=True),
        sa.Column("expired_at", sa.DateTimeUTC(timezone=True), nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name=op.f("fk_coupons_owner_id_users"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["template_id"], ["coupon_templates.id"], name=op.f("fk_coupons_template_id_coupon_templates")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coupons")),
    )
    with op.batch_alter_table("coupons", schema=None) as batch_op:
        batch_op.create_index(
            "ix_coupons_due",
            ["expires_at"],
            unique=False,
            postgresql_where=sa.text("status = 'claimed'"),
            sqlite_where=sa.text("status = 'claimed'"),
        )
        batch_op.create_index("ix_coupons_owner_claimed", ["owner_id", "claimed_at"], unique=False)
        batch_op.create_index("ix_coupons_template_owner", ["template_id", "owner_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("coupons", schema=None) as batch_op:
        batch_op.drop_index("ix_coupons_template_owner")
        batch_op.drop_index("ix_coupons_owner_claimed")
        batch_op.drop_index(
            "ix_coupons_due", postgresql_where=sa.text("status = 'claimed'"), sqlite_where=sa.text("status = 'claimed'")
        )

    op.drop_table("coupons")
    with op.batch_alter_table("coupon_templates", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_coupon_templates_due",
            postgresql_where=sa.text("status = 'active'"),
            sqlite_where=sa.text("status = 'active'"),
        )
        batch_op.drop_index("ix_coupon_templates_created")

    op.drop_table("coupon_templates")
