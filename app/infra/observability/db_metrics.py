"""Database metrics: statement durations by operation, the pool's connections, connection errors.

``instrument_engine`` hooks SQLAlchemy's engine and pool events; the reads that run on the
asyncpg connection itself (``app.infra.db.driver``) call ``observe_query``. The statement
hooks run for every statement, so they stay cheap: SQLAlchemy's own flags say insert, update
or delete (also behind a ``WITH``), else the first word of the SQL decides; no regex, and
never any SQL text in a label.

The pool gauges are per process (``livesum``: a scrape of one instance adds up its worker
processes). The event-loop monitor's periodic probe refreshes them (``refresh_pool_metrics``,
every half second), not the pool's checkout and checkin events: those come twice per request,
and a refresh on each cost about 1% of a simple request's time.
"""

from __future__ import annotations

import time
import weakref
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, ExceptionContext, ExecutionContext
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import Pool, QueuePool

OPERATIONS = ("select", "insert", "update", "delete", "other")

QUERY_DURATION = Histogram(
    "taskmarket_db_query_duration_seconds",
    "Duration of SQL statements, by operation (select, insert, update, delete, other)",
    ["operation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
POOL_SIZE = Gauge(
    "taskmarket_db_pool_size", "Connections the database pool keeps (its configured size)", multiprocess_mode="livesum"
)
POOL_CHECKED_OUT = Gauge(
    "taskmarket_db_pool_checked_out", "Pooled database connections in use now", multiprocess_mode="livesum"
)
POOL_OVERFLOW = Gauge(
    "taskmarket_db_pool_overflow", "Database connections open above the pool size now", multiprocess_mode="livesum"
)
POOL_CONNECTIONS = Gauge(
    "taskmarket_db_pool_connections",
    "Database connections open now (idle in the pool + in use)",
    multiprocess_mode="livesum",
)
CONNECTION_ERRORS = Counter(
    "taskmarket_db_connection_errors",
    "Failed database connects and connections found broken (invalidated after an error)",
)

# Bound once: the per-statement hook does a dict lookup, not a label lookup.
_DURATION = {operation: QUERY_DURATION.labels(operation) for operation in OPERATIONS}
_FIRST_WORD = {
    word: operation
    for operation in ("select", "insert", "update", "delete")
    for word in (operation, operation.upper(), operation.capitalize())
}
# A WITH that SQLAlchemy did not flag as insert, update or delete is a query (text() DML behind a WITH
# would read as "select"; the code base has none).
_FIRST_WORD |= {"with": "select", "WITH": "select", "With": "select"}
_STARTED = "_taskmarket_started"


def operation_of(statement: str) -> str:
    """``select``, ``insert``, ``update``, ``delete`` or ``other``, from the statement's first word."""
    operation = _FIRST_WORD.get(statement[:6]) or _FIRST_WORD.get(statement[:4])
    if operation is None:
        head = statement[:64].lstrip(" \t\r\n(")
        operation = _FIRST_WORD.get(head[:6].lower()) or _FIRST_WORD.get(head[:4].lower(), "other")
    return operation


def observe_query(operation: str, seconds: float) -> None:
    """Record one statement run outside SQLAlchemy's execution layer (on the driver's connection)."""
    _DURATION.get(operation, _DURATION["other"]).observe(seconds)


def count_connection_error() -> None:
    """Count a failed connect (the connect hook of ``app.infra.db.config`` calls it)."""
    CONNECTION_ERRORS.inc()


def _operation(context: ExecutionContext, statement: str) -> str:
    if not isinstance(context, DefaultExecutionContext):
        return operation_of(statement)
    if context.isinsert:
        return "insert"
    if context.isupdate:
        return "update"
    if context.isdelete:
        return "delete"
    return operation_of(statement)


def _before_cursor_execute(
    _conn: Connection, _cursor: Any, _statement: str, _parameters: Any, context: ExecutionContext, _many: bool
) -> None:
    context.__dict__[_STARTED] = time.perf_counter()


def _after_cursor_execute(
    _conn: Connection, _cursor: Any, statement: str, _parameters: Any, context: ExecutionContext, _many: bool
) -> None:
    started = context.__dict__.pop(_STARTED, None)
    if started is not None:
        _DURATION[_operation(context, statement)].observe(time.perf_counter() - started)


def _failed_statement(exception_context: ExceptionContext) -> None:
    """A statement that failed took time too (a timeout most of all)."""
    context = exception_context.execution_context
    if context is None:
        return
    started = context.__dict__.pop(_STARTED, None)
    if started is not None:
        _DURATION[_operation(context, exception_context.statement or "")].observe(time.perf_counter() - started)


def _invalidated(_dbapi_connection: Any, _record: Any, exception: BaseException | None) -> None:
    # Without an exception the caller gave the connection up on purpose (a cancelled request): no error.
    if exception is not None:
        CONNECTION_ERRORS.inc()


def _pool_figures(pool: Pool) -> tuple[int, int, int, int]:
    """(size, checked out, overflow, open connections); 0s for pools that keep no count (SQLite's StaticPool)."""
    if not isinstance(pool, QueuePool):
        return 0, 0, 0, 0
    checked_in, checked_out = pool.checkedin(), pool.checkedout()
    return pool.size(), checked_out, max(pool.overflow(), 0), checked_in + checked_out


class _PoolGauges:
    """The pool gauges of this process: the sum over its engines that are in use (not disposed)."""

    def __init__(self) -> None:
        self._engines: weakref.WeakSet[Engine] = weakref.WeakSet()

    def track(self, engine: Engine) -> None:
        self._engines.add(engine)
        self.refresh()

    def untrack(self, engine: Engine) -> None:
        self._engines.discard(engine)
        self.refresh()

    def refresh(self) -> None:
        size = checked_out = overflow = connections = 0
        for engine in list(self._engines):
            figures = _pool_figures(engine.pool)
            size += figures[0]
            checked_out += figures[1]
            overflow += figures[2]
            connections += figures[3]
        POOL_SIZE.set(size)
        POOL_CHECKED_OUT.set(checked_out)
        POOL_OVERFLOW.set(overflow)
        POOL_CONNECTIONS.set(connections)


_POOLS = _PoolGauges()


def refresh_pool_metrics() -> None:
    """Set the pool gauges from the pools' counts now."""
    _POOLS.refresh()


def instrument_engine(async_engine: AsyncEngine) -> None:
    """Time every statement of ``async_engine``, count its connection errors, and report its pool."""
    engine = async_engine.sync_engine
    event.listen(engine, "before_cursor_execute", _before_cursor_execute)
    event.listen(engine, "after_cursor_execute", _after_cursor_execute)
    event.listen(engine, "handle_error", _failed_statement)
    # pool listeners set on the engine are kept by the new pool that dispose() builds
    event.listen(engine, "invalidate", _invalidated)
    reference = weakref.ref(engine)

    def connected(*_args: Any) -> None:
        # an engine used again after dispose() counts again
        current = reference()
        if current is not None:
            _POOLS.track(current)

    def disposed(_connection: Any) -> None:
        current = reference()
        if current is not None:
            _POOLS.untrack(current)

    event.listen(engine, "connect", connected)
    event.listen(engine, "engine_disposed", disposed)
    _POOLS.track(engine)


__all__ = [
    "OPERATIONS",
    "count_connection_error",
    "instrument_engine",
    "observe_query",
    "operation_of",
    "refresh_pool_metrics",
]
