"""Cross-cutting ports every bounded context may need."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...


class UnitOfWork(Protocol):
    """The transaction a use case runs in: it commits only what it decided to keep."""

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...


class RateLimiter(Protocol):
    async def hit(self, key: str, limit: int, window_seconds: int) -> int:
        """Count one attempt for ``key``; return 0 when allowed, else the seconds until it may retry."""
        ...
