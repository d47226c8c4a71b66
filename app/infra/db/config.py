"""Database configuration: engine options per dialect, session factory, migrations."""

from __future__ import annotations

from pathlib import Path

from advanced_alchemy.extensions.litestar import (
    AlembicAsyncConfig,
    AsyncSessionConfig,
    EngineConfig,
    SQLAlchemyAsyncConfig,
)
from sqlalchemy import event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry

from app.config import Settings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _sqlite_file(url: str) -> Path | None:
    path = url.split(":///", 1)[1] if ":///" in url else ""
    return None if path in ("", ":memory:") or path.startswith("file:") else Path(path)


def engine_config(settings: Settings) -> EngineConfig:
    """Engine options that fit the dialect (SQLite's pools reject PostgreSQL's sizing options)."""
    if settings.is_sqlite:
        return EngineConfig(echo=settings.database_echo, pool_pre_ping=True)
    return EngineConfig(
        echo=settings.database_echo,
        pool_pre_ping=True,  # a connection killed by a database restart is replaced, not handed out
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        pool_timeout=int(max(1, settings.database_pool_timeout_seconds)),
        pool_recycle=1800,
        connect_args={
            # while the server is unreachable a request fails within this bound (503), never hangs
            "timeout": settings.database_connect_timeout_seconds,
            "server_settings": {"application_name": "taskmarket"},
        },
    )


def _enable_sqlite_pragmas(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def database_config(settings: Settings) -> SQLAlchemyAsyncConfig:
    """The advanced-alchemy config: engine, request sessions and ``litestar database`` migrations."""
    sqlite_file = _sqlite_file(settings.database_url) if settings.is_sqlite else None
    if sqlite_file is not None:
        sqlite_file.parent.mkdir(parents=True, exist_ok=True)
    config = SQLAlchemyAsyncConfig(
        connection_string=settings.database_url,
        engine_config=engine_config(settings),
        session_config=AsyncSessionConfig(expire_on_commit=False),
        alembic_config=AlembicAsyncConfig(
            script_location=str(MIGRATIONS_DIR),
            version_table_name="alembic_version",
        ),
        create_all=False,
    )
    if settings.is_sqlite:
        event.listen(config.get_engine().sync_engine, "connect", _enable_sqlite_pragmas)
    return config
