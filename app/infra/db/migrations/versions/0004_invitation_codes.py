"""invitation codes

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 17:36:22.921512
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

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "invitation_codes",
        sa.Column("id", sa.GUID(length=16), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("inviter_id", sa.GUID(length=16), nullable=False),
        sa.Column("max_uses", sa.Integer(), nullable=False),
        sa.Column("use_count", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTimeUTC(timezone=True), nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "use_count >= 0 AND use_count <= max_uses", name=op.f("ck_invitation_codes_uses_within_max")
        ),
        sa.ForeignKeyConstraint(
            ["inviter_id"], ["users.id"], name=op.f("fk_invitation_codes_inviter_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invitation_codes")),
        sa.UniqueConstraint("code", name=op.f("uq_invitation_codes_code")),
    )
    with op.batch_alter_table("invitation_codes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_invitation_codes_due",
            ["expires_at"],
            unique=False,
            postgresql_where=sa.text("status = 'active'"),
            sqlite_where=sa.text("status = 'active'"),
        )
        batch_op.create_index("ix_invitation_codes_inviter_created", ["inviter_id", "created_at"], unique=False)

    op.create_table(
        "invitation_redemptions",
        sa.Column("id", sa.GUID(length=16), nullable=False),
        sa.Column("code_id", sa.GUID(length=16), nullable=False),
        sa.Column("invitee_id", sa.GUID(length=16), nullable=False),
        sa.Column("created_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["code_id"],
            ["invitation_codes.id"],
            name=op.f("fk_invitation_redemptions_code_id_invitation_codes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["invitee_id"], ["users.id"], name=op.f("fk_invitation_redemptions_invitee_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invitation_redemptions")),
        sa.UniqueConstraint("invitee_id", name=op.f("uq_invitation_redemptions_invitee_id")),
    )
    with op.batch_alter_table("invitation_redemptions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_invitation_redemptions_code_id"), ["code_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("invitation_redemptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_invitation_redemptions_code_id"))

    op.drop_table("invitation_redemptions")
    with op.batch_alter_table("invitation_codes", schema=None) as batch_op:
        batch_op.drop_index("ix_invitation_codes_inviter_created")
        batch_op.drop_index(
            "ix_invitation_codes_due",
            postgresql_where=sa.text("status = 'active'"),
            sqlite_where=sa.text("status = 'active'"),
        )

    op.drop_table("invitation_codes")
