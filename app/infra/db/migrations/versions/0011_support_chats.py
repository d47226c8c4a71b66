"""customer-service chats, messages and agents

Revision ID: 0011
Revises: 0010
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

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "support_agents",
        sa.Column("id", sa.GUID(length=16), nullable=False),
        sa.Column("user_id", sa.GUID(length=16), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("max_chats", sa.Integer(), nullable=True),
        sa.Column("status_changed_at", sa.DateTimeUTC(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.CheckConstraint("status IN ('online', 'offline')", name=op.f("ck_support_agents_known_status")),
        sa.CheckConstraint("max_chats IS NULL OR max_chats > 0", name=op.f("ck_support_agents_positive_max_chats")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_support_agents_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_agents")),
        sa.UniqueConstraint("user_id", name=op.f("uq_support_agents_user_id")),
    )
    op.create_table(
        "support_chats",
        sa.Column("id", sa.GUID(length=16), nullable=False),
        sa.Column("user_id", sa.GUID(length=16), nullable=False),
        sa.Column("agent_id", sa.GUID(length=16), nullable=True),
        sa.Column("subject", sa.String(length=120), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("close_reason", sa.String(length=16), nullable=True),
        sa.Column("queued_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("assigned_at", sa.DateTimeUTC(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTimeUTC(timezone=True), nullable=True),
        sa.Column("last_activity_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("awaiting_agent_since", sa.DateTimeUTC(timezone=True), nullable=True),
        sa.Column("awaiting_user_since", sa.DateTimeUTC(timezone=True), nullable=True),
        sa.Column("last_seq", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("user_read_seq", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("agent_read_seq", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status <> 'assigned' OR agent_id IS NOT NULL", name=op.f("ck_support_chats_assigned_has_agent")
        ),
        sa.CheckConstraint(
            "status <> 'closed' OR closed_at IS NOT NULL", name=op.f("ck_support_chats_closed_has_time")
        ),
        sa.CheckConstraint("status IN ('waiting', 'assigned', 'closed')", name=op.f("ck_support_chats_known_status")),
        sa.CheckConstraint(
            "user_read_seq <= last_seq AND agent_read_seq <= last_seq",
            name=op.f("ck_support_chats_read_within_messages"),
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["users.id"], name=op.f("fk_support_chats_agent_id_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_support_chats_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_chats")),
    )
    with op.batch_alter_table("support_chats", schema=None) as batch_op:
        batch_op.create_index("ix_support_chats_agent_status", ["agent_id", "status"], unique=False)
        batch_op.create_index(
            "ix_support_chats_awaiting_agent",
            ["awaiting_agent_since"],
            unique=False,
            postgresql_where=sa.text("status = 'assigned'"),
            sqlite_where=sa.text("status = 'assigned'"),
        )
        batch_op.create_index(
            "ix_support_chats_awaiting_user",
            ["awaiting_user_since"],
            unique=False,
            postgresql_where=sa.text("status = 'assigned'"),
            sqlite_where=sa.text("status = 'assigned'"),
        )
        batch_op.create_index(
            "ix_support_chats_closed_at",
            ["closed_at"],
            unique=False,
            postgresql_where=sa.text("status = 'closed'"),
            sqlite_where=sa.text("status = 'closed'"),
        )
        batch_op.create_index(
            "ix_support_chats_open_activity",
            ["last_activity_at"],
            unique=False,
            postgresql_where=sa.text("status IN ('waiting', 'assigned')"),
            sqlite_where=sa.text("status IN ('waiting', 'assigned')"),
        )
        batch_op.create_index(
            "ix_support_chats_queue",
            ["queued_at", "id"],
            unique=False,
            postgresql_where=sa.text("status = 'waiting'"),
            sqlite_where=sa.text("status = 'waiting'"),
        )
        batch_op.create_index("ix_support_chats_status_created", ["status", "created_at"], unique=False)
        batch_op.create_index("ix_support_chats_user_created", ["user_id", "created_at"], unique=False)
        batch_op.create_index(
            "ux_support_chats_open_user",
            ["user_id"],
            unique=True,
            postgresql_where=sa.text("status IN ('waiting', 'assigned')"),
            sqlite_where=sa.text("status IN ('waiting', 'assigned')"),
        )

    op.create_table(
        "support_messages",
        sa.Column("id", sa.GUID(length=16), nullable=False),
        sa.Column("chat_id", sa.GUID(length=16), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("sender_id", sa.GUID(length=16), nullable=True),
        sa.Column("sender_role", sa.String(length=8), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "sender_role IN ('user', 'agent', 'system')", name=op.f("ck_support_messages_known_sender_role")
        ),
        sa.CheckConstraint("seq > 0", name=op.f("ck_support_messages_positive_seq")),
        sa.ForeignKeyConstraint(
            ["chat_id"],
            ["support_chats.id"],
            name=op.f("fk_support_messages_chat_id_support_chats"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sender_id"], ["users.id"], name=op.f("fk_support_messages_sender_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_messages")),
        sa.UniqueConstraint("chat_id", "seq", name="uq_support_messages_chat_seq"),
    )


def downgrade() -> None:
    op.drop_table("support_messages")
    with op.batch_alter_table("support_chats", schema=None) as batch_op:
        batch_op.drop_index(
            "ux_support_chats_open_user",
            postgresql_where=sa.text("status IN ('waiting', 'assigned')"),
            sqlite_where=sa.text("status IN ('waiting', 'assigned')"),
        )
        batch_op.drop_index("ix_support_chats_user_created")
        batch_op.drop_index("ix_support_chats_status_created")
        batch_op.drop_index(
            "ix_support_chats_queue",
            postgresql_where=sa.text("status = 'waiting'"),
            sqlite_where=sa.text("status = 'waiting'"),
        )
        batch_op.drop_index(
            "ix_support_chats_open_activity",
            postgresql_where=sa.text("status IN ('waiting', 'assigned')"),
            sqlite_where=sa.text("status IN ('waiting', 'assigned')"),
        )
        batch_op.drop_index(
            "ix_support_chats_closed_at",
            postgresql_where=sa.text("status = 'closed'"),
            sqlite_where=sa.text("status = 'closed'"),
        )
        batch_op.drop_index(
            "ix_support_chats_awaiting_user",
            postgresql_where=sa.text("status = 'assigned'"),
            sqlite_where=sa.text("status = 'assigned'"),
        )
        batch_op.drop_index(
            "ix_support_chats_awaiting_agent",
            postgresql_where=sa.text("status = 'assigned'"),
            sqlite_where=sa.text("status = 'assigned'"),
        )
        batch_op.drop_index("ix_support_chats_agent_status")

    op.drop_table("support_chats")
    op.drop_table("support_agents")
