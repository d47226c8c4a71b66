"""Response body of user statistics (a contract, like ``schemas.py``)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec

from app.domain.stats.model import UserStats


class UserStatsResponse(msgspec.Struct, kw_only=True):
    """Figures as of `computed_at` (recomputed for everyone every few minutes). Tasks `taken` and `completed`
    count the user as taker; `completion_rate` = completed / taken (null before the first take);
    `average_rating` is of the ratings received as taker (null while unrated); `points_balance` is the
    user's current points."""

    user_id: UUID
    tasks_posted: int
    tasks_taken: int
    tasks_completed: int
    completion_rate: float | None
    ratings_count: int
    average_rating: float | None
    activities_joined: int
    points_balance: int
    computed_at: datetime

    @classmethod
    def of(cls, stats: UserStats) -> UserStatsResponse:
        return cls(
            user_id=stats.user_id,
            tasks_posted=stats.tasks_posted,
            tasks_taken=stats.tasks_taken,
            tasks_completed=stats.tasks_completed,
            completion_rate=stats.completion_rate,
            ratings_count=stats.ratings_count,
            average_rating=stats.average_rating,
            activities_joined=stats.activities_joined,
            points_balance=stats.points_balance,
            computed_at=stats.computed_at,
        )
