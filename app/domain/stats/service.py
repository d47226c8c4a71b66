"""Use cases of user statistics: the periodic recomputation and the public read."""

from __future__ import annotations

from uuid import UUID

from app.domain.shared.errors import NotFound
from app.domain.shared.ports import Clock, UnitOfWork
from app.domain.stats.model import UserStats
from app.domain.stats.ports import StatsRepository


class UserNotFound(NotFound):
    code = "user_not_found"


class StatsService:
    def __init__(self, stats: StatsRepository, uow: UnitOfWork, clock: Clock) -> None:
        self._stats = stats
        self._uow = uow
        self._clock = clock

    async def recompute_all(self) -> int:
        """Recompute every user's statistics in one set-based statement and commit; return how many users.

        Idempotent, and safe when two runs overlap: the later write of a user's row wins, and both
        computed the same figures from committed data.
        """
        count = await self._stats.recompute_all(self._clock.now())
        await self._uow.commit()
        return count

    async def get(self, user_id: UUID) -> UserStats:
        """Any active user's public statistics as last recomputed (``computed_at`` says when).

        A user the job has not reached yet (registered since its last run) gets figures computed on the
        spot by the same aggregation, so nobody ever sees made-up zeros; they are not stored.

        Raises:
            UserNotFound: no active user has this id.
        """
        active, stats = await self._stats.read(user_id)
        if not active:
            raise UserNotFound("User not found.")
        if stats is None:
            stats = await self._stats.compute_for(user_id, self._clock.now())
        return stats
