"""Hot reads on the asyncpg connection itself, for the few statements every page view runs.

SQLAlchemy's execution layer (statement caching, an execution context, a result and a
row object per row, BEGIN and ROLLBACK around a read) costs several times the round trip
of a small read. Here a Core statement is compiled once for the asyncpg dialect, and run
with the driver on the pooled connection: inside the caller's transaction if one is
under way, else on its own (autocommit; one read needs no BEGIN/ROLLBACK). Failures
become SQLAlchemy's errors, so the API answers them as it answers any database error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.sql.compiler import Compiled
from sqlalchemy.sql.expression import ClauseElement

from app.infra.db.errors import is_database_unavailable


class DriverStatement:
    """A statement compiled once, with its parameters put in the driver's positional ($n) order."""

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled: Compiled = statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
        self.sql = str(compiled)
        self._compiled = compiled
        self._positions: list[str] = list(getattr(compiled, "positiontup", None) or [])

    def arguments(self, values: Mapping[str, Any] | None = None) -> list[Any]:
        params = self._compiled.construct_params(dict(values or {}))
        assert params is not None
        return [params[name] for name in self._positions]


def driver_failure(error: Exception, sql: str) -> tuple[DBAPIError, bool]:
    """SQLAlchemy's error for a failure of the driver, and whether the connection is lost.

    A statement the server refused (a constraint, a syntax error) leaves the connection
    usable; anything else (a dropped or refused connection, a time-out, a server going
    away) means the connection must not be used again: the caller invalidates it, and
    the error reads as "database unavailable" (503).
    """
    failure = DBAPIError(sql, None, error, hide_parameters=True)
    if isinstance(error, asyncpg.PostgresError) and not is_database_unavailable(failure):
        return failure, False
    return OperationalError(sql, None, error, hide_parameters=True, connection_invalidated=True), True
