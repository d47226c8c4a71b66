"""User statistics over 100,000 users and 1,000,000 tasks on PostgreSQL: ``StatsService.recompute_all``
next to one hand-written SQL statement doing the same aggregation and upsert.

    .venv/bin/python bench/stats.py [--users 100000] [--tasks 1000000] [--rounds 3]

Seeds with set-based SQL: the users, one points hold per task, the tasks (open, taken, completed
with and without a rating, cancelled), 100 activities with 2,000 participants each and three point
lots per user (some used up). A first ``recompute_all`` fills ``user_stats``; then, ``rounds``
times and alternating, the service and the raw statement each rewrite every user's row (the
regime of the job every 10 minutes), each after a ``VACUUM ANALYZE`` so both meet the same table.
Prints each time, the medians and their ratio, the aggregation alone (a SELECT, nothing written),
one user's on-the-spot figures (the read path for a user never computed), and checks that the
service and the raw statement store identical figures. Needs a PostgreSQL server where it may
create a database (BENCH_POSTGRES_URL, default postgresql://postgres@127.0.0.1:5432/postgres);
the database is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

# the repository root in place of bench/, whose http.py would hide the standard library module
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from app.domain.stats.service import StatsService
from app.infra.db.stats import SqlStatsRepository, aggregate_statement
from app.infra.db.unit_of_work import SessionUnitOfWork
from bench.common import SystemClock, fresh_database, rss_mb, seed_users, vacuum_analyze

ACTIVITIES = 100
PARTICIPANTS_PER_ACTIVITY = 2_000

RAW_UPSERT = """
INSERT INTO user_stats (user_id, tasks_posted, tasks_taken, tasks_completed, completion_rate, ratings_count,
                        average_rating, activities_joined, points_balance, computed_at)
SELECT u.id, coalesce(p.posted, 0), coalesce(t.taken, 0), coalesce(t.completed, 0),
       CASE WHEN t.taken > 0 THEN t.completed::float8 / t.taken END,
       coalesce(t.ratings, 0), t.average, coalesce(j.joined, 0), coalesce(b.balance, 0), :now
FROM users AS u
LEFT JOIN (SELECT poster_id, count(*) AS posted FROM tasks GROUP BY poster_id) AS p ON p.poster_id = u.id
LEFT JOIN (SELECT taker_id, count(*) AS taken, count(*) FILTER (WHERE status = 'completed') AS completed,
                  count(rating) AS ratings, avg(rating)::float8 AS average
           FROM tasks WHERE taker_id IS NOT NULL GROUP BY taker_id) AS t ON t.taker_id = u.id
LEFT JOIN (SELECT user_id, count(*) AS joined FROM activity_participants GROUP BY user_id) AS j ON j.user_id = u.id
LEFT JOIN (SELECT user_id, sum(remaining) AS balance FROM point_lots WHERE remaining > 0 GROUP BY user_id) AS b
       ON b.user_id = u.id
ON CONFLICT (user_id) DO UPDATE SET
    tasks_posted = EXCLUDED.tasks_posted, tasks_taken = EXCLUDED.tasks_taken,
    tasks_completed = EXCLUDED.tasks_completed, completion_rate = EXCLUDED.completion_rate,
    ratings_count = EXCLUDED.ratings_count, average_rating = EXCLUDED.average_rating,
    activities_joined = EXCLUDED.activities_joined, points_balance = EXCLUDED.points_balance,
    computed_at = EXCLUDED.computed_at
"""

# The n-th row's owner among the numbered users, and a taker who is never the poster (1..997 further on).
SEED_TASKS = """
INSERT INTO tasks (id, poster_id, taker_id, title, description, category, reward_points, held_points, hold_id,
                   deadline, status, rating, cancel_reason, taken_at, completed_at, cancelled_at,
                   created_at, updated_at)
