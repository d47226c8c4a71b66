"""points: the expire entry of a lot is kept on the lot

Revision ID: 0008
Revises: 0007
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

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("point_lots", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expired_amount", sa.Integer(), nullable=True))

    # An expired lot's ``expire`` entry moves from a row of point_transactions onto the lot
    # (expired_amount, expired_at), keeping its amount and time. Only rows whose lot exists
    # move: any other stays a ledger row, and the ledger read still shows it.
    op.execute(
        "UPDATE point_lots SET "
        "expired_amount = (SELECT -t.amount FROM point_transactions AS t "
        "WHERE t.kind = 'expire' AND t.lot_id = point_lots.id), "
        "expired_at = (SELECT t.created_at FROM point_transactions AS t "
        "WHERE t.kind = 'expire' AND t.lot_id = point_lots.id) "
        "WHERE id IN (SELECT lot_id FROM point_transactions WHERE kind = 'expire')"
    )
    op.execute("DELETE FROM point_transactions WHERE kind = 'expire' AND lot_id IN (SELECT id FROM point_lots)")

    with op.batch_alter_table("point_lots", schema=None) as batch_op:
        batch_op.create_index(
            "ix_point_lots_user_expired",
            ["user_id", "expired_at", "id"],
            unique=False,
            postgresql_where=sa.text("expired_amount IS NOT NULL"),
            sqlite_where=sa.text("expired_amount IS NOT NULL"),
        )

    with op.batch_alter_table("point_transactions", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_point_transactions_expired_lot",
            postgresql_where=sa.text("kind = 'expire'"),
            sqlite_where=sa.text("kind = 'expire'"),
        )


def downgrade() -> None:
    # Each entry kept on a lot becomes a ledger row again, with the lot's id as its own.
    op.execute(
        "INSERT INTO point_transactions (id, user_id, kind, amount, reason, lot_id, created_at) "
        "SELECT id, user_id, 'expire', -expired_amount, 'expired', id, expired_at FROM point_lots "
        "WHERE expired_amount IS NOT NULL"
    )

    with op.batch_alter_table("point_transactions", schema=None) as batch_op:
        batch_op.create_index(
            "uq_point_transactions_expired_lot",
            ["lot_id"],
            unique=True,
            postgresql_where=sa.text("kind = 'expire'"),
            sqlite_where=sa.text("kind = 'expire'"),
        )

    with op.batch_alter_table("point_lots", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_point_lots_user_expired",
            postgresql_where=sa.text("expired_amount IS NOT NULL"),
            sqlite_where=sa.text("expired_amount IS NOT NULL"),
        )
        batch_op.drop_column("expired_amount")
