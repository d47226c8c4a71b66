"""Shared test helpers: real servers, migrated databases, settings and apps."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as redis_asyncio
from litestar import Litestar
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.config import Settings, load_settings
from app.domain.users.model import Role
from app.main import create_app

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
IN_CI = os.environ.get("CI", "").lower() == "true"


def user_row(username: str, role: Role, now: datetime) -> dict[str, Any]:
    """A ``users`` row for seeding in bulk (``insert(UserRecord)``): active, no usable password."""
    return {
        "id": uuid.uuid4(),
        "email": f"{username}@example.com",
        "username": username,
        "username_key": username,
        "password_hash": "x",
        "role": role.value,
        "is_active": True,
        "created_at": now,
        "updated_at": now,
    }


# Cheap hashing parameters keep the suite fast; production values are the settings' defaults.
FAST_HASHING: dict[str, Any] = {"argon2_time_cost": 1, "argon2_memory_cost_kib": 1024, "argon2_parallelism": 1}


def service_missing(name: str, error: BaseException) -> None:
    """A missing server fails the run in CI and skips (with the reason shown) elsewhere."""
    message = f"{name} is not reachable: {type(error).__name__}: {error}"
    if IN_CI:
        pytest.fail(message + " (CI=true: PostgreSQL and Redis tests must run)")
    pytest.skip(message)


def asyncpg_url(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+asyncpg://", "postgresql://")


def sqlalchemy_url(asyncpg_dsn: str) -> str:
    return asyncpg_dsn.replace("postgresql://", "postgresql+asyncpg://", 1)


async def _postgres_admin_async(statement: str) -> None:
    connection = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=3)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def _postgres_admin(statement: str) -> None:
    # Fixtures may be set up while a test's loop runs: give the admin call a loop of its own thread.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, _postgres_admin_async(statement)).result(timeout=30)


def create_postgres_database() -> str:
    """A fresh, empty database on the test server; returns its SQLAlchemy URL."""
    name = f"taskmarket_test_{uuid.uuid4().hex[:12]}"
    try:
        _postgres_admin(f'CREATE DATABASE "{name}"')
    except (OSError, asyncpg.PostgresError, TimeoutError) as error:
        service_missing("PostgreSQL", error)
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    return sqlalchemy_url(f"{base}/{name}")


def drop_postgres_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    _postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A new, migrated PostgreSQL database, dropped on exit."""
    url = create_postgres_database()
    try:
        migrate(url)
        yield url
    finally:
        drop_postgres_database(url)


def litestar_cli(*args: str, database_url: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the project's CLI exactly as an operator would."""
    env = {**os.environ, "DATABASE_URL": database_url, "LITESTAR_APP": "app.main:create_app", "LOG_LEVEL": "WARNING"}
    env.pop("REDIS_URL", None)
    return subprocess.run(
        [str(BIN / "litestar"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=check,
        timeout=120,
    )


def migrate(database_url: str, revision: str = "head") -> None:
    litestar_cli("database", "upgrade", revision, "--no-prompt", database_url=database_url)


def make_settings(database_url: str, **overrides: Any) -> Settings:
    # Apps built in tests run no periodic jobs unless a test asks (they would write while the test does).
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": database_url,
        "jobs_in_process": False,
        **FAST_HASHING,
    }
    values.update(overrides)
    return load_settings({}, **values)


async def redis_available() -> redis_asyncio.Redis:
    client = redis_asyncio.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
    except (OSError, redis_asyncio.RedisError) as error:
        await client.aclose()
        service_missing("Redis", error)
    return client


@asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[tuple[Litestar, httpx.AsyncClient]]:
    """The app with its real lifespan, on the test's own event loop (no second loop, no thread)."""
    app = create_app(settings)
    async with app.lifespan():
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield app, client


async def register(client: httpx.AsyncClient, username: str, password: str = "Secret€Pass9") -> dict[str, Any]:
    response = await client.post(
        "/api/users/register", json={"email": f"{username}@example.com", "username": username, "password": password}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def login(client: httpx.AsyncClient, username: str, password: str = "Secret€Pass9") -> dict[str, Any]:
    response = await client.post(
        "/api/secure-auth/login", json={"email": f"{username}@example.com", "password": password}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def set_role(database_url: str, username: str, role: str) -> None:
    """Change a role behind the API's back (tests need an admin before any admin exists)."""
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text("UPDATE users SET role = :role WHERE username = :username"), {"role": role, "username": username}
            )
    finally:
        await engine.dispose()


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}
