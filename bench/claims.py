"""Claims per second on one hot coupon template, with the exact-count check (QUALITY.md R2).

    .venv/bin/python bench/claims.py [--users 2000] [--total 1000] [--clients 16]

A fresh database with ``users`` users and one template of ``total`` coupons, at most one
per user. ``clients`` concurrent clients each loop: pick a user at random, claim through
the real CouponService in a session of its own (one per attempt, like concurrent requests),
until the template is sold out. Users repeat, so some attempts meet the per-user limit.

Prints the attempts and their outcomes, claims per second, the CPU this client process
used (all clients share one event loop, as in one application worker), p50/p99 latency of
an attempt and of a successful claim, and checks with SQL that the coupons issued equal
the total and that no user holds more than the limit (exit status 1 when not). Bounded:
at most ``--max-seconds`` and 20 attempts per coupon on offer. Needs a PostgreSQL server
where it may create a database (BENCH_POSTGRES_URL, default
postgresql://postgres@127.0.0.1:5432/postgres); the database is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

# the repository root in place of bench/, whose http.py would hide the standard library module
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from app.domain.coupons.model import CouponKind, CouponValidity, TemplateDraft
from app.domain.shared.errors import DomainError
from app.domain.users.model import Principal, Role
from bench.common import coupon_service, fresh_database, percentile, seed_users

ATTEMPTS_PER_COUPON = 20
CLAIMED = "claimed"
SOLD_OUT = "sold_out"


@dataclass
class Tally:
    """What every client saw, in one place (the clients run on one event loop)."""

    outcomes: Counter[str] = field(default_factory=Counter)
    attempt_seconds: list[float] = field(default_factory=list)
    claim_seconds: list[float] = field(default_factory=list)

    @property
    def attempts(self) -> int:
        return len(self.attempt_seconds)

    def record(self, outcome: str, seconds: float) -> None:
        self.outcomes[outcome] += 1
        self.attempt_seconds.append(seconds)
        if outcome == CLAIMED:
            self.claim_seconds.append(seconds)


async def attempt(claim: Callable[[uuid.UUID], Awaitable[object]], user: uuid.UUID) -> str:
    """One claim; its outcome: ``claimed`` or the code of the domain error that refused it."""
    try:
        await claim(user)
    except DomainError as error:
        return error.code
    return CLAIMED


async def client(
    claim: Callable[[uuid.UUID], Awaitable[object]],
    users: list[uuid.UUID],
    rng: random.Random,
    tally: Tally,
    deadline: float,
    max_attempts: int,
) -> None:
    """Claim for random users until the template is sold out (or a bound is reached)."""
    while time.perf_counter() < deadline and tally.attempts < max_attempts:
        user = rng.choice(users)
        started = time.perf_counter()
        outcome = await attempt(claim, user)
        tally.record(outcome, time.perf_counter() - started)
        if outcome == SOLD_OUT:
            return


async def create_template(engine: AsyncEngine, total: int, per_user_limit: int) -> uuid.UUID:
    """Published by an admin through the service, as the API does."""
    now = datetime.now(UTC)
    draft = TemplateDraft(
        name="Hot deal",
        kind=CouponKind.POINTS_BONUS,
        value=10,
        total_quantity=total,
        per_user_limit=per_user_limit,
        valid_from=now - timedelta(minutes=1),
        valid_until=now + timedelta(days=1),
        validity=CouponValidity(days=30),
    )
    admin = Principal(id=uuid.uuid4(), username="bench-admin", role=Role.ADMIN)
    async with async_sessionmaker(engine)() as session:
        return (await coupon_service(session).create_template(admin, draft)).id


async def exact_count(engine: AsyncEngine, template_id: uuid.UUID) -> tuple[int, int, int]:
    """(coupons issued, the template's claimed_count, the most coupons any one user holds), read with SQL."""
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                text(
                    "SELECT (SELECT count(*) FROM coupons WHERE template_id = :t), "
                    "(SELECT claimed_count FROM coupon_templates WHERE id = :t), "
                    "(SELECT coalesce(max(held), 0) FROM "
                    "(SELECT count(*) AS held FROM coupons WHERE template_id = :t GROUP BY owner_id) AS per_user)"
                ),
                {"t": template_id},
            )
        ).one()
    return int(row[0]), int(row[1]), int(row[2])


