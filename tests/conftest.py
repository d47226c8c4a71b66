from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from advanced_alchemy.base import metadata_registry
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

import app.infra.db.tables  # noqa: F401 - registers the tables in the metadata
from tests.support import fresh_postgres_database, migrate


@pytest.fixture(scope="session")
def migrated_sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("db") / "test.sqlite3"
    url = f"sqlite+aiosqlite:///{path}"
    migrate(url)
    return url


@pytest.fixture(scope="session")
def migrated_postgres_url() -> Iterator[str]:
    with fresh_postgres_database() as url:
        yield url


async def _empty_tables(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            for table in reversed(metadata_registry.get(None).sorted_tables):
                await connection.execute(text(f'DELETE FROM "{table.name}"'))
    finally:
        await engine.dispose()


@pytest.fixture
async def sqlite_url(migrated_sqlite_url: str) -> str:
    """The session's migrated SQLite database, emptied for this test."""
    await _empty_tables(migrated_sqlite_url)
    return migrated_sqlite_url


@pytest.fixture
async def postgres_url(migrated_postgres_url: str) -> str:
    """The session's migrated PostgreSQL database, emptied for this test."""
    await _empty_tables(migrated_postgres_url)
    return migrated_postgres_url


@pytest.fixture
async def pg_url(postgres_url: str) -> str:
    """PostgreSQL only (concurrency tests)."""
    return postgres_url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test using it runs once on SQLite and once on PostgreSQL, on emptied tables."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url
