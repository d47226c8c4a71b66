"""Fan-out of user events to every process: in memory alone, or over Redis pub/sub.

Both implement the domain's ``EventPublisher``. Events for this process's own
sockets are delivered directly, so a Redis outage only interrupts delivery to
*other* processes. Over Redis every process subscribes to one channel and keeps
the events for users connected to it (the registry lookup is a dict hit). One
subscription per process, instead of one per user, leaves no per-user state in
Redis or here to clean up, and makes re-subscribing after a Redis restart one
command. The cost is that every process sees every event; per-user channels
are the next step if that ever dominates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Collection
from typing import Any

import msgspec
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.domain.shared.events import UserEvent
from app.infra.realtime.connections import ConnectionManager
from app.infra.realtime.server import encode

logger = logging.getLogger("app.realtime")

PUBLISH_FAILURES = Counter(
    "taskmarket_ws_fanout_publish_failures", "Events that could not be published to other processes"
)
SUBSCRIPTION_RESTARTS = Counter(
    "taskmarket_ws_fanout_resubscriptions", "Times the fan-out subscription was re-established after an error"
)

CHANNEL = "taskmarket:user-events"


def render(event: UserEvent) -> str:
    return encode({**event.payload, "type": event.type})


class LocalFanout:
    """One process, no Redis: events reach this process's sockets only."""

    def __init__(self, manager: ConnectionManager) -> None:
        self._manager = manager

    async def publish(self, user_ids: Collection[uuid.UUID], event: UserEvent) -> None:
        self._manager.deliver(list(user_ids), render(event))


class _Envelope(msgspec.Struct, frozen=True):
    origin: str
    users: list[uuid.UUID] | None
    text: str


class RedisFanout:
    """Every process: publish to one channel, deliver what arrives to local sockets; reconnects by itself."""

    def __init__(
        self,
        manager: ConnectionManager,
        redis_url: str,
        publisher: Redis,
        *,
        timeout: float,
        channel: str = CHANNEL,
        manager_is_local: bool = True,
    ) -> None:
        self._manager = manager
        self._redis_url = redis_url
        self._publisher = publisher
        self._timeout = timeout
        self._channel = channel
        self._origin = uuid.uuid4().hex
        self._deliver_locally = manager_is_local
        self._listening = asyncio.Event()

    @property
    def listening(self) -> asyncio.Event:
        """Set while the subscription is established (tests wait on it)."""
        return self._listening

    async def publish(self, user_ids: Collection[uuid.UUID], event: UserEvent) -> None:
        users = list(user_ids)
        text = render(event)
        if self._deliver_locally:
            self._manager.deliver(users, text)
        await self._publish(_Envelope(self._origin, users, text))

    async def broadcast(self, event: UserEvent) -> None:
        """To every connected user of every process."""
        text = render(event)
        if self._deliver_locally:
            self._manager.deliver(None, text)
        await self._publish(_Envelope(self._origin, None, text))

    async def _publish(self, envelope: _Envelope) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await self._publisher.publish(self._channel, msgspec.json.encode(envelope))
        except (RedisError, OSError, TimeoutError) as exc:
            PUBLISH_FAILURES.inc()
            logger.warning("event not published to other processes", extra={"error": type(exc).__name__})

    async def run(self) -> None:
        """Listen until cancelled; after any error wait (0.1 s doubling to 2 s) and subscribe again."""
        backoff = 0.1
        decoder = msgspec.json.Decoder(_Envelope)
        while True:
            client = Redis.from_url(self._redis_url, socket_connect_timeout=self._timeout, health_check_interval=10)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                self._listening.set()
                backoff = 0.1
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is not None:
                        self._receive(decoder, message)
            except (RedisError, OSError, TimeoutError) as exc:
                self._listening.clear()
                SUBSCRIPTION_RESTARTS.inc()
                logger.warning(
                    "event subscription lost; reconnecting",
                    extra={"error": type(exc).__name__, "retry_in_s": backoff},
                )
            finally:
                self._listening.clear()
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(self._timeout):
                        await _close(pubsub, client)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    def _receive(self, decoder: msgspec.json.Decoder[_Envelope], message: dict[str, Any]) -> None:
        try:
            envelope = decoder.decode(message["data"])
        except (msgspec.DecodeError, KeyError, TypeError):
            logger.warning("malformed event on the fan-out channel")
            return
        if envelope.origin == self._origin and self._deliver_locally:
            return  # delivered locally when published
        self._manager.deliver(envelope.users, envelope.text)


async def _close(pubsub: Any, client: Redis) -> None:
    await pubsub.aclose()
    await client.aclose()