def latency(seconds: list[float]) -> str:
    if not seconds:
        return "n/a"
    ordered = sorted(seconds)
    return f"p50 {percentile(ordered, 0.50) * 1000:.1f} ms, p99 {percentile(ordered, 0.99) * 1000:.1f} ms"


async def main(users_count: int, total: int, per_user_limit: int, clients: int, max_seconds: float, seed: int) -> bool:
    async with fresh_database() as url:
        engine = create_async_engine(url, pool_size=clients, max_overflow=0)
        try:
            await seed_users(engine, users_count, datetime.now(UTC))
            async with engine.connect() as connection:
                users = list((await connection.execute(text("SELECT id FROM users ORDER BY id"))).scalars())
            template_id = await create_template(engine, total, per_user_limit)
            sessions = async_sessionmaker(engine, expire_on_commit=False)

            async def claim(user_id: uuid.UUID) -> object:
                async with sessions() as session:
                    return await coupon_service(session).claim(user_id, template_id)

            async def warm() -> None:  # open every pooled connection before the clock starts
                async with engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
                    await asyncio.sleep(0.05)

            await asyncio.gather(*(warm() for _ in range(clients)))
            print(
                f"{clients} clients claiming one template of {total:,} coupons (limit {per_user_limit} per user) "
                f"for random users among {users_count:,} ...",
                flush=True,
            )
            tally = Tally()
            rng = random.Random(seed)
            cpu_started = time.process_time()
            started = time.perf_counter()
            deadline = started + max_seconds
            await asyncio.gather(
                *(
                    client(claim, users, random.Random(rng.random()), tally, deadline, ATTEMPTS_PER_COUPON * total)
                    for _ in range(clients)
                )
            )
            elapsed = time.perf_counter() - started
            client_cpu = (time.process_time() - cpu_started) / elapsed
            issued, counted, most_held = await exact_count(engine, template_id)
        finally:
            await engine.dispose()

    claimed = tally.outcomes[CLAIMED]
    outcomes = ", ".join(f"{code} {count:,}" for code, count in sorted(tally.outcomes.items()))
    print(
        f"attempts {tally.attempts:,} in {elapsed:.2f} s ({outcomes}); "
        f"{claimed / elapsed:,.0f} claims/s, {tally.attempts / elapsed:,.0f} attempts/s; "
        f"this client process used {client_cpu:.0%} of a core"
    )
    print(
        f"latency of an attempt: {latency(tally.attempt_seconds)}; "
        f"of a successful claim: {latency(tally.claim_seconds)}"
    )
    sold_out = tally.outcomes[SOLD_OUT] == clients
    held = issued == total == counted == claimed and most_held <= per_user_limit and sold_out
    print(
        f"exact count: issued {issued:,} of {total:,} (template counts {counted:,}, clients saw {claimed:,} succeed); "
        f"most held by one user {most_held} (limit {per_user_limit}); "
        f"{'every client saw sold_out' if sold_out else 'NOT sold out within the bounds'} "
        f"[{'ok' if held else 'FAILED'}]"
    )
    return held


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--total", type=int, default=1_000)
    parser.add_argument("--per-user-limit", type=int, default=1)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--max-seconds", type=float, default=300)
    parser.add_argument("--seed", type=int, default=1)
    arguments = parser.parse_args()
    ok = asyncio.run(
        main(
            arguments.users,
            arguments.total,
            arguments.per_user_limit,
            arguments.clients,
            arguments.max_seconds,
            arguments.seed,
        )
    )
    sys.exit(0 if ok else 1)
