"""Use cases of activities. Each commits once.

Joins never overfill an activity: a join is one guarded increment of the activity's
``participant_count`` (``< capacity``, still joinable) followed, in the same transaction, by
the participant row, whose primary key (activity, user) refuses a second join. Only when a
guarded write changes nothing does the service read the activity to say why (404, 403 or
409 naming the current state).

Rule chosen where SPEC.md says "join/leave while not ended": a user joins or leaves while the
activity is ``scheduled`` or ``active`` (not cancelled, ``ends_at`` not reached). A cancelled
activity releases every participant (they are told); nobody is paid for it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from app.domain.activities.model import Activity, ActivityDraft, ActivityFilter, ActivityState, Reward
from app.domain.activities.ports import ActivityRepository
from app.domain.notifications.model import Notice, NotificationKind
from app.domain.notifications.ports import Notifier
from app.domain.points.service import PointsService
from app.domain.shared.errors import Conflict, DomainError, FieldIssue, Forbidden, NotFound, ValidationFailed
from app.domain.shared.ports import Clock, UnitOfWork
from app.domain.users.model import Principal, Role

TITLE_LENGTH = (3, 120)
DESCRIPTION_LENGTH = (1, 5_000)
CAPACITY = (1, 100_000)
MAX_REWARD = 100_000  # per participant
# A start "now" sent by a client arrives a little late: accept starts this far in the past.
START_TOLERANCE = timedelta(minutes=1)
MAX_LEAD_TIME = timedelta(days=365)
MAX_DURATION = timedelta(days=365)
# Notices per statement: a large activity's participants are told in chunks (bounded statements).
NOTICE_CHUNK = 1_000
ORGANISER_ROLES = (Role.EXPERT, Role.ADMIN)
JOINABLE = frozenset({ActivityState.SCHEDULED, ActivityState.ACTIVE})


class ActivityNotFound(NotFound):
    code = "activity_not_found"


class InvalidTransition(Conflict):
    code = "invalid_transition"


class AlreadyJoined(Conflict):
    code = "already_joined"


class ActivityFull(Conflict):
    code = "full"


class NotJoined(Conflict):
    code = "not_joined"


class NotOrganiser(Forbidden):
    code = "organiser_role_required"


class NotCreator(Forbidden):
    code = "not_creator"


@dataclass(frozen=True, slots=True)
class ActivityView:
    """An activity with its state as shown at the time it was read."""

    activity: Activity
    state: ActivityState


def _invalid_transition(state: ActivityState, action: str) -> InvalidTransition:
    return InvalidTransition(f"Cannot {action} an activity that is {state.value}.")


def _about(activity_id: UUID, title: str, **extra: Any) -> dict[str, Any]:
    """A notification's payload: the activity and what else the kind needs (JSON-serialisable)."""
    return {"activity_id": str(activity_id), "title": title, **extra}


