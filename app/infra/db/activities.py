"""Activities on SQLAlchemy Core.

Concurrency: a join, a leave and a cancel each start with one guarded ``UPDATE activities ...
WHERE <state, time and room conditions> RETURNING``. On PostgreSQL a concurrent transaction
waits for the row lock and then re-checks the condition against the committed row, so of 300
simultaneous joins of an activity with 100 places exactly 100 find ``participant_count <
capacity``. Participant rows are written after that lock, in the same transaction: one lock
order (activity, then participants) everywhere, so no two of these deadlock.

The end job first stores ``ended`` on a batch of due activities (locked with ``SKIP LOCKED``,
like the task expiry), then claims a batch of their unpaid participants the same way; a
participant another run holds is skipped, and once that run commits it is paid and no longer
claimable. A join waiting on an activity the job ends finds it ``ended`` and changes nothing.
SQLite runs one writer at a time and ignores ``FOR UPDATE``: the same statements are safe there.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, exists, func, insert, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import UpdateBase

from app.domain.activities.model import Activity, ActivityFilter, ActivityState, Reward
from app.infra.db.activity_tables import ActivityParticipantRecord, ActivityRecord

_A = ActivityRecord
_P = ActivityParticipantRecord
_COLUMNS = (
    _A.id,
    _A.creator_id,
    _A.title,
    _A.description,
    _A.starts_at,
    _A.ends_at,
    _A.capacity,
    _A.reward_points,
    _A.participant_count,
    _A.state,
    _A.created_at,
    _A.updated_at,
    _A.ended_at,
    _A.cancelled_at,
    _A.rewards_paid_at,
)
_SCHEDULED = ActivityState.SCHEDULED.value
_ENDED = ActivityState.ENDED.value
_CANCELLED = ActivityState.CANCELLED.value


def _to_activity(row: Any) -> Activity:
    return Activity(
        id=row.id,
        creator_id=row.creator_id,
        title=row.title,
        description=row.description,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        capacity=row.capacity,
        reward_points=row.reward_points,
        participant_count=row.participant_count,
        stored_state=ActivityState(row.state),
        created_at=row.created_at,
        updated_at=row.updated_at,
        ended_at=row.ended_at,
        cancelled_at=row.cancelled_at,
        rewards_paid_at=row.rewards_paid_at,
    )


def shown_state_condition(state: ActivityState, now: datetime.datetime) -> ColumnElement[bool]:
    """``model.shown_state(...) == state`` as a predicate on the stored state and the times."""
    open_until_end = and_(_A.state == _SCHEDULED, _A.ends_at > now)
    conditions: dict[ActivityState, ColumnElement[bool]] = {
        ActivityState.SCHEDULED: and_(open_until_end, _A.starts_at > now),
        ActivityState.ACTIVE: and_(open_until_end, _A.starts_at <= now),
        ActivityState.ENDED: or_(_A.state == _ENDED, and_(_A.state == _SCHEDULED, _A.ends_at <= now)),
        ActivityState.CANCELLED: _A.state == _CANCELLED,
    }
    return conditions[state]


def _joinable(activity_id: uuid.UUID, now: datetime.datetime) -> list[ColumnElement[bool]]:
    """Scheduled or active at ``now``: stored ``scheduled`` and not past its end."""
    return [_A.id == activity_id, _A.state == _SCHEDULED, _A.ends_at > now]


def end_due_statement(now: datetime.datetime, batch_size: int) -> UpdateBase:
    """One batch of the end job: scheduled activities past ``ends_at`` store ``ended``.

    A materialised CTE locked with ``SKIP LOCKED`` and run once (see ``coupons._locked_batch``); the
    outer ``state = 'scheduled'`` re-check is what a racing cancel cannot slip past.
    """
    due = (
        select(_A.id)
        .where(_A.state == _SCHEDULED, _A.ends_at <= now)
        .order_by(_A.ends_at)
        .limit(batch_size)
        .with_for_update(skip_locked=True)
        .cte("due_activities")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    return (
        update(_A)
        .where(_A.id.in_(select(due.c.id)), _A.state == _SCHEDULED)
        .values(state=_ENDED, ended_at=now, updated_at=now)
        .returning(*_COLUMNS)
    )


def _rewards_pending() -> ColumnElement[bool]:
    return and_(_A.state == _ENDED, _A.rewards_paid_at.is_(None))


def claim_rewards_statement(now: datetime.datetime, batch_size: int) -> UpdateBase:
    """One batch of unpaid participants of ended activities, locked (``SKIP LOCKED``) and marked paid.

    The activity's title and reward come back through scalar subqueries (SQLite's RETURNING may not
    name another table of an ``UPDATE ... FROM``).
    """
    pending = select(_A.id).where(_rewards_pending())
    claimed = (
        select(_P.activity_id, _P.user_id)
        .where(_P.activity_id.in_(pending), _P.rewarded_at.is_(None))
        .limit(batch_size)
        .with_for_update(skip_locked=True, of=_P)
        .cte("claimed_participants")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    of_activity = _A.id == _P.activity_id
    return (
        update(_P)
        .where(
            tuple_(_P.activity_id, _P.user_id).in_(select(claimed.c.activity_id, claimed.c.user_id)),
            _P.rewarded_at.is_(None),
        )
        .values(rewarded_at=now)
        .returning(
            _P.activity_id,
            _P.user_id,
            select(_A.title).where(of_activity).scalar_subquery().label("title"),
            select(_A.reward_points).where(of_activity).scalar_subquery().label("reward_points"),
        )
    )


class SqlActivityRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def insert(self, activity: Activity) -> Activity:
        statement = (
            insert(_A)
            .values(
                id=activity.id,
                creator_id=activity.creator_id,
                title=activity.title,
                description=activity.description,
                starts_at=activity.starts_at,
                ends_at=activity.ends_at,
                capacity=activity.capacity,
                reward_points=activity.reward_points,
                participant_count=activity.participant_count,
                state=activity.stored_state.value,
                created_at=activity.created_at,
                updated_at=activity.updated_at,
            )
            .returning(*_COLUMNS)
        )
        return _to_activity((await self._session.execute(statement)).one())

    async def get(self, activity_id: uuid.UUID) -> Activity | None:
        row = (await self._session.execute(select(*_COLUMNS).where(_A.id == activity_id))).first()
        return None if row is None else _to_activity(row)

    async def is_participant(self, activity_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        statement = select(exists().where(_P.activity_id == activity_id, _P.user_id == user_id))
        return bool((await self._session.execute(statement)).scalar_one())

    async def search(
        self, filters: ActivityFilter, now: datetime.datetime, limit: int, offset: int
    ) -> tuple[list[Activity], int]:
        conditions: list[ColumnElement[bool]] = []
        if filters.states:
            conditions.append(or_(*(shown_state_condition(state, now) for state in sorted(filters.states))))
        if filters.creator_id is not None:
            conditions.append(_A.creator_id == filters.creator_id)
        page = select(*_COLUMNS).where(*conditions).order_by(_A.starts_at, _A.id).limit(limit).offset(offset)
        rows = (await self._session.execute(page)).all()
        total = (await self._session.execute(select(func.count()).select_from(_A).where(*conditions))).scalar_one()
        return [_to_activity(row) for row in rows], int(total)

    async def _change(self, conditions: list[ColumnElement[bool]], values: dict[str, Any]) -> Activity | None:
        statement = update(_A).where(*conditions).values(**values).returning(*_COLUMNS)
        row = (await self._session.execute(statement)).first()
        return None if row is None else _to_activity(row)

    async def take_place(self, activity_id: uuid.UUID, now: datetime.datetime) -> Activity | None:
        return await self._change(
            [*_joinable(activity_id, now), _A.participant_count < _A.capacity],
            {"participant_count": _A.participant_count + 1, "updated_at": now},
        )

    async def add_participant(self, activity_id: uuid.UUID, user_id: uuid.UUID, now: datetime.datetime) -> bool:
        # ON CONFLICT DO NOTHING instead of catching the duplicate: on PostgreSQL a failed
        # statement would poison the transaction; a concurrent insert of the same pair waits
        # for the other transaction and then does nothing.
        dialect = sqlite if self._session.get_bind().dialect.name == "sqlite" else postgresql
        statement = (
            dialect.insert(_P)
            .values(activity_id=activity_id, user_id=user_id, joined_at=now)
            .on_conflict_do_nothing(index_elements=[_P.activity_id, _P.user_id])
            .returning(_P.user_id)
        )
        return (await self._session.execute(statement)).first() is not None

    async def give_back_place(self, activity_id: uuid.UUID, now: datetime.datetime) -> Activity | None:
        return await self._change(
            [*_joinable(activity_id, now), _A.participant_count > 0],
            {"participant_count": _A.participant_count - 1, "updated_at": now},
        )

    async def remove_participant(self, activity_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        statement = delete(_P).where(_P.activity_id == activity_id, _P.user_id == user_id).returning(_P.user_id)
        return (await self._session.execute(statement)).first() is not None

    async def cancel(
        self, activity_id: uuid.UUID, now: datetime.datetime, *, creator_id: uuid.UUID | None = None
    ) -> Activity | None:
        conditions = _joinable(activity_id, now)
        if creator_id is not None:
            conditions.append(_A.creator_id == creator_id)
        return await self._change(
            conditions, {"state": _CANCELLED, "participant_count": 0, "cancelled_at": now, "updated_at": now}
        )

    async def release_participants(self, activity_id: uuid.UUID) -> list[uuid.UUID]:
        statement = delete(_P).where(_P.activity_id == activity_id).returning(_P.user_id)
        return list((await self._session.execute(statement)).scalars())

    async def end_due(self, now: datetime.datetime, batch_size: int) -> list[Activity]:
        rows = (await self._session.execute(end_due_statement(now, batch_size))).all()
        return [_to_activity(row) for row in rows]

    async def claim_rewards(self, now: datetime.datetime, batch_size: int) -> list[Reward]:
        rows = (await self._session.execute(claim_rewards_statement(now, batch_size))).all()
        return [
            Reward(activity_id=row.activity_id, user_id=row.user_id, title=row.title, reward_points=row.reward_points)
            for row in rows
        ]

    async def mark_rewards_paid(self, now: datetime.datetime) -> int:
        unpaid = exists().where(_P.activity_id == _A.id, _P.rewarded_at.is_(None))
        # Locked with SKIP LOCKED: two runs marking the same activities never wait on each other (an
        # activity one run skips, the other marks; one neither marks, the next run does).
        done = (
            select(_A.id)
            .where(_rewards_pending(), ~unpaid)
            .with_for_update(skip_locked=True)
            .cte("paid_activities")
            .prefix_with("MATERIALIZED", dialect="postgresql")
        )
        statement = (
            update(_A)
            .where(_A.id.in_(select(done.c.id)), _rewards_pending())
            .values(rewards_paid_at=now, updated_at=now)
            .returning(_A.id)
        )
        return len((await self._session.execute(statement)).all())
