"""Chat assignment: one run of the job over 1,000 waiting chats and 50 online agents (QUALITY.md C1).

    .venv/bin/python bench/assign.py [--chats 1000] [--agents 50] [--repeats 3]

For each maximum of concurrent chats per agent (25: room for every chat; 5, the default
setting: room for a quarter of them) and each repeat, a freshly seeded database holds
``chats`` waiting chats (queued a second apart, one user each) and ``agents`` online
agents with no chats. One ``SupportService.assign_waiting`` run, in its own session and
transaction and with its commit, is timed. Prints the run time, the statements it sent,
the chats assigned, the agents' loads (min/max), whether the earliest chats were the ones
served, and [ok]/[MISSED] against the bar (run < 1 s, loads within 1 of each other).
Needs a PostgreSQL server where it may create a database (BENCH_POSTGRES_URL, default
postgresql://postgres@127.0.0.1:5432/postgres); the database is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

# the repository root in place of bench/, whose http.py would hide the standard library module
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from app.domain.shared.events import DiscardEvents
from app.domain.support.model import SupportPolicy
from app.domain.support.service import SupportService
from app.infra.db.support import SqlAgentRepository, SqlChatRepository
from app.infra.db.unit_of_work import SessionUnitOfWork
from bench.common import SystemClock, fresh_database, verdict

BAR_SECONDS = 1.0


async def seed(engine: AsyncEngine, chats: int, agents: int, max_chats: int, now: datetime) -> None:
    """An empty schema, then ``agents`` online agents and ``chats`` waiting chats of as many users."""
    async with engine.begin() as connection:
        await connection.execute(text("TRUNCATE support_messages, support_chats, support_agents, users CASCADE"))
        await connection.execute(
            text(
                "INSERT INTO users (id, email, username, username_key, password_hash, role, is_active, "
                "created_at, updated_at) SELECT gen_random_uuid(), kind || n || '@example.com', kind || n, "
                "kind || n, 'x', CASE kind WHEN 'agent' THEN 'agent' ELSE 'user' END, true, :now, :now "
                "FROM (VALUES ('agent', CAST(:agents AS integer)), ('user', CAST(:chats AS integer))) "
                "AS k(kind, total), "
                "generate_series(1, total) AS n"
            ),
            {"now": now, "agents": agents, "chats": chats},
        )
        await connection.execute(
            text(
                "INSERT INTO support_agents (id, user_id, status, max_chats, status_changed_at, updated_at) "
                "SELECT gen_random_uuid(), id, 'online', :max_chats, :now, :now FROM users WHERE role = 'agent'"
            ),
            {"now": now, "max_chats": max_chats},
        )
        await connection.execute(
            text(
                "INSERT INTO support_chats (id, user_id, status, queued_at, last_activity_at, last_seq, "
                "user_read_seq, agent_read_seq, created_at, updated_at) "
                "SELECT gen_random_uuid(), id, 'waiting', q, q, 0, 0, 0, q, q FROM ("
                "  SELECT id, CAST(:start AS timestamptz) + make_interval(secs => row_number() OVER (ORDER BY id)) AS q"
                "  FROM users WHERE role = 'user') AS queued"
            ),
            {"start": now - timedelta(seconds=chats + 1)},
        )
    async with engine.connect() as connection:
        await connection.execute(text("COMMIT"))
        await connection.execute(text("VACUUM ANALYZE"))


async def one_run(engine: AsyncEngine, policy: SupportPolicy) -> tuple[float, int, int]:
    """(seconds, statements sent, chats assigned) of one job run with its commit."""
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    statements = 0

    def count(*_: Any) -> None:
        nonlocal statements
        statements += 1

    async with sessions() as session:
        await session.execute(text("SELECT 1"))  # a warm connection: the run does not pay for connecting
        await session.commit()
        service = SupportService(
            SqlChatRepository(session),
            SqlAgentRepository(session),
            SessionUnitOfWork(session),
            SystemClock(),
            DiscardEvents(),
            policy,
        )
        event.listen(engine.sync_engine, "before_cursor_execute", count)
        try:
            started = time.perf_counter()
            assigned = await service.assign_waiting(datetime.now(UTC))
            seconds = time.perf_counter() - started
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", count)
    return seconds, statements, assigned


async def check(engine: AsyncEngine, agents: int) -> tuple[int, int, bool]:
    """(least, most chats held by an online agent, whether the assigned chats are the queue's head)."""
    async with engine.connect() as connection:
        rows = (
            await connection.execute(
                text(
                    "SELECT a.user_id, count(c.id) FROM support_agents a LEFT JOIN support_chats c "
                    "ON c.agent_id = a.user_id AND c.status = 'assigned' GROUP BY a.user_id"
                )
            )
        ).all()
        head = (
            await connection.execute(
                text(
                    "SELECT coalesce(max(queued_at) FILTER (WHERE status = 'assigned'), '-infinity') "
                    "< coalesce(min(queued_at) FILTER (WHERE status = 'waiting'), 'infinity') FROM support_chats"
                )
            )
        ).scalar_one()
    loads = Counter({row[0]: row[1] for row in rows})
    assert len(loads) == agents
    return min(loads.values()), max(loads.values()), bool(head)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chats", type=int, default=1000)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    met = True
    async with fresh_database() as url:
        engine = create_async_engine(url, pool_size=2, max_overflow=0)
        try:
            for max_chats in (25, 5):
                policy = SupportPolicy(
                    max_chats_per_agent=max_chats,
                    answer_timeout=timedelta(minutes=5),
                    idle_timeout=timedelta(minutes=15),
                    inactive_after=timedelta(days=7),
                    retention=timedelta(days=90),
                )
                print(
                    f"{args.chats:,} waiting chats, {args.agents} online agents, at most {max_chats} chats each "
                    f"(room for {min(args.chats, args.agents * max_chats):,}):"
                )
                times = []
                for repeat in range(1, args.repeats + 1):
                    await seed(engine, args.chats, args.agents, max_chats, datetime.now(UTC))
                    seconds, statements, assigned = await one_run(engine, policy)
                    least, most, head = await check(engine, args.agents)
                    expected = min(args.chats, args.agents * max_chats)
                    ok = seconds < BAR_SECONDS and most - least <= 1 and assigned == expected and head
                    met = met and ok
                    times.append(seconds)
                    print(
                        f"  run {repeat}: {seconds * 1000:.0f} ms, {statements} statements, assigned {assigned:,}; "
                        f"loads min {least} max {most}; earliest chats served first: {'yes' if head else 'no'} "
                        f"[bars: run < 1 s, loads within 1: {verdict(ok)}]"
                    )
                print(f"  median {statistics.median(times) * 1000:.0f} ms, slowest {max(times) * 1000:.0f} ms")
        finally:
            await engine.dispose()
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
