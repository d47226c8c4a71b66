"""ORM table of notifications. The schema itself is created only by the Alembic migrations."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from advanced_alchemy.base import UUIDBase
from advanced_alchemy.types import GUID, DateTimeUTC
from sqlalchemy import JSON, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column


class NotificationRecord(UUIDBase):
    """One notification of a user; ``read_at`` is set once they read it."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_user_created", "user_id", "created_at"),
        # the unread count and the unread filter
        Index(
            "ix_notifications_user_unread",
            "user_id",
            postgresql_where=text("read_at IS NULL"),
            sqlite_where=text("read_at IS NULL"),
        ),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)  # advanced-alchemy's JsonB does not work with SQLAlchemy 2.1
    created_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))
    read_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
