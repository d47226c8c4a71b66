"""Activities under real concurrency (PostgreSQL): every call its own session and transaction, all at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import timedelta
from typing import TypeVar

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.dialects import postgresql

from app.domain.activities.model import ActivityState
from app.domain.activities.service import ActivityView
from app.domain.shared.errors import DomainError
from app.infra.db.activities import claim_rewards_statement, end_due_statement
from app.infra.db.activity_tables import ActivityParticipantRecord, ActivityRecord
from app.infra.db.notification_tables import NotificationRecord
from app.infra.db.tables import PointTransactionRecord
from tests.integration.activity_harness import activities_on, person

pytestmark = pytest.mark.postgres

T = TypeVar("T")


async def _outcome(call: Awaitable[T]) -> T | str:
    try:
        return await call
    except DomainError as error:
        return error.code


async def test_three_hundred_simultaneous_joins_of_a_hundred_places_exactly_a_hundred(pg_url: str) -> None:
    async with activities_on(pg_url) as activities:
        (creator,) = await activities.world.users(1)
        joiners = await activities.world.users(300)
        activity = (await activities.create(creator, capacity=100)).activity
        outcomes = await asyncio.gather(
            *(_outcome(activities.run(lambda s, u=u: s.join(person(u), activity.id))) for u in joiners)
        )
        assert len([outcome for outcome in outcomes if isinstance(outcome, ActivityView)]) == 100
        assert [outcome for outcome in outcomes if isinstance(outcome, str)] == ["full"] * 200
        async with activities.world.sessions() as session:
            rows = await session.scalar(
                select(func.count()).where(ActivityParticipantRecord.activity_id == activity.id)
            )
            count = await session.scalar(
                select(ActivityRecord.participant_count).where(ActivityRecord.id == activity.id)
            )
        assert (rows, count) == (100, 100)


async def test_simultaneous_joins_and_leaves_keep_the_count_equal_to_the_participants(pg_url: str) -> None:
    async with activities_on(pg_url) as activities:
        (creator,) = await activities.world.users(1)
        users = await activities.world.users(40)
        activity = (await activities.create(creator, capacity=20)).activity
        for user in users[:20]:
            await activities.run(lambda s, u=user: s.join(person(u), activity.id))
        # the first 20 leave while the other 20 (and the first 20 again) try to join
        calls = [activities.run(lambda s, u=u: s.leave(person(u), activity.id)) for u in users[:20]]
        calls += [activities.run(lambda s, u=u: s.join(person(u), activity.id)) for u in users]
        await asyncio.gather(*(_outcome(call) for call in calls))
        async with activities.world.sessions() as session:
            rows = await session.scalar(
                select(func.count()).where(ActivityParticipantRecord.activity_id == activity.id)
            )
            count = await session.scalar(
                select(ActivityRecord.participant_count).where(ActivityRecord.id == activity.id)
            )
        assert rows == count
        assert 0 < count <= 20


async def test_overlapping_end_runs_credit_every_participant_once(pg_url: str) -> None:
    async with activities_on(pg_url) as activities:
        (creator,) = await activities.world.users(1)
        users = await activities.world.users(60)
        ids = []
        for capacity, reward in ((60, 10), (30, 7), (5, 0)):
            activity = (await activities.create(creator, capacity=capacity, reward_points=reward)).activity
            ids.append(activity.id)
            for user in users[:capacity]:
                await activities.run(lambda s, u=user, a=activity.id: s.join(person(u), a))
        later = activities.clock.now() + timedelta(days=1)

        async def job() -> int:
            total = 0
            while (count := await activities.run(lambda s: s.end_due(later, 7))) > 0:
                total += count
            return total

        handled = await asyncio.gather(*(job() for _ in range(4)))
        assert sum(handled) == 3 + 60 + 30 + 5  # each activity ended once, each participant claimed once

        for index, user in enumerate(users):
            expected = 10 + (7 if index < 30 else 0)
            assert await activities.earned(user) == (1 if index >= 30 else 2, expected), index
            balance, ledger = await activities.world.balance(user)
            assert balance == ledger == expected
        async with activities.world.sessions() as session:
            notices = await session.scalar(select(func.count()).where(NotificationRecord.kind == "activity_ended"))
            unpaid = await session.scalar(select(func.count()).where(ActivityParticipantRecord.rewarded_at.is_(None)))
            states = (
                await session.execute(select(ActivityRecord.state, ActivityRecord.rewards_paid_at.is_not(None)))
            ).all()
            earns = await session.scalar(select(func.count()).where(PointTransactionRecord.reason == "activity"))
        assert (notices, unpaid, earns) == (95, 0, 90)
        assert sorted(tuple(row) for row in states) == [("ended", True)] * 3
        view = await activities.run(lambda s: s.get(ids[0]))
        assert view.state is ActivityState.ENDED


async def test_joins_racing_the_end_job_are_either_paid_or_refused(pg_url: str) -> None:
    async with activities_on(pg_url) as activities:
        (creator,) = await activities.world.users(1)
        users = await activities.world.users(20)
        activity = (await activities.create(creator, capacity=100, reward_points=5)).activity
        # the joins still see the end ahead; the job already sees it past
        after_end = activity.ends_at + timedelta(seconds=1)
        joins = [_outcome(activities.run(lambda s, u=u: s.join(person(u), activity.id))) for u in users]

        async def job() -> None:
            while await activities.run(lambda s: s.end_due(after_end, 5)) > 0:
                pass

        outcomes = await asyncio.gather(*joins, job())
        await job()  # a join that committed while the job was claiming is paid by the next run
        joined = [user for user, outcome in zip(users, outcomes, strict=False) if isinstance(outcome, ActivityView)]
        assert {outcome for outcome in outcomes[:20] if isinstance(outcome, str)} <= {"invalid_transition"}
        for user in users:
            assert await activities.earned(user) == ((1, 5) if user in joined else (0, 0))


async def test_the_end_job_with_nothing_due_uses_indexes(pg_url: str) -> None:
    async with activities_on(pg_url) as activities, activities.world.sessions() as session:
        await session.execute(text("SET enable_seqscan = off"))
        for statement, index in (
            (end_due_statement(activities.clock.now(), 1000), "ix_activities_scheduled_ends"),
            (claim_rewards_statement(activities.clock.now(), 1000), "ix_activities_rewards_pending"),
        ):
            sql = str(statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
            plan = "\n".join(row[0] for row in await session.execute(text(f"EXPLAIN {sql}")))
            assert index in plan, plan
