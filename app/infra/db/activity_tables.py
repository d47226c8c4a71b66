"""ORM tables of activities. The schema itself is created only by the Alembic migrations."""

from __future__ import annotations

import datetime
import uuid

from advanced_alchemy.base import DefaultBase, UUIDAuditBase
from advanced_alchemy.types import GUID, DateTimeUTC
from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column


class ActivityRecord(UUIDAuditBase):
    """An activity; ``state`` stores only ``scheduled``, ``ended`` or ``cancelled`` (``active`` is derived).

    ``participant_count`` is the one counter concurrent joins contend for: a join increments it
    with a guarded UPDATE, and the checks below are the last line of defence for capacity.
    """

    __tablename__ = "activities"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        CheckConstraint("capacity BETWEEN 1 AND 100000", name="capacity_range"),
        CheckConstraint("participant_count >= 0 AND participant_count <= capacity", name="within_capacity"),
        CheckConstraint("reward_points >= 0", name="reward_not_negative"),
        CheckConstraint("state IN ('scheduled', 'ended', 'cancelled')", name="known_state"),
        # the end job, also when nothing is due, and the shown-state filters (time ranges of scheduled ones)
        Index(
            "ix_activities_scheduled_ends",
            "ends_at",
            postgresql_where=text("state = 'scheduled'"),
            sqlite_where=text("state = 'scheduled'"),
        ),
        # ended activities whose participants are still being paid: a handful at any time
        Index(
            "ix_activities_rewards_pending",
            "ends_at",
            postgresql_where=text("state = 'ended' AND rewards_paid_at IS NULL"),
            sqlite_where=text("state = 'ended' AND rewards_paid_at IS NULL"),
        ),
        Index("ix_activities_starts", "starts_at"),
        Index("ix_activities_creator_starts", "creator_id", "starts_at"),
    )

    creator_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text)
    starts_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))
    ends_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))
    capacity: Mapped[int] = mapped_column(Integer)
    reward_points: Mapped[int] = mapped_column(Integer)
    participant_count: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    ended_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    cancelled_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    # set by the end job once every participant has been credited
    rewards_paid_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)


class ActivityParticipantRecord(DefaultBase):
    """One user in one activity (the primary key refuses a second join); ``rewarded_at`` once credited."""

    __tablename__ = "activity_participants"
    __table_args__ = (
        # statistics count per user; deleting a user finds their rows
        Index("ix_activity_participants_user", "user_id"),
        # the end job pays an activity's participants in batches: only the unpaid ones are indexed
        Index(
            "ix_activity_participants_unrewarded",
            "activity_id",
            postgresql_where=text("rewarded_at IS NULL"),
            sqlite_where=text("rewarded_at IS NULL"),
        ),
    )

    activity_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("activities.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    joined_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))
    rewarded_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
