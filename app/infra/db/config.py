"""Database configuration: engine options per dialect, session factory, migrations."""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, cast

from advanced_alchemy.extensions.litestar import (
    AlembicAsyncConfig,
    AsyncSessionConfig,
    EngineConfig,
    SQLAlchemyAsyncConfig,
)
from sqlalchemy import Connection, event
from sqlalchemy.engine.interfaces import AdaptedConnection, DBAPIConnection, Dialect
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.util.concurrency import await_
from sqlalchemy.util.queue import AsyncAdaptedQueue, Empty, Full

from app.config import Settings
from app.infra.observability.db_metrics import count_connection_error, instrument_engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _sqlite_file(url: str) -> Path | None:
    path = url.split(":///", 1)[1] if ":///" in url else ""
    return None if path in ("", ":memory:") or path.startswith("file:") else Path(path)


class _FirstComeFirstServed(AsyncAdaptedQueue[Any]):
    """The pool's queue of idle connections, handing each one given back to the longest waiter.

    SQLAlchemy's asyncio queue lets a newcomer take a connection that was just given back
    ahead of the request woken for it, which then queues again at the back: under load a
    few requests waited seconds (p99 25 times the median, timeouts) while most waited
    nothing. Here a returned connection goes straight to the first waiter.
    """

    def __init__(self, maxsize: int = 0, use_lifo: bool = False) -> None:
        super().__init__(maxsize, use_lifo)
        self._idle: deque[Any] = deque()
        self._waiters: deque[asyncio.Future[Any]] = deque()

    def empty(self) -> bool:
        return not self._idle

    def full(self) -> bool:
        return 0 < self.maxsize <= len(self._idle)

    def qsize(self) -> int:
        return len(self._idle)

    def put_nowait(self, item: Any) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(item)
                return
        if self.full():
            raise Full()
        self._idle.append(item)

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        self.put_nowait(item)  # the pool never gives back more than it holds

    def get_nowait(self) -> Any:
        if not self._idle:
            raise Empty()
        return self._idle.pop() if self.use_lifo else self._idle.popleft()

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        if self._idle or not block:
            return self.get_nowait()
        return await_(self._wait(limit_seconds=timeout))

    async def _wait(self, limit_seconds: float | None) -> Any:
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(limit_seconds):
                return await waiter
        except BaseException as error:
            # timed out or cancelled: a connection handed over in the meantime goes to the next in line
            if waiter.done() and not waiter.cancelled():
                self.put_nowait(waiter.result())
            waiter.cancel()
            if isinstance(error, TimeoutError):
                raise Empty() from None
            raise


class FairAsyncQueuePool(AsyncAdaptedQueuePool):
    """SQLAlchemy's asyncio pool, with idle connections handed out first come, first served."""

    _queue_class = _FirstComeFirstServed


def engine_config(settings: Settings) -> EngineConfig:
    """Engine options that fit the dialect (SQLite's pools reject PostgreSQL's sizing options)."""
    if settings.is_sqlite:
        return EngineConfig(echo=settings.database_echo, pool_pre_ping=True)
    return EngineConfig(
        echo=settings.database_echo,
        # A connection killed by a database restart is replaced, not handed out: ``_bounded_pre_ping``
        # (a checkout listener) does what ``pool_pre_ping`` does, but with a time limit.
        pool_pre_ping=False,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        # SQLAlchemy takes fractional seconds; advanced-alchemy's annotation says int.
        pool_timeout=settings.database_pool_timeout_seconds,  # type: ignore[arg-type]
        pool_recycle=1800,
        poolclass=FairAsyncQueuePool,
        connect_args={
            # while the server is unreachable a request fails within this bound (503), never hangs
            "timeout": settings.database_connect_timeout_seconds,
            # a statement on a server that went silent fails (TimeoutError -> 503) instead of hanging
            "command_timeout": settings.database_command_timeout_seconds,
            "server_settings": {"application_name": "taskmarket"},
        },
    )


def _enable_sqlite_pragmas(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    # Take transaction control away from the sqlite3 module: it would not emit BEGIN
    # before a SAVEPOINT, so releasing one committed everything before it (a refused
    # registration left its account behind). ``_begin_sqlite_transaction`` emits BEGIN.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _connect_failures_as_driver_errors(
    dialect: Dialect, _record: ConnectionPoolEntry, cargs: list[Any], cparams: dict[str, Any]
) -> DBAPIConnection:
    """Report "cannot reach the server" as the driver's ``OperationalError``, like every other database failure.

    SQLAlchemy's asyncpg adapter translates only asyncpg's own exceptions. A refused
    connection, an unresolvable host or the connect timeout escape from ``connect()``
    as a bare ``OSError`` / ``TimeoutError``, which is no ``SQLAlchemyError``: the
    API's database handler never saw it and a request during an outage got a 500.
    Raised as the driver's ``OperationalError``, SQLAlchemy wraps it into
    ``sqlalchemy.exc.OperationalError`` (a 503), as it does for other drivers.
    Every failed connect is counted (``taskmarket_db_connection_errors_total``).
    """
    try:
        return dialect.connect(*cargs, **cparams)
    except OSError as error:  # ConnectionRefusedError, socket.gaierror, TimeoutError (asyncio's, since 3.11)
        count_connection_error()
        raise dialect.loaded_dbapi.OperationalError(f"cannot connect to the database: {error}", error) from error
    except Exception:  # the server refused us (authentication, too many clients, ...)
        count_connection_error()
        raise