def check_draft(draft: ActivityDraft, now: datetime) -> ActivityDraft:
    """The draft with its text trimmed; every broken rule is reported at once (422 ``invalid_activity``)."""
    draft = replace(draft, title=draft.title.strip(), description=draft.description.strip())
    issues: list[FieldIssue] = []
    for field, value, (low, high) in (
        ("title", draft.title, TITLE_LENGTH),
        ("description", draft.description, DESCRIPTION_LENGTH),
    ):
        if not low <= len(value) <= high:
            issues.append(
                FieldIssue(code="invalid_length", message=f"Must be {low} to {high} characters.", field=field)
            )
    low, high = CAPACITY
    if not low <= draft.capacity <= high:
        issues.append(FieldIssue(code="out_of_range", message=f"Must be {low} to {high}.", field="capacity"))
    if not 0 <= draft.reward_points <= MAX_REWARD:
        issues.append(FieldIssue(code="out_of_range", message=f"Must be 0 to {MAX_REWARD}.", field="reward_points"))
    if draft.starts_at.tzinfo is None or draft.ends_at.tzinfo is None:
        naive = [
            name for name, moment in (("starts_at", draft.starts_at), ("ends_at", draft.ends_at)) if not moment.tzinfo
        ]
        issues += [FieldIssue(code="naive_time", message="Must carry a time zone.", field=name) for name in naive]
    else:
        if draft.starts_at < now - START_TOLERANCE:
            issues.append(FieldIssue(code="starts_in_past", message="Must not lie in the past.", field="starts_at"))
        elif draft.starts_at > now + MAX_LEAD_TIME:
            issues.append(FieldIssue(code="starts_too_far", message="Must be within 365 days.", field="starts_at"))
        if draft.ends_at <= draft.starts_at:
            issues.append(FieldIssue(code="ends_before_start", message="Must be after starts_at.", field="ends_at"))
        elif draft.ends_at - draft.starts_at > MAX_DURATION:
            issues.append(FieldIssue(code="too_long", message="Must be within 365 days of starts_at.", field="ends_at"))
    if issues:
        raise ValidationFailed("The activity breaks some rules.", code="invalid_activity", issues=tuple(issues))
    return draft


def _chunks(notices: Sequence[Notice]) -> list[Sequence[Notice]]:
    return [notices[start : start + NOTICE_CHUNK] for start in range(0, len(notices), NOTICE_CHUNK)]


