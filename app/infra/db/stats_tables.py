"""ORM table of user statistics. The schema itself is created only by the Alembic migrations."""

from __future__ import annotations

import datetime
import uuid

from advanced_alchemy.base import DefaultBase
from advanced_alchemy.types import GUID, DateTimeUTC
from sqlalchemy import BigInteger, Float, ForeignKey, Integer
from sqlalchemy.orm import Mapped, mapped_column


class UserStatsRecord(DefaultBase):
    """One user's figures as of ``computed_at``; rewritten for every user by one upsert statement."""

    __tablename__ = "user_stats"

    user_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    tasks_posted: Mapped[int] = mapped_column(Integer)
    tasks_taken: Mapped[int] = mapped_column(Integer)
    tasks_completed: Mapped[int] = mapped_column(Integer)
    completion_rate: Mapped[float | None] = mapped_column(Float, nullable=True)  # completed / taken
    ratings_count: Mapped[int] = mapped_column(Integer)
    average_rating: Mapped[float | None] = mapped_column(Float, nullable=True)
    activities_joined: Mapped[int] = mapped_column(Integer)
    points_balance: Mapped[int] = mapped_column(BigInteger)  # a sum of lots may pass 2**31
    computed_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))
