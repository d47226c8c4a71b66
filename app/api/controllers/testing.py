"""Routes that exist only for the end-to-end tests (``ENABLE_TEST_ROUTES``; refused in production)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated
from uuid import UUID

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from app.api.security import PUBLIC, PUBLIC_OPT

# Holds a database connection for the given seconds (supplied by the composition root).
SlowDatabaseWork = Callable[[float], Awaitable[None]]
# Publishes ``count`` synthetic events of about ``size`` bytes to a user's sockets, on every process.
PublishTestEvents = Callable[[UUID, int, int], Awaitable[None]]


class TestRoutesController(Controller):
    path = "/api/_test"
    include_in_schema = False
    security = PUBLIC
    opt = PUBLIC_OPT

    @get("/slow", operation_id="testSlowRequest")
    async def slow(
        self,
        slow_database_work: NamedDependency[SlowDatabaseWork],
        seconds: Annotated[float, QueryParameter(ge=0, le=30)] = 1.0,
    ) -> dict[str, float]:
        """An in-flight request that uses the database across a wait, for shutdown tests."""
        await slow_database_work(seconds)
        return {"slept": seconds}

    @post("/events", operation_id="testPublishEvents", status_code=204)
    async def events(
        self,
        publish_test_events: NamedDependency[PublishTestEvents],
        user_id: UUID,
        count: Annotated[int, QueryParameter(ge=1, le=100_000)] = 1,
        size: Annotated[int, QueryParameter(ge=0, le=100_000)] = 0,
    ) -> None:
        """Push synthetic ``test`` events to a user's WebSockets, for the real-time tests."""
        await publish_test_events(user_id, count, size)