SELECT s.task_id, poster.id,
       CASE WHEN s.n % 10 IN (4, 5, 6, 7, 8) OR (s.n % 10 = 9 AND s.n % 20 = 9) THEN taker.id END,
       'Bench task', 'Seeded.', 'bench', 10, 10, s.hold_id, CAST(:now AS timestamptz) + interval '7 days',
       CASE WHEN s.n % 10 < 4 THEN 'open' WHEN s.n % 10 = 4 THEN 'taken'
            WHEN s.n % 10 < 9 THEN 'completed' ELSE 'cancelled' END,
       CASE WHEN s.n % 10 IN (5, 6, 7) THEN 1 + s.n % 5 END,
       CASE WHEN s.n % 10 = 9 THEN 'poster' END,
       CASE WHEN s.n % 10 BETWEEN 4 AND 8 THEN :now END,
       CASE WHEN s.n % 10 BETWEEN 5 AND 8 THEN :now END,
       CASE WHEN s.n % 10 = 9 THEN :now END,
       :now, :now
FROM seed AS s
JOIN numbered AS poster ON poster.k = s.n % :users
JOIN numbered AS taker ON taker.k = (s.n + 1 + s.n % 997) % :users
"""


async def seed(engine: AsyncEngine, users: int, tasks: int, now: datetime) -> None:
    """Everything in one connection (its temporary tables), in set-based statements."""
    await seed_users(engine, users, now)
    async with engine.begin() as connection:

        async def run(statement: str, **params: object) -> None:
            await connection.execute(text(statement), {"now": now, "users": users, "tasks": tasks, **params})

        await run("CREATE TEMP TABLE numbered AS SELECT id, row_number() OVER (ORDER BY id) - 1 AS k FROM users")
        await run("CREATE UNIQUE INDEX ON numbered (k)")
        await run(
            "CREATE TEMP TABLE seed AS SELECT n, gen_random_uuid() AS task_id, gen_random_uuid() AS hold_id "
            "FROM generate_series(1, :tasks) AS n"
        )
        await run(
            "INSERT INTO point_holds (id, user_id, amount, status, reference, allocations, created_at) "
            "SELECT s.hold_id, poster.id, 10, 'held', 'bench', '[]', :now "
            "FROM seed AS s JOIN numbered AS poster ON poster.k = s.n % :users"
        )
        await run(SEED_TASKS)
        await run(
            "INSERT INTO activities (id, creator_id, title, description, starts_at, ends_at, capacity, reward_points, "
            "participant_count, state, created_at, updated_at) "
            "SELECT gen_random_uuid(), creator.id, 'Bench activity ' || a, 'Seeded.', "
            "CAST(:now AS timestamptz) + interval '1 day', CAST(:now AS timestamptz) + interval '2 days', "
            ":per, 10, :per, 'scheduled', :now, :now "
            "FROM generate_series(0, :activities - 1) AS a JOIN numbered AS creator ON creator.k = a",
            per=PARTICIPANTS_PER_ACTIVITY,
            activities=ACTIVITIES,
        )
        await run(
            "INSERT INTO activity_participants (activity_id, user_id, joined_at) "
            "SELECT a.id, member.id, :now "
            "FROM (SELECT id, row_number() OVER (ORDER BY id) - 1 AS i FROM activities) AS a "
            "CROSS JOIN generate_series(0, :per - 1) AS m "
            "JOIN numbered AS member ON member.k = (a.i * 997 + m) % :users",
            per=PARTICIPANTS_PER_ACTIVITY,
        )
        await run(
            "INSERT INTO point_lots (id, user_id, amount, remaining, expires_at, created_at) "
            "SELECT gen_random_uuid(), u.id, 100, (u.k + lot * 37) % 101, "
            "CAST(:now AS timestamptz) + interval '300 days', :now "
            "FROM numbered AS u CROSS JOIN generate_series(1, 3) AS lot"
        )


async def timed(call: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await call()
    return time.perf_counter() - started


async def main(users: int, tasks: int, rounds: int) -> None:
    async with fresh_database() as url:
        engine = create_async_engine(url, pool_size=2)
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        try:
            now = datetime.now(UTC)
            started = time.perf_counter()
            await seed(engine, users, tasks, now)
            await vacuum_analyze(engine)
            print(
                f"seeded {users:,} users, {tasks:,} tasks (+ their holds), {ACTIVITIES} activities x "
                f"{PARTICIPANTS_PER_ACTIVITY:,} participants, {3 * users:,} point lots in "
                f"{time.perf_counter() - started:.1f} s",
                flush=True,
            )

            async def service() -> int:
                async with sessions() as session:
                    stats = StatsService(SqlStatsRepository(session), SessionUnitOfWork(session), SystemClock())
                    return await stats.recompute_all()

            async def raw() -> None:
                async with engine.begin() as connection:
                    await connection.execute(text(RAW_UPSERT), {"now": datetime.now(UTC)})

            async def aggregate_only() -> None:
                async with engine.connect() as connection:
                    await connection.execute(aggregate_statement(datetime.now(UTC)))

            rss_before = rss_mb()
            first = await timed(service)
            print(f"first recompute_all (inserts {users:,} rows): {first:.2f} s", flush=True)
            service_times, raw_times, select_times = [], [], []
            for _ in range(rounds):
                for call, times in ((service, service_times), (raw, raw_times), (aggregate_only, select_times)):
                    await vacuum_analyze(engine, "user_stats")
                    times.append(await timed(call))
            for name, times in (
                ("recompute_all (service)", service_times),
                ("hand-written upsert", raw_times),
                ("aggregation alone (SELECT)", select_times),
            ):
                print(
                    f"{name}: " + ", ".join(f"{t:.2f}" for t in times) + f" s; median {statistics.median(times):.2f} s"
                )
            ratio = statistics.median(service_times) / statistics.median(raw_times)
            print(f"ratio service / hand-written: {ratio:.2f}; RSS growth {rss_mb() - rss_before:.1f} MB", flush=True)

            async with engine.connect() as connection:
                someone = (
                    await connection.execute(
                        text("SELECT id FROM users ORDER BY id LIMIT 1 OFFSET :middle"), {"middle": users // 2}
                    )
                ).scalar_one()
            lookups = []
            for _ in range(20):
                async with sessions() as session:
                    repository = SqlStatsRepository(session)
                    lookups.append(await timed(lambda r=repository: r.compute_for(someone, datetime.now(UTC))))
            print(f"one user's figures on the spot (compute_for): median {statistics.median(lookups) * 1000:.1f} ms")

            # the same figures either way: store the service's, then compare with the raw statement's
            async with engine.begin() as connection:
                await connection.execute(text("CREATE TABLE raw_stats AS SELECT * FROM user_stats WHERE false"))
            await service()
            async with engine.begin() as connection:
                await connection.execute(text("INSERT INTO raw_stats SELECT * FROM user_stats"))
                await connection.execute(text(RAW_UPSERT), {"now": now})
                differing = (
                    await connection.execute(
                        text(
                            "SELECT count(*) FROM user_stats AS s JOIN raw_stats AS r USING (user_id) "
                            "WHERE (s.tasks_posted, s.tasks_taken, s.tasks_completed, s.completion_rate, "
                            "s.ratings_count, s.average_rating, s.activities_joined, s.points_balance) IS DISTINCT "
                            "FROM (r.tasks_posted, r.tasks_taken, r.tasks_completed, r.completion_rate, "
                            "r.ratings_count, r.average_rating, r.activities_joined, r.points_balance)"
                        )
                    )
                ).scalar_one()
                totals = (
                    await connection.execute(
                        text(
                            "SELECT sum(tasks_posted), sum(tasks_taken), sum(tasks_completed), sum(activities_joined), "
                            "sum(points_balance) FROM user_stats"
                        )
                    )
                ).one()
            print(
                f"rows whose figures differ between the two: {differing} "
                f"(totals: posted {totals[0]:,}, taken {totals[1]:,}, completed {totals[2]:,}, "
                f"joined {totals[3]:,}, points {totals[4]:,})",
                flush=True,
            )
            if differing:
                sys.exit(1)
        finally:
            await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.users, arguments.tasks, arguments.rounds))
