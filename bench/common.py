"""What the benchmarks share: a throwaway migrated PostgreSQL database, bulk users, the services, the RSS.

Imported as ``bench.common`` by the scripts, which put the repository root on ``sys.path`` first.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.domain.coupons.service import CouponService
from app.domain.points.service import PointsPolicy, PointsService
from app.domain.tasks.service import TaskService
from app.infra.db.coupons import SqlCouponRepository
from app.infra.db.notifications import SqlNotifications
from app.infra.db.points import SqlPointsLedger
from app.infra.db.tasks import SqlTaskRepository
from app.infra.db.unit_of_work import SessionUnitOfWork

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
POLICY = PointsPolicy(lot_lifetime=timedelta(days=365))


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def points_service(session: AsyncSession) -> PointsService:
    return PointsService(SqlPointsLedger(session), SessionUnitOfWork(session), SystemClock(), POLICY)


def coupon_service(session: AsyncSession) -> CouponService:
    """Wired as the application wires it: one session, one unit of work, shared with the points service."""
    uow = SessionUnitOfWork(session)
    points = PointsService(SqlPointsLedger(session), uow, SystemClock(), POLICY)
    return CouponService(SqlCouponRepository(session), points, uow, SystemClock())


def task_service(session: AsyncSession) -> TaskService:
    """Wired as the application wires it, without the WebSocket push after commit (the rows are the same)."""
    uow = SessionUnitOfWork(session)
    clock = SystemClock()
    points = PointsService(SqlPointsLedger(session), uow, clock, POLICY)
    coupons = CouponService(SqlCouponRepository(session), points, uow, clock)
    return TaskService(SqlTaskRepository(session), points, coupons, SqlNotifications(session, clock), uow, clock)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def verdict(met: bool) -> str:
    return "ok" if met else "MISSED"


def percentile(sorted_values: list[float], fraction: float) -> float:
    """The value below which ``fraction`` of the (sorted, non-empty) values lie, nearest rank."""
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


async def admin(statement: str) -> None:
    connection = await asyncpg.connect(ADMIN_URL)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def migrate(url: str) -> None:
    """Bring the database to the latest schema with the application's own CLI."""
    env = {**os.environ, "DATABASE_URL": url, "LITESTAR_APP": "app.main:create_app", "LOG_LEVEL": "WARNING"}
    env.pop("REDIS_URL", None)
    subprocess.run(
        [str(Path(sys.executable).parent / "litestar"), "database", "upgrade", "--no-prompt"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """A new, migrated database (its SQLAlchemy asyncpg URL), dropped at the end whatever happens."""
    name = f"taskmarket_bench_{uuid.uuid4().hex[:8]}"
    await admin(f'CREATE DATABASE "{name}"')
    url = ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + f"/{name}"
    try:
        await asyncio.to_thread(migrate, url)
        yield url
    finally:
        await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def seed_users(engine: AsyncEngine, count: int, now: datetime) -> None:
    """``count`` active users in one statement."""
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO users (id, email, username, username_key, password_hash, role, is_active, "
                "created_at, updated_at) SELECT gen_random_uuid(), 'bench' || n || '@example.com', 'bench' || n, "
                "'bench' || n, 'x', 'user', true, :now, :now FROM generate_series(1, :users) AS n"
            ),
            {"now": now, "users": count},
        )


async def vacuum_analyze(engine: AsyncEngine, table: str = "") -> None:
    """VACUUM cannot run in a transaction: end the driver's implicit one first."""
    async with engine.connect() as connection:
        await connection.execute(text("COMMIT"))
        await connection.execute(text(f"VACUUM ANALYZE {table}"))
