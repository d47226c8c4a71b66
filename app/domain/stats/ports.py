"""What user statistics need from storage: one set-based recomputation and reads."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol
from uuid import UUID

from app.domain.stats.model import UserStats


class StatsRepository(Protocol):
    async def recompute_all(self, now: datetime) -> int:
        """Recompute and store every user's figures in one statement (no per-user work); return how many."""
        ...

    async def read(self, user_id: UUID) -> tuple[bool, UserStats | None]:
        """Whether ``user_id`` is an active user, and their stored figures (``None`` if never computed)."""
        ...

    async def compute_for(self, user_id: UUID, now: datetime) -> UserStats:
        """One user's figures computed now by the same aggregation ``recompute_all`` stores, without storing them."""
        ...
