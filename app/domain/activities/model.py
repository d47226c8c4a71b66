"""Activities (campaigns): an expert or an admin runs one for a fixed time; users join, and when it
ends every participant is credited its ``reward_points`` once.

States and how they are known::

    scheduled -> active -> ended
    scheduled | active -> cancelled      (by its creator or an admin)

Only ``scheduled``, ``ended`` and ``cancelled`` are stored. ``active`` is never written: a
stored ``scheduled`` activity is shown ``active`` while ``starts_at <= now < ends_at`` and
``ended`` from ``ends_at`` on, before the end job has got to it, so what a client sees never
depends on when the job last ran. The job's stored ``ended`` records that the rewards are
being (or have been) paid. ``shown_state`` is the one rule; the repository's list filter
states the same rule as SQL predicates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID


class ActivityState(StrEnum):
    SCHEDULED = "scheduled"
    ACTIVE = "active"
    ENDED = "ended"
    CANCELLED = "cancelled"


# What the table holds; ``active`` is derived from the time.
STORED_STATES = frozenset({ActivityState.SCHEDULED, ActivityState.ENDED, ActivityState.CANCELLED})


def shown_state(stored: ActivityState, starts_at: datetime, ends_at: datetime, now: datetime) -> ActivityState:
    """The state a client sees at ``now`` of an activity whose stored state is ``stored``."""
    if stored is ActivityState.CANCELLED:
        return ActivityState.CANCELLED
    if stored is ActivityState.ENDED or now >= ends_at:
        return ActivityState.ENDED
    if now >= starts_at:
        return ActivityState.ACTIVE
    return ActivityState.SCHEDULED


@dataclass(frozen=True, slots=True)
class ActivityDraft:
    """What the creator fills in."""

    title: str
    description: str
    starts_at: datetime
    ends_at: datetime
    capacity: int
    reward_points: int


@dataclass(frozen=True, slots=True)
class Activity:
    id: UUID
    creator_id: UUID
    title: str
    description: str
    starts_at: datetime
    ends_at: datetime
    capacity: int
    reward_points: int
    participant_count: int
    stored_state: ActivityState
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None = None
    cancelled_at: datetime | None = None
    rewards_paid_at: datetime | None = None  # every participant has been credited

    def state_at(self, now: datetime) -> ActivityState:
        return shown_state(self.stored_state, self.starts_at, self.ends_at, now)


@dataclass(frozen=True, slots=True)
class ActivityFilter:
    states: frozenset[ActivityState] = frozenset()  # shown states, evaluated at the time of the query
    creator_id: UUID | None = None


@dataclass(frozen=True, slots=True)
class Reward:
    """One participant of an ended activity, claimed by the end job for crediting."""

    activity_id: UUID
    user_id: UUID
    title: str
    reward_points: int
