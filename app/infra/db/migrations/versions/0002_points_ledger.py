"""points ledger

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 17:14:58.778097
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

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "point_holds",
        sa.Column("id", sa.GUID(length=16), nullable=False),
        sa.Column("user_id", sa.GUID(length=16), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reference", sa.String(length=100), nullable=True),
        sa.Column("allocations", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("settled_at", sa.DateTimeUTC(timezone=True), nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_point_holds_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_point_holds")),
    )
    with op.batch_alter_table("point_holds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_point_holds_user_id"), ["user_id"], unique=False)

    op.create_table(
        "point_lots",
        sa.Column("id", sa.GUID(length=16), nullable=False),
        sa.Column("user_id", sa.GUID(length=16), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("remaining", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("expired_at", sa.DateTimeUTC(timezone=True), nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "remaining >= 0 AND remaining <= amount", name=op.f("ck_point_lots_remaining_within_amount")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_point_lots_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_point_lots")),
    )
    with op.batch_alter_table("point_lots", schema=None) as batch_op:
        batch_op.create_index(
            "ix_point_lots_due",
            ["expires_at"],
            unique=False,
            postgresql_where=sa.text("remaining > 0"),
            sqlite_where=sa.text("remaining > 0"),
        )
        batch_op.create_index(
            "ix_point_lots_user_spendable",
            ["user_id", "expires_at"],
            unique=False,
            postgresql_where=sa.text("remaining > 0"),
            sqlite_where=sa.text("remaining > 0"),
        )

    op.create_table(
        "point_transactions",
        sa.Column("id", sa.GUID(length=16), nullable=False),
        sa.Column("user_id", sa.GUID(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("reference", sa.String(length=100), nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("fingerprint", sa.String(length=64), nullable=True),
        sa.Column("hold_id", sa.GUID(length=16), nullable=True),
        sa.Column("lot_id", sa.GUID(length=16), nullable=True),
        sa.Column("created_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_point_transactions_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_point_transactions")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_point_transactions_idempotency_key")),
    )
    with op.batch_alter_table("point_transactions", schema=None) as batch_op:
        batch_op.create_index("ix_point_transactions_user_created", ["user_id", "created_at"], unique=False)
        batch_op.create_index(
            "uq_point_transactions_expired_lot",
            ["lot_id"],
            unique=True,
            postgresql_where=sa.text("kind = 'expire'"),
            sqlite_where=sa.text("kind = 'expire'"),
        )


def downgrade() -> None:
    with op.batch_alter_table("point_transactions", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_point_transactions_expired_lot",
            postgresql_where=sa.text("kind = 'expire'"),
            sqlite_where=sa.text("kind = 'expire'"),
        )
        batch_op.drop_index("ix_point_transactions_user_created")

    op.drop_table("point_transactions")
    with op.batch_alter_table("point_lots", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_point_lots_user_spendable",
            postgresql_where=sa.text("remaining > 0"),
            sqlite_where=sa.text("remaining > 0"),
        )
        batch_op.drop_index(
            "ix_point_lots_due", postgresql_where=sa.text("remaining > 0"), sqlite_where=sa.text("remaining > 0")
        )

    op.drop_table("point_lots")
    with op.batch_alter_table("point_holds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_point_holds_user_id"))

    op.drop_table("point_holds")
