"""ORM tables of tasks. The schema itself is created only by the Alembic migrations."""

from __future__ import annotations

import datetime
import uuid

from advanced_alchemy.base import UUIDAuditBase
from advanced_alchemy.types import GUID, DateTimeUTC
from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column


class TaskRecord(UUIDAuditBase):
    """A posted task; ``hold_id`` is the points hold of its reward, ``held_points`` its amount."""

    __tablename__ = "tasks"
    __table_args__ = (
        CheckConstraint("reward_points > 0 AND held_points > 0 AND held_points <= reward_points", name="points"),
        CheckConstraint("status IN ('open', 'taken', 'completed', 'cancelled')", name="known_status"),
        # the state machine's last line of defence: a taken or completed task has its taker
        CheckConstraint("status NOT IN ('taken', 'completed') OR taker_id IS NOT NULL", name="taken_has_taker"),
        CheckConstraint("rating IS NULL OR rating BETWEEN 1 AND 5", name="rating_range"),
        CheckConstraint("taker_id IS NULL OR taker_id <> poster_id", name="not_own_task"),
        # the expiry job, also when nothing is due
        Index(
            "ix_tasks_open_deadline",
            "deadline",
            postgresql_where=text("status = 'open'"),
            sqlite_where=text("status = 'open'"),
        ),
        Index("ix_tasks_status_created", "status", "created_at"),
        Index("ix_tasks_category_created", "category", "created_at"),
        Index("ix_tasks_poster_created", "poster_id", "created_at"),
        Index("ix_tasks_taker_created", "taker_id", "created_at"),
    )

    poster_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("users.id", ondelete="CASCADE"))
    taker_id: Mapped[uuid.UUID | None] = mapped_column(GUID, ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    title: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(40))
    reward_points: Mapped[int] = mapped_column(Integer)
    held_points: Mapped[int] = mapped_column(Integer)
    coupon_id: Mapped[uuid.UUID | None] = mapped_column(GUID, ForeignKey("coupons.id"), nullable=True)
    hold_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("point_holds.id"))
    deadline: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))
    status: Mapped[str] = mapped_column(String(16))
    rating: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cancel_reason: Mapped[str | None] = mapped_column(String(16), nullable=True)
    taken_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    completed_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    cancelled_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    # the taker's consent to the poster cancelling the taken task
    cancel_consented_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
