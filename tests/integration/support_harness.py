"""Runs customer service on a real database: each call in its own session (like concurrent requests or job
runs), a clock the test moves, events recorded, and bulk seeding of users, agents and waiting chats."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TypeVar

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from app.domain.shared.events import UserEvent
from app.domain.support.model import Chat, SupportPolicy
from app.domain.support.service import SupportService
from app.domain.users.model import Principal, Role
from app.infra.db.support import SqlAgentRepository, SqlChatRepository
from app.infra.db.support_tables import SupportAgentRecord, SupportChatRecord
from app.infra.db.tables import UserRecord
from app.infra.db.unit_of_work import SessionUnitOfWork
from tests.integration.coupon_harness import FixedClock
from tests.support import user_row

T = TypeVar("T")
POLICY = SupportPolicy(
    max_chats_per_agent=5,
    answer_timeout=timedelta(minutes=5),
    idle_timeout=timedelta(minutes=15),
    inactive_after=timedelta(days=7),
    retention=timedelta(days=90),
)


class RecordedEvents:
    """An ``EventPublisher`` that keeps what it was given."""

    def __init__(self) -> None:
        self.sent: list[tuple[frozenset[uuid.UUID], UserEvent]] = []

    async def publish(self, user_ids: Collection[uuid.UUID], event: UserEvent) -> None:
        self.sent.append((frozenset(user_ids), event))

    def of_type(self, kind: str) -> list[tuple[frozenset[uuid.UUID], UserEvent]]:
        return [(who, event) for who, event in self.sent if event.type == kind]


class Support:
    def __init__(self, engine: AsyncEngine, clock: FixedClock, policy: SupportPolicy) -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)
        self.clock = clock
        self.policy = policy
        self.events = RecordedEvents()

    async def run(self, action: Callable[[SupportService], Awaitable[T]]) -> T:
        """One call in its own session and transaction."""
        async with self.sessions() as session:
            service = SupportService(
                SqlChatRepository(session),
                SqlAgentRepository(session),
                SessionUnitOfWork(session),
                self.clock,
                self.events,
                self.policy,
            )
            result = await action(service)
            await session.commit()
            return result

    async def people(self, count: int, role: Role = Role.USER) -> list[Principal]:
        """``count`` users of ``role`` in one statement."""
        now = self.clock.now()
        rows = [user_row(f"u{uuid.uuid4().hex[:12]}", role, now) for _ in range(count)]
        async with self.sessions() as session:
            await session.execute(insert(UserRecord), rows)
            await session.commit()
        return [Principal(id=row["id"], username=row["username"], role=role) for row in rows]

    async def online_agents(self, count: int, max_chats: int | None = None) -> list[Principal]:
        agents = await self.people(count, Role.AGENT)
        now = self.clock.now()
        rows = [
            {"id": uuid.uuid4(), "user_id": a.id, "status": "online", "max_chats": max_chats, "updated_at": now}
            for a in agents
        ]
        async with self.sessions() as session:
            await session.execute(insert(SupportAgentRecord), rows)
            await session.commit()
        return agents

    async def waiting_chats(self, count: int) -> list[uuid.UUID]:
        """``count`` users, each with one waiting chat, queued a second apart (the first is the oldest)."""
        users = await self.people(count)
        start = self.clock.now() - timedelta(seconds=count)
        rows = []
        for position, user in enumerate(users):
            at = start + timedelta(seconds=position)
            rows.append(
                {
                    "id": uuid.uuid4(),
                    "user_id": user.id,
                    "status": "waiting",
                    "queued_at": at,
                    "last_activity_at": at,
                    "last_seq": 0,
                    "user_read_seq": 0,
                    "agent_read_seq": 0,
                    "created_at": at,
                    "updated_at": at,
                }
            )
        async with self.sessions() as session:
            await session.execute(insert(SupportChatRecord), rows)
            await session.commit()
        return [row["id"] for row in rows]

    async def chat(self, chat_id: uuid.UUID) -> Chat:
        async with self.sessions() as session:
            found = await SqlChatRepository(session).get(chat_id)
        assert found is not None
        return found

    async def assigned(self) -> dict[uuid.UUID, uuid.UUID]:
        """Chat -> agent of every assigned chat."""
        async with self.sessions() as session:
            rows = await session.execute(
                select(SupportChatRecord.id, SupportChatRecord.agent_id).where(SupportChatRecord.status == "assigned")
            )
            return {row.id: row.agent_id for row in rows}


@asynccontextmanager
async def support_on(url: str, policy: SupportPolicy = POLICY) -> AsyncIterator[Support]:
    # a bounded pool: the test server allows 100 connections for everyone
    options = {} if url.startswith("sqlite") else {"pool_size": 10, "max_overflow": 5, "pool_timeout": 60}
    engine = create_async_engine(url, **options)
    try:
        yield Support(engine, FixedClock(), policy)
    finally:
        await engine.dispose()
