"""Which of several API processes runs the jobs in-process: exactly one, elected through the database.

PostgreSQL: a session-level advisory lock held on a dedicated connection (the
server releases it when that connection dies, so a crashed leader is replaced
at the others' next attempt). SQLite: an OS file lock next to the database file
(released by the OS when the process dies). An in-memory SQLite database
belongs to its process alone, which is then always the leader.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from pathlib import Path
from typing import IO, Protocol

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

logger = logging.getLogger("app.jobs")

# pg_advisory_lock key of the in-process job runner (any fixed 64-bit number no other feature uses)
ADVISORY_LOCK_KEY = 0x7A5C_0B5E_0001


class Leadership(Protocol):
    description: str

    async def try_acquire(self) -> bool:
        """Become the leader if nobody is; True when this process is (or already was) the leader."""
        ...

    async def still_held(self) -> bool:
        """Whether the leadership is still ours (False: the dedicated connection was lost)."""
        ...

    async def release(self) -> None: ...


class SoleProcess:
    description = "the database is private to this process"

    async def try_acquire(self) -> bool:
        return True

    async def still_held(self) -> bool:
        return True

    async def release(self) -> None:
        return None


class FileLock:
    """``flock`` on ``<database file>.jobs.lock``: one holder per host (a SQLite file is on one host anyway)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._file: IO[bytes] | None = None
        self.description = f"file lock {path}"

    async def try_acquire(self) -> bool:
        if self._file is None:
            self._file = _try_flock(self._path)
        return self._file is not None

    async def still_held(self) -> bool:
        return self._file is not None

    async def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def _try_flock(path: Path) -> IO[bytes] | None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("ab")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    with contextlib.suppress(OSError):
        handle.truncate(0)
        handle.write(str(os.getpid()).encode())
        handle.flush()
    return handle


class PostgresAdvisoryLock:
    """``pg_try_advisory_lock`` on a connection kept for as long as this process leads."""

    def __init__(self, engine: AsyncEngine, key: int = ADVISORY_LOCK_KEY) -> None:
        self._engine = engine
        self._key = key
        self._connection: AsyncConnection | None = None
        self.description = f"PostgreSQL advisory lock {key}"

    async def try_acquire(self) -> bool:
        if self._connection is not None:
            return True
        connection = await self._engine.connect()
        try:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            acquired = bool(
                (await connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key})).scalar()
            )
        except BaseException:
            await _close_quietly(connection)
            raise
        if not acquired:
            await connection.close()
            return False
        self._connection = connection
        return True

    async def still_held(self) -> bool:
        if self._connection is None:
            return False
        try:
            await self._connection.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError, TimeoutError) as error:
            logger.warning("job leadership lost: its database connection failed", extra={"error": repr(error)})
            connection, self._connection = self._connection, None
            await _close_quietly(connection, invalidate=True)
            return False
        return True

    async def release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            await connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
        except (SQLAlchemyError, OSError, TimeoutError) as error:
            # the lock goes with the connection anyway
            logger.warning("job leadership not released cleanly", extra={"error": repr(error)})
            await _close_quietly(connection, invalidate=True)
            return
        await connection.close()


async def _close_quietly(connection: AsyncConnection, *, invalidate: bool = False) -> None:
    with contextlib.suppress(SQLAlchemyError, OSError, TimeoutError):
        if invalidate:
            await connection.invalidate()
        await connection.close()