def _count_failed_connects(
    dialect: Dialect, _record: ConnectionPoolEntry, cargs: list[Any], cparams: dict[str, Any]
) -> DBAPIConnection:
    """SQLite's connect, with its failures counted (an unreadable file, a missing directory)."""
    try:
        return dialect.connect(*cargs, **cparams)
    except Exception:
        count_connection_error()
        raise


CheckoutListener = Callable[[DBAPIConnection, ConnectionPoolEntry, PoolProxiedConnection], None]

_first_statement_probes: ContextVar[bool] = ContextVar("first_statement_probes", default=False)
# When the database last answered the current request (its task), by the monotonic clock.
_answered_at: ContextVar[float] = ContextVar("database_answered_at", default=-math.inf)
# Within this, a checkout of the same request trusts that answer instead of pinging: the database
# going silent in between is no different from it going silent during the request's next statement.
ANSWER_TRUSTED_SECONDS = 1.0


def probe_timeout(settings: Settings) -> float:
    """How long a liveness probe of a pooled connection may take before the connection is given up."""
    return min(settings.health_check_timeout_seconds, settings.database_connect_timeout_seconds)


@contextmanager
def probing_checkout() -> Iterator[None]:
    """Checkouts inside skip the pre-ping: the caller's first statement is itself the probe.

    For a caller that runs its first statement with ``probe_timeout`` and, when that
    statement fails or is late, aborts the connection and never hands it back as it
    was (what the ping would have done): one round trip instead of two. A connection
    the driver already knows to be closed is still replaced at checkout.
    """
    token = _first_statement_probes.set(True)
    try:
        yield
    finally:
        _first_statement_probes.reset(token)


def database_answered() -> None:
    """Note that the database just answered this request: its next checkouts need no ping for a moment."""
    _answered_at.set(time.monotonic())


def _bounded_pre_ping(limit_seconds: float) -> CheckoutListener:
    """A pre-ping that gives up after ``limit_seconds`` (SQLAlchemy's ``pool_pre_ping`` waits forever).

    With the server gone silent (a frozen host, a partition without a reset) the
    built-in ping of a pooled connection never returns and the request hangs
    instead of failing with 503. Here a failed or late ping aborts the connection
    at once (a graceful close would wait for the silent server again) and raises
    ``DisconnectionError``: the pool then replaces the connection, and a failing
    reconnect is bounded by the connect timeout. ``execute("SELECT 1")`` is one round trip
    on the simple-query protocol (no prepared statement, fine behind pgbouncer).
    No ping either when the caller probes by itself (``probing_checkout``), or when the
    database answered the same request a moment ago (``database_answered``: the caller of
    every authenticated request, read just before); a connection the server already
    closed (a restart, a killed backend) is replaced at once in every case.
    """

    def ping(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry, _proxy: PoolProxiedConnection) -> None:
        connection = cast(AdaptedConnection, dbapi_connection)
        if connection.driver_connection.is_closed():
            raise DisconnectionError("the server closed the connection")
        if _first_statement_probes.get() or time.monotonic() - _answered_at.get() < ANSWER_TRUSTED_SECONDS:
            return
        try:
            connection.run_async(lambda driver: driver.execute("SELECT 1", timeout=limit_seconds))
        except Exception as error:  # whatever the cause, this connection is not usable
            connection.driver_connection.terminate()
            raise DisconnectionError(f"pre-ping failed: {type(error).__name__}") from error

    return ping


def _begin_sqlite_transaction(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN")


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
    instrument_engine(config.get_engine())
    if settings.is_sqlite:
        event.listen(config.get_engine().sync_engine, "do_connect", _count_failed_connects)
        event.listen(config.get_engine().sync_engine, "connect", _enable_sqlite_pragmas)
        event.listen(config.get_engine().sync_engine, "begin", _begin_sqlite_transaction)
    else:
        engine = config.get_engine().sync_engine
        event.listen(engine, "do_connect", _connect_failures_as_driver_errors)
        # listeners on the engine are kept by the pool that dispose() rebuilds
        event.listen(engine, "checkout", _bounded_pre_ping(probe_timeout(settings)))
    return config
