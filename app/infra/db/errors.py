"""Which database failures mean "the database is unavailable" (503) rather than a bug (500)."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

# Raised straight from the driver or the pool while the server is down or restarting.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (OperationalError, InterfaceError, PoolTimeoutError, OSError)


def is_database_unavailable(error: BaseException) -> bool:
    """True when the error says the server cannot be reached or dropped the connection."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, UNAVAILABLE_ERRORS):
        return True
    # asyncpg raises its own errors (ConnectionDoesNotExistError, CannotConnectNowError...)
    # wrapped in DBAPIError; their class names say what happened.
    original = getattr(error, "orig", None)
    name = type(original).__name__ if original is not None else ""
    return any(word in name for word in ("Connection", "CannotConnect", "AdminShutdown", "Timeout"))
