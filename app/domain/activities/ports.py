"""What the activities context needs from storage.

Every change of an activity is one guarded ``UPDATE ... WHERE <the state it needs> RETURNING``
on the activity's row, taken before any participant row: of concurrent joins exactly as many
as there are places find ``participant_count < capacity``; the others change nothing and get
``None``. Participant rows are written only after that row lock, in the same transaction (one
lock order everywhere, so joins, leaves, cancels and the end job never deadlock).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol
from uuid import UUID

from app.domain.activities.model import Activity, ActivityFilter, Reward


class ActivityRepository(Protocol):
    async def insert(self, activity: Activity) -> Activity: ...

    async def get(self, activity_id: UUID) -> Activity | None: ...

    async def is_participant(self, activity_id: UUID, user_id: UUID) -> bool: ...

    async def search(
        self, filters: ActivityFilter, now: datetime, limit: int, offset: int
    ) -> tuple[list[Activity], int]:
        """One page (by ``starts_at``, ties broken by id) and the total count; states are shown states at ``now``."""
        ...

    async def take_place(self, activity_id: UUID, now: datetime) -> Activity | None:
        """Scheduled, not ended at ``now`` and not full -> one more participant; ``None`` if any condition fails."""
        ...

    async def add_participant(self, activity_id: UUID, user_id: UUID, now: datetime) -> bool:
        """Record ``user_id`` as a participant; ``False`` when they already are one."""
        ...

    async def give_back_place(self, activity_id: UUID, now: datetime) -> Activity | None:
        """Scheduled, not ended at ``now``, someone in it -> one participant fewer; ``None`` otherwise."""
        ...

    async def remove_participant(self, activity_id: UUID, user_id: UUID) -> bool:
        """Remove ``user_id``'s participation; ``False`` when they had none."""
        ...

    async def cancel(self, activity_id: UUID, now: datetime, *, creator_id: UUID | None = None) -> Activity | None:
        """Scheduled, not ended at ``now`` (and created by ``creator_id`` when given) -> cancelled, nobody in it."""
        ...

    async def release_participants(self, activity_id: UUID) -> list[UUID]:
        """Remove every participant of the activity; return who they were."""
        ...

    async def end_due(self, now: datetime, batch_size: int) -> list[Activity]:
        """Store ``ended`` on up to ``batch_size`` scheduled activities whose ``ends_at`` has passed.

        Safe to run concurrently with itself and with joins: each activity changes once.
        """
        ...

    async def claim_rewards(self, now: datetime, batch_size: int) -> list[Reward]:
        """Mark up to ``batch_size`` unrewarded participants of ended activities rewarded; return them.

        Rows another transaction holds are skipped, so overlapping runs claim disjoint participants.
        """
        ...

    async def mark_rewards_paid(self, now: datetime) -> int:
        """Record ``rewards_paid_at`` on ended activities with no unrewarded participant left; return how many."""
        ...
