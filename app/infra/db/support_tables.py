"""ORM tables of customer service. The schema itself is created only by the Alembic migrations."""

from __future__ import annotations

import datetime
import uuid

from advanced_alchemy.base import UUIDAuditBase, UUIDBase
from advanced_alchemy.types import GUID, DateTimeUTC
from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

_OPEN = text("status IN ('waiting', 'assigned')")
_ASSIGNED = text("status = 'assigned'")


class SupportChatRecord(UUIDAuditBase):
    """A user's chat with customer service; ``last_seq`` numbers its messages, the ``*_read_seq`` are the
    participants' read markers, the ``awaiting_*_since`` say who owes the other an answer since when."""

    __tablename__ = "support_chats"
    __table_args__ = (
        CheckConstraint("status IN ('waiting', 'assigned', 'closed')", name="known_status"),
        CheckConstraint("status <> 'assigned' OR agent_id IS NOT NULL", name="assigned_has_agent"),
        CheckConstraint("status <> 'closed' OR closed_at IS NOT NULL", name="closed_has_time"),
        CheckConstraint("user_read_seq <= last_seq AND agent_read_seq <= last_seq", name="read_within_messages"),
        # one open chat per user, also under concurrent opens
        Index(
            "ux_support_chats_open_user",
            "user_id",
            unique=True,
            postgresql_where=_OPEN,
            sqlite_where=_OPEN,
        ),
        # the waiting queue, in order (the assignment job reads its head)
        Index(
            "ix_support_chats_queue",
            "queued_at",
            "id",
            postgresql_where=text("status = 'waiting'"),
            sqlite_where=text("status = 'waiting'"),
        ),
        # agents' loads and lists
        Index("ix_support_chats_agent_status", "agent_id", "status"),
        Index("ix_support_chats_user_created", "user_id", "created_at"),
        Index("ix_support_chats_status_created", "status", "created_at"),
        # the timeout jobs, also when nothing is due
        Index(
            "ix_support_chats_awaiting_agent",
            "awaiting_agent_since",
            postgresql_where=_ASSIGNED,
            sqlite_where=_ASSIGNED,
        ),
        Index(
            "ix_support_chats_awaiting_user",
            "awaiting_user_since",
            postgresql_where=_ASSIGNED,
            sqlite_where=_ASSIGNED,
        ),
        # the daily cleanup
        Index("ix_support_chats_open_activity", "last_activity_at", postgresql_where=_OPEN, sqlite_where=_OPEN),
        Index(
            "ix_support_chats_closed_at",
            "closed_at",
            postgresql_where=text("status = 'closed'"),
            sqlite_where=text("status = 'closed'"),
        ),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("users.id", ondelete="CASCADE"))
    agent_id: Mapped[uuid.UUID | None] = mapped_column(GUID, ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    subject: Mapped[str | None] = mapped_column(String(120), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    close_reason: Mapped[str | None] = mapped_column(String(16), nullable=True)
    queued_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))
    assigned_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    closed_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    last_activity_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))
    # since when the user waits for the agent's answer (set on assignment and by the user's first unanswered
    # message, cleared by the agent's message), and the other way round
    awaiting_agent_since: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    awaiting_user_since: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    last_seq: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    user_read_seq: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    agent_read_seq: Mapped[int] = mapped_column(Integer, server_default=text("0"))


class SupportMessageRecord(UUIDBase):
    """One message of a chat; ``seq`` is its place in the chat (1, 2, ...). System messages have no sender."""

    __tablename__ = "support_messages"
    __table_args__ = (
        # the history, newest first, and its cursor
        UniqueConstraint("chat_id", "seq", name="uq_support_messages_chat_seq"),
        CheckConstraint("sender_role IN ('user', 'agent', 'system')", name="known_sender_role"),
        CheckConstraint("seq > 0", name="positive_seq"),
    )

    chat_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("support_chats.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    sender_id: Mapped[uuid.UUID | None] = mapped_column(
        GUID, ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    sender_role: Mapped[str] = mapped_column(String(8))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))


class SupportAgentRecord(UUIDBase):
    """An agent's availability and own maximum of concurrent chats (``NULL``: the settings' default).

    Created the first time the agent sets a status or an admin sets their maximum. The agent's load is
    not stored: it is counted from the chats under the agents' row locks, so it cannot drift.
    """

    __tablename__ = "support_agents"
    __table_args__ = (
        CheckConstraint("status IN ('online', 'offline')", name="known_status"),
        CheckConstraint("max_chats IS NULL OR max_chats > 0", name="positive_max_chats"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    status: Mapped[str] = mapped_column(String(8))
    max_chats: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status_changed_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    updated_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))
