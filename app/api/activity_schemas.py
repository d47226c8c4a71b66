"""Request and response bodies of activities (a contract, like ``schemas.py``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec

from app.domain.activities.model import ActivityDraft, ActivityState
from app.domain.activities.service import ActivityView

# Bounds on raw input only; the domain checks the rules (after trimming) and reports every broken one.
Moment = Annotated[datetime, msgspec.Meta(tz=True, description="With a time zone, e.g. `2026-07-01T00:00:00Z`.")]
Title = Annotated[str, msgspec.Meta(min_length=1, max_length=200, examples=["Spring clean-up in the park"])]
Description = Annotated[str, msgspec.Meta(min_length=1, max_length=10_000)]
Capacity = Annotated[int, msgspec.Meta(ge=1, le=100_000)]
Reward = Annotated[int, msgspec.Meta(ge=0, le=100_000)]


class CreateActivityRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`starts_at` must not lie in the past (a minute of tolerance) nor more than 365 days ahead; `ends_at` comes
    after it, within 365 days. `reward_points` is credited to every participant when the activity ends."""

    title: Title
    description: Description
    starts_at: Moment
    ends_at: Moment
    capacity: Capacity
    reward_points: Reward

    def to_draft(self) -> ActivityDraft:
        return ActivityDraft(
            title=self.title,
            description=self.description,
            starts_at=self.starts_at,
            ends_at=self.ends_at,
            capacity=self.capacity,
            reward_points=self.reward_points,
        )


class ActivityResponse(msgspec.Struct, kw_only=True):
    """`state` as of the response: `active` from `starts_at`, `ended` from `ends_at`, whatever the end job did yet.
    `rewards_paid_at` is set once every participant has been credited."""

    id: UUID
    creator_id: UUID
    title: str
    description: str
    starts_at: datetime
    ends_at: datetime
    capacity: int
    reward_points: int
    participant_count: int
    places_left: int
    state: ActivityState
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    cancelled_at: datetime | None
    rewards_paid_at: datetime | None

    @classmethod
    def of(cls, view: ActivityView) -> ActivityResponse:
        activity = view.activity
        return cls(
            id=activity.id,
            creator_id=activity.creator_id,
            title=activity.title,
            description=activity.description,
            starts_at=activity.starts_at,
            ends_at=activity.ends_at,
            capacity=activity.capacity,
            reward_points=activity.reward_points,
            participant_count=activity.participant_count,
            places_left=activity.capacity - activity.participant_count,
            state=view.state,
            created_at=activity.created_at,
            updated_at=activity.updated_at,
            ended_at=activity.ended_at,
            cancelled_at=activity.cancelled_at,
            rewards_paid_at=activity.rewards_paid_at,
        )


class ActivityPage(msgspec.Struct, kw_only=True):
    items: list[ActivityResponse]
    total: int
    limit: int
    offset: int
