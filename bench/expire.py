"""Expiry sweeps over a million due rows on PostgreSQL (QUALITY.md J1, J2).

    .venv/bin/python bench/expire.py [--rows 1000000] [--batch-size 10000]
                                     [--task-rows 100000] [--task-batch-size 1000]

Three jobs, each on its due rows and as many not due: the points-lot sweep and the coupon
sweep (``rows`` each), and the task sweep (``task-rows``, in batches of ``task-batch-size``:
each expired task gives its hold back and notifies its poster: a few statements per batch;
1,000 is the jobs' default batch size).
For each it prints the total time, rows per second, the longest batch transaction, the RSS
growth of this process, and the ratio to one raw SQL UPDATE over the same rows of the same
data (run first, inside a transaction that is rolled back, then vacuumed away, so both see
identical tables), and, where the sweep writes more than that UPDATE, to one unbatched
statement doing the same work. It checks the outcome with SQL, and times a sweep with
nothing due, right after the big one.
Needs a PostgreSQL server where it may create a database (BENCH_POSTGRES_URL,
default postgresql://postgres@127.0.0.1:5432/postgres); the database is dropped
at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import BigInteger, Integer, bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

# the repository root in place of bench/, whose http.py would hide the standard library module
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.common import (
    coupon_service,
    fresh_database,
    points_service,
    rss_mb,
    seed_users,
    task_service,
    vacuum_analyze,
    verdict,
)

USERS = 10_000
TEMPLATES = 4


@dataclass
class SweepResult:
    rows: int
    seconds: float
    longest_batch: float
    rss_growth_mb: float


@dataclass(frozen=True)
class Job:
    """One expiry sweep: what it works on, how that is seeded, the raw statement it is compared with, one batch."""

    name: str
    seeded: str
    seed: Callable[[AsyncEngine, int, datetime], Awaitable[None]]
    raw_update: str
    batch: Callable[[AsyncSession, datetime, int], Awaitable[int]]
    # when the sweep writes more than the raw UPDATE: one unbatched statement doing all of it
    same_work: str | None = None
    # after the sweep: rows of (what, found, expected), given :rows and :due (the due rows) and :now
    check: str | None = None


# --- seeding ----------------------------------------------------------------------------

# For the n-th generated row: its expiry (due ones spread over the last 1,000 minutes, so that rows next
# to each other in the table expire far apart; the others in 30 days) and its owner (the users in turn).
EXPIRES_AT = (
    "CASE WHEN :due THEN CAST(:now AS timestamptz) - (n % 1000) * interval '1 minute' "
    "ELSE CAST(:now AS timestamptz) + interval '30 days' END"
)
OWNER = "JOIN (SELECT id, row_number() OVER () - 1 AS k FROM users) AS u ON u.k = n % :users"


async def insert_due_and_not_due(connection: AsyncConnection, statement: str, rows: int, now: datetime) -> None:
    """Run a set-based ``INSERT ... SELECT ... FROM generate_series(1, :rows) AS n`` for due rows, then not due."""
    for due in (True, False):
        await connection.execute(text(statement), {"due": due, "now": now, "rows": rows, "users": USERS})


# --- points lots ------------------------------------------------------------------------


async def seed_point_lots(engine: AsyncEngine, rows: int, now: datetime) -> None:
    """``rows`` due lots and as many not due, spread over the users."""
    async with engine.begin() as connection:
        await insert_due_and_not_due(
            connection,
            "INSERT INTO point_lots (id, user_id, amount, remaining, expires_at, created_at) "
            f"SELECT gen_random_uuid(), u.id, 10, 1 + (n % 10), {EXPIRES_AT}, :now "
            f"FROM generate_series(1, :rows) AS n {OWNER}",
            rows,
            now,
        )


async def points_batch(session: AsyncSession, now: datetime, batch_size: int) -> int:
    return await points_service(session).expire_due(now, batch_size)


POINTS = Job(
    name="points lots",
    seeded="point lots",
    seed=seed_point_lots,
    # the same work as the sweep: a lot's expire entry is kept on the lot, so emptying it is all there is
    raw_update=(
        "UPDATE point_lots SET expired_amount = remaining, remaining = 0, expired_at = :now "
        "WHERE remaining > 0 AND expires_at <= :now"
    ),
    batch=points_batch,
    check=(
        "SELECT 'expire entries', count(*), :due FROM point_lots WHERE expired_amount IS NOT NULL "
        "UNION ALL SELECT 'points they hold', sum(expired_amount), "
        "(SELECT sum(1 + n % 10) FROM generate_series(1, CAST(:rows AS integer)) AS n) FROM point_lots "
        "UNION ALL SELECT 'due lots left', count(*), 0 FROM point_lots WHERE remaining > 0 AND expires_at <= :now"
    ),
)


# --- coupons ----------------------------------------------------------------------------


async def seed_coupons(engine: AsyncEngine, rows: int, now: datetime) -> None:
    """A few open templates, and ``rows`` claimed coupons past their expiry and as many still valid."""
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO coupon_templates (id, name, kind, value, total_quantity, per_user_limit, claimed_count, "
                "valid_from, valid_until, coupon_valid_days, status, created_at, updated_at) "
                "SELECT gen_random_uuid(), 'Bench ' || n, 'points_bonus', 10, :total, 1000, 0, "
                "CAST(:now AS timestamptz) - interval '90 days', CAST(:now AS timestamptz) + interval '30 days', "
                "30, 'active', :now, :now FROM generate_series(1, :templates) AS n"
            ),
            {"now": now, "templates": TEMPLATES, "total": 2 * rows},
        )
        await insert_due_and_not_due(
            connection,
            "INSERT INTO coupons (id, template_id, owner_id, name, kind, value, status, claimed_at, expires_at) "
            "SELECT gen_random_uuid(), t.id, u.id, t.name, t.kind, t.value, 'claimed', "
            "e.expires_at - interval '30 days', e.expires_at "
            f"FROM generate_series(1, :rows) AS n CROSS JOIN LATERAL (SELECT {EXPIRES_AT} AS expires_at) AS e {OWNER} "
            f"JOIN (SELECT *, row_number() OVER () - 1 AS k FROM coupon_templates) AS t ON t.k = n % {TEMPLATES}",
            rows,
            now,
        )
        await connection.execute(
            text(
                "UPDATE coupon_templates AS t SET claimed_count = "
                "(SELECT count(*) FROM coupons AS c WHERE c.template_id = t.id)"
            )
        )


async def coupons_batch(session: AsyncSession, now: datetime, batch_size: int) -> int:
    return await coupon_service(session).expire_due(now, batch_size)


COUPONS = Job(
    name="coupons",
    seeded=f"claimed coupons of {TEMPLATES} templates",
    seed=seed_coupons,
    raw_update=(
        "UPDATE coupons SET status = 'expired', expired_at = :now WHERE status = 'claimed' AND expires_at <= :now"
    ),
    batch=coupons_batch,
    check=(
        "SELECT 'coupons expired', count(*), :due FROM coupons "
        "WHERE status = 'expired' AND expired_at = :now "
        "UNION ALL SELECT 'due coupons left', count(*), 0 FROM coupons WHERE status = 'claimed' AND expires_at <= :now"
    ),
)


# --- tasks -----------------------------------------------------------------------------

TASK_REWARD = 50


async def seed_tasks(engine: AsyncEngine, rows: int, now: datetime) -> None:
    """``rows`` open tasks past their deadline and as many still open, each with its reward held.

    Consistent as the service would leave it: each poster was granted the reward (a grant and a lot),
    then posted the task, which held all of it (a hold transaction, the lot emptied, a held hold whose
    allocation names the lot and its expiry). Without coupons.
    """
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "CREATE TEMPORARY TABLE bench_tasks ON COMMIT DROP AS "
                "SELECT n, u.id AS poster_id, gen_random_uuid() AS task_id, gen_random_uuid() AS hold_id, "
                "gen_random_uuid() AS lot_id, CAST(:now AS timestamptz) + interval '365 days' AS lot_expires_at, "
                "CASE WHEN n <= :rows THEN CAST(:now AS timestamptz) - (n % 1000) * interval '1 minute' "
                "ELSE CAST(:now AS timestamptz) + interval '30 days' END AS deadline "
                f"FROM generate_series(1, 2 * :rows) AS n {OWNER}"
            ),
            {"now": now, "rows": rows, "users": USERS},
        )
        for statement in (
            "INSERT INTO point_lots (id, user_id, amount, remaining, expires_at, created_at) "
            "SELECT lot_id, poster_id, :reward, 0, lot_expires_at, :now FROM bench_tasks",
            "INSERT INTO point_transactions (id, user_id, kind, amount, reason, created_at) "
            "SELECT gen_random_uuid(), poster_id, 'grant', :reward, 'bench', :now FROM bench_tasks",
            "INSERT INTO point_transactions (id, user_id, kind, amount, reason, reference, hold_id, created_at) "
            "SELECT gen_random_uuid(), poster_id, 'hold', -:reward, 'hold', 'task:' || task_id, hold_id, :now "
            "FROM bench_tasks",
            "INSERT INTO point_holds (id, user_id, amount, status, reference, allocations, created_at) "
            "SELECT hold_id, poster_id, :reward, 'held', 'task:' || task_id, "
            "json_build_array(json_build_object('lot_id', lot_id, 'amount', :reward, 'expires_at', lot_expires_at)), "
            ":now FROM bench_tasks",
            "INSERT INTO tasks (id, poster_id, title, description, category, reward_points, held_points, hold_id, "
            "deadline, status, created_at, updated_at) "
            "SELECT task_id, poster_id, 'Bench task ' || n, 'Seeded.', 'bench', :reward, :reward, hold_id, deadline, "
            "'open', :now, :now FROM bench_tasks",
        ):
            # the reward typed, so that PostgreSQL need not guess what ``-:reward`` is
            await connection.execute(
                text(statement).bindparams(bindparam("reward", TASK_REWARD, type_=Integer)), {"now": now}
            )


async def tasks_batch(session: AsyncSession, now: datetime, batch_size: int) -> int:
    return await task_service(session).cancel_expired(now, batch_size)


TASKS = Job(
    name="tasks",
    seeded="open tasks with their rewards held",
    seed=seed_tasks,
    raw_update=(
        "UPDATE tasks SET status = 'cancelled', cancel_reason = 'expired', cancelled_at = :now, updated_at = :now "
        "WHERE status = 'open' AND deadline <= :now"
    ),
    batch=tasks_batch,
    check=(
        "SELECT 'tasks cancelled as expired', count(*), :due FROM tasks WHERE cancel_reason = 'expired' "
        "UNION ALL SELECT 'holds released', count(*), :due FROM point_holds WHERE status = 'released' "
        "UNION ALL SELECT 'release transactions', count(*), :due FROM point_transactions WHERE kind = 'release' "
        "UNION ALL SELECT 'points back in lots with their expiry', count(*), :due FROM point_lots "
        "WHERE created_at > :now AND remaining = amount AND amount = 50 "
        "AND expires_at = CAST(:now AS timestamptz) + interval '365 days' "
        "UNION ALL SELECT 'posters notified', count(*), :due FROM notifications WHERE kind = 'task_expired' "
        "UNION ALL SELECT 'open tasks past deadline left', count(*), 0 FROM tasks "
        "WHERE status = 'open' AND deadline <= :now"
    ),
    # The sweep also gives each hold back (hold released, a release transaction, the points back as a lot
    # with the expiry they had) and notifies the poster, which the raw UPDATE does not: the same work as
    # one unbatched statement.
    same_work=(
        "WITH cancelled AS (UPDATE tasks SET status = 'cancelled', cancel_reason = 'expired', cancelled_at = :now, "
        "updated_at = :now WHERE status = 'open' AND deadline <= :now RETURNING id, poster_id, hold_id, title), "
        "released AS (UPDATE point_holds AS h SET status = 'released', settled_at = :now FROM cancelled AS c "
        "WHERE h.id = c.hold_id AND h.status = 'held' RETURNING h.id, h.user_id, h.amount, h.reference, "
        "h.allocations), "
        "ledger AS (INSERT INTO point_transactions (id, user_id, kind, amount, reason, reference, hold_id, "
        "created_at) SELECT gen_random_uuid(), user_id, 'release', amount, 'release', reference, id, :now "
        "FROM released), "
        "lots AS (INSERT INTO point_lots (id, user_id, amount, remaining, expires_at, created_at) "
        "SELECT gen_random_uuid(), r.user_id, (a ->> 'amount')::int, (a ->> 'amount')::int, "
        "(a ->> 'expires_at')::timestamptz, :now FROM released AS r, json_array_elements(r.allocations) AS a) "
        "INSERT INTO notifications (id, user_id, kind, payload, created_at) "
        "SELECT gen_random_uuid(), poster_id, 'task_expired', "
        "json_build_object('task_id', id::text, 'title', title), :now FROM cancelled"
    ),
)


# --- measuring --------------------------------------------------------------------------


async def raw_update_seconds(engine: AsyncEngine, statement: str, now: datetime) -> float:
    """One plain UPDATE over the due rows, rolled back so the sweep then sees the same data."""
    async with engine.connect() as connection:
        transaction = await connection.begin()
        started = time.perf_counter()
        await connection.execute(text(statement), {"now": now})
        elapsed = time.perf_counter() - started
        await transaction.rollback()
    return elapsed


async def sweep(batch: Callable[[], Awaitable[int]], batch_size: int) -> SweepResult:
    rss_before = rss_mb()
    longest = 0.0
    total = 0
    started = time.perf_counter()
    while True:
        batch_started = time.perf_counter()
        count = await batch()
        longest = max(longest, time.perf_counter() - batch_started)
        total += count
        if count < batch_size:
            break
    return SweepResult(total, time.perf_counter() - started, longest, rss_mb() - rss_before)


async def idle_median_ms(batch: Callable[[], Awaitable[int]], runs: int = 20) -> float:
    idle = []
    for _ in range(runs):
        started = time.perf_counter()
        await batch()
        idle.append(time.perf_counter() - started)
    idle.sort()
    return idle[len(idle) // 2] * 1000


def report(name: str, result: SweepResult, raw_seconds: float, same_work_seconds: float | None = None) -> None:
    ratio = result.seconds / raw_seconds
    same_work = (
        ""
        if same_work_seconds is None
        else (
            f"; unbatched statement doing the same work {same_work_seconds:.2f} s "
            f"(ratio {result.seconds / same_work_seconds:.2f})"
        )
    )
    print(
        f"{name}: {result.rows} rows in {result.seconds:.2f} s ({result.rows / result.seconds:,.0f} rows/s); "
        f"longest batch {result.longest_batch * 1000:.0f} ms; RSS growth {result.rss_growth_mb:.1f} MB; "
        f"raw UPDATE {raw_seconds:.2f} s; ratio {ratio:.2f}{same_work} "
        f"[bars: ratio <= 1.5 {verdict(ratio <= 1.5)}, batch < 1 s {verdict(result.longest_batch < 1)}, "
        f"RSS < 100 MB {verdict(result.rss_growth_mb < 100)}]",
        flush=True,
    )


async def check(engine: AsyncEngine, job: Job, rows: int, now: datetime) -> None:
    assert job.check is not None
    async with engine.connect() as connection:
        # :due is :rows typed as count(*) is, so that the rows of a UNION agree
        statement = text(job.check).bindparams(bindparam("due", rows, type_=BigInteger))
        found = (await connection.execute(statement, {"rows": rows, "now": now})).all()
    figures = ", ".join(f"{what} {value:,} of {expected:,}" for what, value, expected in found)
    print(
        f"{job.name}, check: {figures} [{verdict(all(value == expected for _, value, expected in found))}]", flush=True
    )


async def run(job: Job, engine: AsyncEngine, rows: int, batch_size: int, now: datetime) -> None:
    print(f"seeding {rows:,} due and {rows:,} not-due {job.seeded} ...", flush=True)
    await job.seed(engine, rows, now)
    await vacuum_analyze(engine)
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def batch() -> int:
        async with sessions() as session:
            return await job.batch(session, now, batch_size)

    raw = await raw_update_seconds(engine, job.raw_update, now)
    same_work = None if job.same_work is None else await raw_update_seconds(engine, job.same_work, now)
    # The rolled-back statements leave a dead version of every due row behind (and index entries
    # to it); without this the sweep would pay for cleaning them up, which the raw UPDATE never did.
    await vacuum_analyze(engine)
    report(job.name, await sweep(batch, batch_size), raw, same_work)
    if job.check is not None:
        await check(engine, job, rows, now)
    # Right after the sweep the due index still holds an entry for every row just expired, which a
    # sweep finding nothing steps over until VACUUM (autovacuum, where it is on) removes them.
    after_sweep = await idle_median_ms(batch)
    await vacuum_analyze(engine)
    vacuumed = await idle_median_ms(batch)
    print(
        f"{job.name}, nothing due: median {after_sweep:.2f} ms right after the sweep "
        f"[bar < 5 ms {verdict(after_sweep < 5)}], {vacuumed:.2f} ms once vacuumed "
        f"[bar < 5 ms {verdict(vacuumed < 5)}]",
        flush=True,
    )


async def main(rows: int, batch_size: int, task_rows: int, task_batch_size: int) -> None:
    async with fresh_database() as url:
        engine = create_async_engine(url, pool_size=2)
        try:
            now = datetime.now(UTC)
            print(f"{USERS:,} users", flush=True)
            await seed_users(engine, USERS, now)
            for job in (POINTS, COUPONS):
                await run(job, engine, rows, batch_size, now)
            await run(TASKS, engine, task_rows, task_batch_size, now)
        finally:
            await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--task-rows", type=int, default=100_000)
    parser.add_argument("--task-batch-size", type=int, default=1000)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.rows, arguments.batch_size, arguments.task_rows, arguments.task_batch_size))
