"""Which database failures mean "the database is unavailable" (503) rather than a bug (500)."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

# Raised from the driver or the pool while the server is down, restarting or saturated.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (OperationalError, InterfaceError, PoolTimeoutError, OSError)

# SQLSTATEs of a server that is going away or cannot take the connection: class 08
# (connection exception), admin/crash shutdown, "cannot connect now", too many connections.
_UNAVAILABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300")


def _sqlstate(error: BaseException) -> str:
    # SQLAlchemy wraps the driver's error (``orig``); asyncpg's adapter wraps asyncpg's own once more.
    candidate: object = getattr(error, "orig", None)
    for _ in range(2):
        if candidate is None:
            break
        state = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(state, str):
            return state
        candidate = getattr(candidate, "orig", None) or getattr(candidate, "__cause__", None)
    return ""


def is_database_unavailable(error: BaseException) -> bool:
    """True when the error says the server cannot be reached, dropped the connection or is shutting down."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, UNAVAILABLE_ERRORS):
        return True
    return _sqlstate(error).startswith(_UNAVAILABLE_SQLSTATES)
