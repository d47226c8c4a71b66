"""Counting the SQL statements a request runs, for query-count (N+1) tests.

    async with count_statements(app) as log:
        response = await client.get("/api/things?limit=1", headers=...)
    assert len(log) == 2, log.statements

Counts what SQLAlchemy executes on the app's engine (a ``before_cursor_execute``
listener) and, on PostgreSQL, what the service runs on the asyncpg connection itself
(the authenticated caller's row is read that way): a query logger on each connection
while it is checked out. Transaction control (BEGIN, COMMIT, ROLLBACK) and the pool's
liveness ping are not statements of the request and are left out.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from advanced_alchemy.extensions.litestar import SQLAlchemyInitPlugin
from litestar import Litestar
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

_TRANSACTION_CONTROL = re.compile(r"^\s*(BEGIN|START TRANSACTION|COMMIT|ROLLBACK|END)\b", re.IGNORECASE)


@dataclass
class StatementLog:
    statements: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.statements)


def app_engine(app: Litestar) -> AsyncEngine:
    """The engine the app's requests use."""
    engine: AsyncEngine = app.plugins.get(SQLAlchemyInitPlugin).config[0].get_engine()
    return engine


@asynccontextmanager
async def count_statements(app: Litestar) -> AsyncIterator[StatementLog]:
    """Record every SQL statement the app runs inside the block (run the requests one at a time)."""
    engine = app_engine(app).sync_engine
    log = StatementLog()
    watched: set[Any] = set()

    def record(statement: str) -> None:
        if not _TRANSACTION_CONTROL.match(statement):
            log.statements.append(statement)

    def on_cursor_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        record(statement)

    def on_driver_query(logged: Any) -> None:
        record(logged.query)

    # Registered after the app's own checkout listener (the ping), so the ping is not seen.
    def on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        driver = getattr(dbapi_connection, "driver_connection", None)
        if hasattr(driver, "add_query_logger"):
            driver.add_query_logger(on_driver_query)
            watched.add(driver)

    def on_checkin(dbapi_connection: Any, _record: Any) -> None:
        driver = getattr(dbapi_connection, "driver_connection", None)
        if driver in watched:
            driver.remove_query_logger(on_driver_query)
            watched.discard(driver)

    event.listen(engine, "before_cursor_execute", on_cursor_execute)
    event.listen(engine, "checkout", on_checkout)
    event.listen(engine, "checkin", on_checkin)
    try:
        yield log
    finally:
        # asyncpg hands a logged query to its loggers on the next turn of the event loop
        for _ in range(3):
            await asyncio.sleep(0)
        event.remove(engine, "before_cursor_execute", on_cursor_execute)
        event.remove(engine, "checkout", on_checkout)
        event.remove(engine, "checkin", on_checkin)
        for driver in watched:
            driver.remove_query_logger(on_driver_query)
