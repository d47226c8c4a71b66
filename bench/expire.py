"""Expiry sweeps over a million due rows on PostgreSQL (QUALITY.md J1, J2).

    .venv/bin/python bench/expire.py [--rows 1000000] [--batch-size 10000]

Two jobs, each on ``rows`` due rows and as many not due: the points-lot sweep and the
coupon sweep. For each it prints the total time, rows per second, the longest batch
transaction, the RSS growth of this process, and the ratio to one raw SQL UPDATE
over the same rows of the same data (run first, inside a transaction that is rolled
back, then vacuumed away, so both see identical tables). It also times a sweep with
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

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    coupon_service,
    fresh_database,
    points_service,
    rss_mb,
    seed_users,
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
    raw_update="UPDATE point_lots SET remaining = 0, expired_at = :now WHERE remaining > 0 AND expires_at <= :now",
    batch=points_batch,
    # The sweep also writes one ledger row per lot, which the raw UPDATE does not:
    # the same work as one unbatched statement shows what batching itself costs.
    same_work=(
        "WITH due AS (SELECT id, user_id, remaining FROM point_lots WHERE remaining > 0 AND expires_at <= :now), "
        "emptied AS (UPDATE point_lots AS lot SET remaining = 0, expired_at = :now FROM due "
        "WHERE lot.id = due.id RETURNING due.id, due.user_id, due.remaining) "
        "INSERT INTO point_transactions (id, user_id, kind, amount, reason, lot_id, created_at) "
        "SELECT gen_random_uuid(), user_id, 'expire', -remaining, 'expired', id, :now FROM emptied"
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


async def main(rows: int, batch_size: int) -> None:
    async with fresh_database() as url:
        engine = create_async_engine(url, pool_size=2)
        try:
            now = datetime.now(UTC)
            print(f"{USERS:,} users", flush=True)
            await seed_users(engine, USERS, now)
            for job in (POINTS, COUPONS):
                await run(job, engine, rows, batch_size, now)
        finally:
            await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=10_000)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.rows, arguments.batch_size))
