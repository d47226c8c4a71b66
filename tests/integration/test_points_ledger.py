"""The points ledger on real databases: rules, expiry and concurrency (PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from app.domain.points.model import TransactionFilter, TransactionKind
from app.domain.points.service import InsufficientPoints, PointsPolicy, PointsService
from app.domain.users.model import NewUser
from app.infra.db.points import _EXPIRE_BATCH_POSTGRES, SqlPointsLedger, ledger_entries
from app.infra.db.tables import PointLotRecord
from app.infra.db.unit_of_work import SessionUnitOfWork
from app.infra.db.users import SqlUserRepository

T = TypeVar("T")
POLICY = PointsPolicy(lot_lifetime=timedelta(days=365))


class FixedClock:
    def __init__(self, now: datetime | None = None) -> None:
        self.current = now or datetime.now(UTC)

    def now(self) -> datetime:
        return self.current


class Ledger:
    """Runs each call in its own session and transaction, like concurrent requests do."""

    def __init__(self, engine: AsyncEngine, clock: FixedClock) -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)
        self.clock = clock

    async def run(self, action: Callable[[PointsService], Awaitable[T]]) -> T:
        async with self.sessions() as session:
            service = PointsService(SqlPointsLedger(session), SessionUnitOfWork(session), self.clock, POLICY)
            result = await action(service)
            await session.commit()
            return result

    async def user(self) -> uuid.UUID:
        async with self.sessions() as session:
            name = f"u{uuid.uuid4().hex[:10]}"
            user = await SqlUserRepository(session).add(
                NewUser(email=f"{name}@example.com", username=name, password_hash="x")
            )
            await session.commit()
            return user.id

    async def totals(self, user_id: uuid.UUID) -> tuple[int, int, int]:
        """(balance as the service reports it, remaining in lots, sum of the ledger)."""
        balance = (await self.run(lambda service: service.summary(user_id))).balance
        async with self.sessions() as session:
            lots = await session.scalar(
                select(func.coalesce(func.sum(PointLotRecord.remaining), 0)).where(PointLotRecord.user_id == user_id)
            )
            entries = ledger_entries().subquery()
            ledger = await session.scalar(
                select(func.coalesce(func.sum(entries.c.amount), 0)).where(entries.c.user_id == user_id)
            )
        return balance, int(lots or 0), int(ledger or 0)


@asynccontextmanager
async def ledger_on(url: str, clock: FixedClock | None = None) -> AsyncIterator[Ledger]:
    # 40 connections at most: concurrency without crowding the server (max_connections is often 100)
    options = {} if url.startswith("sqlite") else {"pool_size": 30, "max_overflow": 10, "pool_timeout": 60}
    engine = create_async_engine(url, **options)
    try:
        yield Ledger(engine, clock or FixedClock())
    finally:
        await engine.dispose()


async def test_spending_uses_the_points_that_expire_first(database_url: str) -> None:
    clock = FixedClock()
    async with ledger_on(database_url, clock) as ledger:
        user = await ledger.user()
        await ledger.run(lambda s: s.grant(user, 100, expires_at=clock.now() + timedelta(days=200)))
        await ledger.run(lambda s: s.grant(user, 50, expires_at=clock.now() + timedelta(days=20)))
        await ledger.run(lambda s: s.spend(user, 60))
        summary = await ledger.run(lambda s: s.summary(user))
        # the 50 expiring in 20 days went first, then 10 of the later lot
        assert summary.balance == 90
        assert summary.expiring_soon == 0
        assert await ledger.totals(user) == (90, 90, 90)


async def test_a_spend_larger_than_the_balance_is_refused_and_changes_nothing(database_url: str) -> None:
    async with ledger_on(database_url) as ledger:
        user = await ledger.user()
        await ledger.run(lambda s: s.grant(user, 10))
        with pytest.raises(InsufficientPoints):
            await ledger.run(lambda s: s.spend(user, 11))
        assert await ledger.totals(user) == (10, 10, 10)


async def test_hold_release_and_capture(database_url: str) -> None:
    clock = FixedClock()
    async with ledger_on(database_url, clock) as ledger:
        poster, taker = await ledger.user(), await ledger.user()
        await ledger.run(lambda s: s.grant(poster, 100, expires_at=clock.now() + timedelta(days=10)))
        released = await ledger.run(lambda s: s.hold(poster, 40, reference="task:1"))
        captured = await ledger.run(lambda s: s.hold(poster, 30, reference="task:2"))
        assert await ledger.totals(poster) == (30, 30, 30)

        await ledger.run(lambda s: s.release(released.id))
        await ledger.run(lambda s: s.release(released.id))  # idempotent
        await ledger.run(lambda s: s.capture(captured.id, taker))
        await ledger.run(lambda s: s.capture(captured.id, taker))  # idempotent
        assert await ledger.totals(poster) == (70, 70, 70)
        assert await ledger.totals(taker) == (30, 30, 30)
        # released points keep the expiry they had
        assert (await ledger.run(lambda s: s.summary(poster))).expiring_soon == 70


async def test_expire_due_expires_each_lot_once_with_one_transaction(database_url: str) -> None:
    clock = FixedClock()
    async with ledger_on(database_url, clock) as ledger:
        user = await ledger.user()
        for days in (1, 2, 3):
            await ledger.run(lambda s, d=days: s.grant(user, 10 * d, expires_at=clock.now() + timedelta(days=d)))
        await ledger.run(lambda s: s.spend(user, 5))  # leaves 5 in the first lot
        later = clock.now() + timedelta(days=2, hours=1)
        assert await ledger.run(lambda s: s.expire_due(later, 10)) == 2
        assert await ledger.run(lambda s: s.expire_due(later, 10)) == 0
        assert await ledger.totals(user) == (30, 30, 30)
        page, total = await ledger.run(
            lambda s: s.transactions(user, _kinds(TransactionKind.EXPIRE), limit=10, offset=0)
        )
        assert total == 2
        assert sorted(t.amount for t in page) == [-20, -5]


async def test_expire_entries_kept_on_lots_read_as_ledger_transactions(database_url: str) -> None:
    start = datetime(2026, 3, 1, 12, tzinfo=UTC)
    clock = FixedClock(start)
    async with ledger_on(database_url, clock) as ledger:
        user, other = await ledger.user(), await ledger.user()
        await ledger.run(lambda s: s.grant(user, 10, expires_at=start + timedelta(days=1)))
        await ledger.run(lambda s: s.grant(other, 5, expires_at=start + timedelta(days=1)))
        clock.current += timedelta(minutes=1)
        await ledger.run(lambda s: s.grant(user, 20, expires_at=start + timedelta(days=2)))
        clock.current += timedelta(hours=1)
        await ledger.run(lambda s: s.spend(user, 4))  # 6 left in the first lot
        first_sweep = start + timedelta(days=1, minutes=1)
        assert await ledger.run(lambda s: s.expire_due(first_sweep, 10)) == 2
        clock.current = first_sweep + timedelta(hours=1)
        await ledger.run(lambda s: s.grant(user, 7))
        second_sweep = start + timedelta(days=2, minutes=1)
        assert await ledger.run(lambda s: s.expire_due(second_sweep, 10)) == 1

        everything, total = await ledger.run(lambda s: s.transactions(user, TransactionFilter(), 100, 0))
        assert total == 6
        assert [(t.kind.value, t.amount, t.created_at) for t in everything] == [
            ("expire", -20, second_sweep),
            ("grant", 7, first_sweep + timedelta(hours=1)),
            ("expire", -6, first_sweep),
            ("spend", -4, start + timedelta(minutes=61)),
            ("grant", 20, start + timedelta(minutes=1)),
            ("grant", 10, start),
        ]
        expire_entries = [t for t in everything if t.kind is TransactionKind.EXPIRE]
        assert {(t.reason, t.reference, t.idempotency_key, t.hold_id) for t in expire_entries} == {
            ("expired", None, None, None)
        }
        async with ledger.sessions() as session:
            expired_lots = await session.execute(
                select(PointLotRecord.id, PointLotRecord.expired_amount, PointLotRecord.expired_at).where(
                    PointLotRecord.user_id == user, PointLotRecord.expired_amount.is_not(None)
                )
            )
            # each entry is its lot: same id, what the lot held when it expired, when it expired
            assert sorted(tuple(row) for row in expired_lots) == sorted(
                (t.id, -t.amount, t.created_at) for t in expire_entries
            )
        assert await ledger.totals(user) == (7, 7, 7)
        assert await ledger.totals(other) == (0, 0, 0)

        # pages of any size are slices of the same order, across both parts of the ledger
        for limit in (1, 2, 4):
            pages = []
            for offset in range(0, 6, limit):
                page, page_total = await ledger.run(
                    lambda s, o=offset, n=limit: s.transactions(user, TransactionFilter(), n, o)
                )
                assert page_total == 6
                pages.extend(page)
            assert pages == everything

        async def listed(filters: TransactionFilter) -> tuple[list[tuple[str, int]], int]:
            page, count = await ledger.run(lambda s: s.transactions(user, filters, 100, 0))
            return [(t.kind.value, t.amount) for t in page], count

        assert await listed(_kinds(TransactionKind.EXPIRE)) == ([("expire", -20), ("expire", -6)], 2)
        assert await listed(_kinds(TransactionKind.GRANT)) == ([("grant", 7), ("grant", 20), ("grant", 10)], 3)
        assert await listed(_kinds(TransactionKind.EXPIRE, TransactionKind.SPEND)) == (
            [("expire", -20), ("expire", -6), ("spend", -4)],
            3,
        )
        window = TransactionFilter(since=first_sweep, until=second_sweep)
        assert await listed(window) == ([("grant", 7), ("expire", -6)], 2)
        late_expiries = TransactionFilter(kinds=frozenset({TransactionKind.EXPIRE}), since=first_sweep + timedelta(1))
        assert await listed(late_expiries) == ([("expire", -20)], 1)
        theirs, their_total = await ledger.run(lambda s: s.transactions(other, TransactionFilter(), 100, 0))
        assert ([(t.kind.value, t.amount) for t in theirs], their_total) == ([("expire", -5), ("grant", 5)], 2)


def _kinds(*kinds: TransactionKind) -> TransactionFilter:
    return TransactionFilter(kinds=frozenset(kinds))


@pytest.mark.postgres
async def test_hundred_simultaneous_spends_of_fifteen_from_a_thousand(pg_url: str) -> None:
    async with ledger_on(pg_url) as ledger:
        user = await ledger.user()
        await ledger.run(lambda s: s.grant(user, 400))
        await ledger.run(lambda s: s.grant(user, 600))

        async def spend() -> bool:
            try:
                await ledger.run(lambda s: s.spend(user, 15))
            except InsufficientPoints:
                return False
            return True

        outcomes = await asyncio.gather(*(spend() for _ in range(100)))
        assert outcomes.count(True) == 66
        assert await ledger.totals(user) == (10, 10, 10)


@pytest.mark.postgres
async def test_one_idempotency_key_sent_twenty_times_at_once_applies_once(pg_url: str) -> None:
    async with ledger_on(pg_url) as ledger:
        user = await ledger.user()
        replies = await asyncio.gather(
            *(ledger.run(lambda s: s.grant(user, 25, reason="bonus", idempotency_key="k-1")) for _ in range(20))
        )
        assert len({reply.id for reply in replies}) == 1
        assert len(set(replies)) == 1
        assert await ledger.totals(user) == (25, 25, 25)


@pytest.mark.postgres
async def test_one_idempotency_key_on_concurrent_spends_applies_once(pg_url: str) -> None:
    async with ledger_on(pg_url) as ledger:
        user = await ledger.user()
        await ledger.run(lambda s: s.grant(user, 100))
        replies = await asyncio.gather(
            *(ledger.run(lambda s: s.spend(user, 60, idempotency_key="spend-1")) for _ in range(10))
        )
        assert len({reply.id for reply in replies}) == 1
        assert await ledger.totals(user) == (40, 40, 40)


@pytest.mark.postgres
async def test_overlapping_expiry_sweeps_expire_every_lot_once(pg_url: str) -> None:
    clock = FixedClock()
    async with ledger_on(pg_url, clock) as ledger:
        users = [await ledger.user() for _ in range(5)]
        for user in users:
            for n in range(40):
                await ledger.run(
                    lambda s, u=user, n=n: s.grant(u, 1 + n % 7, expires_at=clock.now() + timedelta(days=1))
                )
        later = clock.now() + timedelta(days=2)

        async def sweep() -> int:
            total = 0
            while (count := await ledger.run(lambda s: s.expire_due(later, 7))) > 0:
                total += count
            return total

        counts = await asyncio.gather(*(sweep() for _ in range(4)))
        assert sum(counts) == 200
        async with ledger.sessions() as session:
            entries = ledger_entries().subquery()
            expire_entries = (
                await session.execute(select(entries.c.lot_id, entries.c.amount).where(entries.c.kind == "expire"))
            ).all()
            lots = (await session.execute(select(PointLotRecord.id, PointLotRecord.amount))).all()
        # one expire entry per lot, of all it held
        assert sorted((lot_id, -amount) for lot_id, amount in expire_entries) == sorted(lots)
        for user in users:
            assert await ledger.totals(user) == (0, 0, 0)


@pytest.mark.postgres
async def test_a_sweep_with_nothing_due_uses_an_index(pg_url: str) -> None:
    async with ledger_on(pg_url) as ledger, ledger.sessions() as session:
        await session.execute(text("SET enable_seqscan = off"))
        # the very statement of a batch (EXPLAIN does not run it)
        plan = "\n".join(
            row[0]
            for row in await session.execute(
                text(f"EXPLAIN {_EXPIRE_BATCH_POSTGRES.text}"), {"now": datetime.now(UTC), "batch_size": 1000}
            )
        )
        # Either partial index on spendable lots serves it (the planner picks by statistics); never a table scan.
        assert "Seq Scan" not in plan
        assert "ix_point_lots_due" in plan or "ix_point_lots_user_spendable" in plan
        # and the batch reaches its rows by their addresses, not by joining the table on id
        assert "Tid Scan" in plan, plan


@pytest.mark.postgres
async def test_the_ledger_page_reads_both_parts_through_their_indexes(pg_url: str) -> None:
    clock = FixedClock()
    async with ledger_on(pg_url, clock) as ledger:
        user = await ledger.user()
        await ledger.run(lambda s: s.grant(user, 10, expires_at=clock.now() + timedelta(days=1)))
        statements: list[tuple[str, Any]] = []

        def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
            statements.append((statement, parameters))

        event.listen(ledger.engine.sync_engine, "before_cursor_execute", record)
        try:
            await ledger.run(lambda s: s.transactions(user, TransactionFilter(), 20, 0))
        finally:
            event.remove(ledger.engine.sync_engine, "before_cursor_execute", record)
        reads = [(statement, parameters) for statement, parameters in statements if "point_lots" in statement]
        assert len(reads) == 2  # the page, then the count of expire entries
        async with ledger.engine.connect() as connection:
            raw = (await connection.get_raw_connection()).driver_connection
            assert raw is not None
            await raw.execute("SET enable_seqscan = off")
            for statement, parameters in reads:
                plan = "\n".join(row[0] for row in await raw.fetch(f"EXPLAIN {statement}", *parameters))
                assert "Seq Scan" not in plan, plan
                assert "ix_point_lots_user_expired" in plan, plan
            page_plan = "\n".join(row[0] for row in await raw.fetch(f"EXPLAIN {reads[0][0]}", *reads[0][1]))
            assert "ix_point_transactions_user_created" in page_plan, page_plan