class ActivityService:
    def __init__(
        self,
        activities: ActivityRepository,
        points: PointsService,
        notifier: Notifier,
        uow: UnitOfWork,
        clock: Clock,
    ) -> None:
        self._activities = activities
        self._points = points
        self._notifier = notifier
        self._uow = uow
        self._clock = clock

    def _view(self, activity: Activity, now: datetime | None = None) -> ActivityView:
        return ActivityView(activity, activity.state_at(now or self._clock.now()))

    async def create(self, actor: Principal, draft: ActivityDraft) -> ActivityView:
        """An expert or an admin creates an activity (stored ``scheduled``).

        Raises:
            NotOrganiser (403), ValidationFailed (``invalid_activity``, every broken rule listed).
        """
        if not actor.has_role(*ORGANISER_ROLES):
            raise NotOrganiser("Only experts and admins create activities.")
        now = self._clock.now()
        draft = check_draft(draft, now)
        activity = await self._activities.insert(
            Activity(
                id=uuid.uuid4(),
                creator_id=actor.id,
                title=draft.title,
                description=draft.description,
                starts_at=draft.starts_at,
                ends_at=draft.ends_at,
                capacity=draft.capacity,
                reward_points=draft.reward_points,
                participant_count=0,
                stored_state=ActivityState.SCHEDULED,
                created_at=now,
                updated_at=now,
            )
        )
        await self._uow.commit()
        return self._view(activity, now)

    async def _get(self, activity_id: UUID) -> Activity:
        activity = await self._activities.get(activity_id)
        if activity is None:
            raise ActivityNotFound("Activity not found.")
        return activity

    async def get(self, activity_id: UUID) -> ActivityView:
        return self._view(await self._get(activity_id))

    async def list_activities(self, filters: ActivityFilter, limit: int, offset: int) -> tuple[list[ActivityView], int]:
        """A page of activities by start time; ``filters.states`` are the shown states, now."""
        now = self._clock.now()
        items, total = await self._activities.search(filters, now, limit, offset)
        return [self._view(item, now) for item in items], total

    async def join(self, actor: Principal, activity_id: UUID) -> ActivityView:
        """Join a scheduled or active activity; never above capacity, also under simultaneous joins.

        Raises:
            ActivityNotFound, InvalidTransition (ended or cancelled), AlreadyJoined, ActivityFull.
        """
        now = self._clock.now()
        try:
            activity = await self._activities.take_place(activity_id, now)
            if activity is None:
                current = await self._get(activity_id)
                state = current.state_at(now)
                if state not in JOINABLE:
                    raise _invalid_transition(state, "join")
                if await self._activities.is_participant(activity_id, actor.id):
                    raise AlreadyJoined("You have joined this activity already.")
                raise ActivityFull("The activity is full.")
            if not await self._activities.add_participant(activity_id, actor.id, now):
                raise AlreadyJoined("You have joined this activity already.")
        except DomainError:
            await self._uow.rollback()  # the place taken for a refused join goes back
            raise
        await self._uow.commit()
        return self._view(activity, now)

    async def leave(self, actor: Principal, activity_id: UUID) -> ActivityView:
        """Leave a scheduled or active activity; the place goes back.

        Raises:
            ActivityNotFound, InvalidTransition (ended or cancelled), NotJoined.
        """
        now = self._clock.now()
        try:
            activity = await self._activities.give_back_place(activity_id, now)
            if activity is None:
                state = (await self._get(activity_id)).state_at(now)
                if state not in JOINABLE:
                    raise _invalid_transition(state, "leave")
                raise NotJoined("You have not joined this activity.")
            if not await self._activities.remove_participant(activity_id, actor.id):
                raise NotJoined("You have not joined this activity.")
        except DomainError:
            await self._uow.rollback()  # a refused leave gives back no place
            raise
        await self._uow.commit()
        return self._view(activity, now)

    async def cancel(self, actor: Principal, activity_id: UUID) -> ActivityView:
        """Its creator or an admin cancels a scheduled or active activity; every participant is released and told.

        Raises:
            ActivityNotFound, NotCreator (403), InvalidTransition (ended or cancelled already).
        """
        now = self._clock.now()
        creator = None if actor.has_role(Role.ADMIN) else actor.id
        activity = await self._activities.cancel(activity_id, now, creator_id=creator)
        if activity is None:
            current = await self._get(activity_id)
            if creator is not None and current.creator_id != creator:
                raise NotCreator("Only the activity's creator or an admin cancels it.")
            raise _invalid_transition(current.state_at(now), "cancel")
        released = await self._activities.release_participants(activity_id)
        notices = [
            Notice(user, NotificationKind.ACTIVITY_CANCELLED, _about(activity.id, activity.title)) for user in released
        ]
        for chunk in _chunks(notices):
            await self._notifier.notify_many(chunk)
        await self._uow.commit()
        return self._view(activity, now)

    async def end_due(self, now: datetime, batch_size: int) -> int:
        """One batch of the end job, committed: store ``ended`` on up to ``batch_size`` activities past ``ends_at``,
        then credit up to ``batch_size`` of their participants ``reward_points`` each (and tell them).

        Returns how many activities and participants it handled; the scheduler calls it until it returns
        less than ``batch_size``. Each participant is credited exactly once, also when runs overlap: a
        participant is claimed by one run (locked rows are skipped), and the credit's idempotency key
        ``activity-reward:{activity}:{user}`` would apply once even if one were claimed twice. A large
        activity's participants are paid over several batches, so no transaction grows with its size.
        """
        ended = await self._activities.end_due(now, batch_size)
        rewards = await self._activities.claim_rewards(now, batch_size)
        for reward in rewards:
            await self._credit(reward)
        notices = [
            Notice(
                reward.user_id,
                NotificationKind.ACTIVITY_ENDED,
                _about(reward.activity_id, reward.title, points=reward.reward_points),
            )
            for reward in rewards
        ]
        for chunk in _chunks(notices):
            await self._notifier.notify_many(chunk)
        await self._activities.mark_rewards_paid(now)
        await self._uow.commit()
        return len(ended) + len(rewards)

    async def _credit(self, reward: Reward) -> None:
        if reward.reward_points == 0:
            return  # an activity without a reward: nothing to credit, the participant is still told
        await self._points.earn(
            reward.user_id,
            reward.reward_points,
            reason="activity",
            reference=f"activity:{reward.activity_id}",
            idempotency_key=f"activity-reward:{reward.activity_id}:{reward.user_id}",
        )
