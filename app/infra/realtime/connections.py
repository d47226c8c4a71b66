"""The open WebSockets of this process: who is connected, what each is owed, and when to let go.

One ``ConnectionManager`` per process. Design choices, each for a failure seen elsewhere:

* **Nothing per idle connection but its registry entry.** No writer task and no
  ping task per socket: an outbox is drained by a short-lived task only while it
  holds something, and one sweeper task pings the connections that went quiet.
  Ten thousand idle sockets cost their handlers and a small record each.
* **Bounded outboxes.** Events for a client that does not read pile up to
  ``queue_size``; the next one drops the client (close 4503) instead of growing
  memory. A single send that takes longer than ``send_timeout`` drops it too.
* **Interrupting a handler without cancelling it.** The handler waits for the
  client's next message under a deadline (``asyncio.Timeout``). To drop a client
  (too slow, too many connections, shutdown) the manager records the close code
  and moves that deadline to now: the handler wakes with ``TimeoutError``, closes
  the socket with the recorded code and returns through its ``finally``.
  Cancelling the ASGI task instead would make the server log a traceback.
* **Deregistration in ``finally``** (``forget``), so no per-user entry outlives
  its last socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import Protocol
from uuid import UUID

from prometheus_client import Counter, Gauge

logger = logging.getLogger("app.realtime")

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001  # the server shuts down
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN_LATER = 1013  # authentication could not be checked (database unavailable)
CLOSE_UNAUTHENTICATED = 4401
CLOSE_IDLE = 4408
CLOSE_TOO_MANY_CONNECTIONS = 4429
CLOSE_TOO_SLOW = 4503

CONNECTIONS_OPENED = Counter("taskmarket_ws_connections_opened", "WebSocket connections authenticated and registered")
CONNECTIONS_ACTIVE = Gauge(
    "taskmarket_ws_connections_active", "WebSocket connections open now", multiprocess_mode="livesum"
)
MESSAGES_IN = Counter("taskmarket_ws_messages_received", "Messages received from WebSocket clients")
MESSAGES_OUT = Counter("taskmarket_ws_messages_sent", "Messages sent to WebSocket clients")
CLIENTS_DROPPED = Counter(
    "taskmarket_ws_clients_dropped", "WebSocket clients closed by the server, by reason", ["reason"]
)
_DROP_REASONS = {
    CLOSE_TOO_SLOW: "slow",
    CLOSE_TOO_MANY_CONNECTIONS: "too_many",
    CLOSE_GOING_AWAY: "shutdown",
    CLOSE_IDLE: "idle",
}
for _reason in _DROP_REASONS.values():  # each reason's series exists from the start (at 0)
    CLIENTS_DROPPED.labels(_reason)


class ClientSocket(Protocol):
    """What the manager needs of a WebSocket (the API adapts the framework's socket to it)."""

    async def send_text(self, data: str) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


@dataclass(eq=False, slots=True)
class Connection:
    id: int
    user_id: UUID
    socket: ClientSocket
    last_seen: float
    outbox: deque[str] = field(default_factory=deque)
    flusher: asyncio.Task[None] | None = None
    # set when the manager decided to close this connection: (code, reason)
    verdict: tuple[int, str] | None = None
    # the handler's current receive deadline; moved to "now" to wake the handler
    deadline: asyncio.Timeout | None = None

    def interrupt(self) -> None:
        if self.deadline is not None and not self.deadline.expired():
            self.deadline.reschedule(asyncio.get_running_loop().time())


class ShuttingDown(RuntimeError):
    """No new connection is registered once shutdown began."""


class ConnectionManager:
    def __init__(
        self,
        *,
        max_per_user: int,
        queue_size: int,
        send_timeout: float,
        ping_interval: float,
        idle_timeout: float,
    ) -> None:
        self._max_per_user = max_per_user
        self._queue_size = queue_size
        self._send_timeout = send_timeout
        self.ping_interval = ping_interval
        self.idle_timeout = idle_timeout
        # user -> {connection id -> connection}, oldest first (dicts keep insertion order)
        self._by_user: dict[UUID, dict[int, Connection]] = {}
        self._ids = itertools.count(1)
        self._closing = False
        # connections whose handler has not returned yet (dropped ones included)
        self._serving: set[Connection] = set()
        self._all_released: asyncio.Event | None = None  # created by close_all

    # -- registry -----------------------------------------------------------------

    def open(self, user_id: UUID, socket: ClientSocket) -> Connection:
        """Register an authenticated socket; beyond the per-user limit the oldest one is closed (4429)."""
        if self._closing:
            raise ShuttingDown("the server is shutting down")
        mine = self._by_user.setdefault(user_id, {})
        while len(mine) >= self._max_per_user:
            oldest = next(iter(mine.values()))
            self.drop(oldest, CLOSE_TOO_MANY_CONNECTIONS, "too many connections for this user")
        connection = Connection(next(self._ids), user_id, socket, _now())
        mine[connection.id] = connection
        self._serving.add(connection)
        CONNECTIONS_OPENED.inc()
        CONNECTIONS_ACTIVE.inc()
        return connection

    def forget(self, connection: Connection) -> None:
        """Deregister (idempotent): no more events are queued for ``connection``."""
        mine = self._by_user.get(connection.user_id)
        if mine is not None and mine.pop(connection.id, None) is not None:
            CONNECTIONS_ACTIVE.dec()
            if not mine:
                del self._by_user[connection.user_id]
        connection.outbox.clear()
        if connection.flusher is not None and not connection.flusher.done():
            connection.flusher.cancel()

    def release(self, connection: Connection) -> None:
        """The handler of ``connection`` is done with it: the last call of its ``finally``."""
        self.forget(connection)
        self._serving.discard(connection)
        if not self._serving and self._all_released is not None:
            self._all_released.set()

    def drop(self, connection: Connection, code: int, reason: str) -> None:
        """Decide to close ``connection``: it leaves the registry now, its handler closes the socket."""
        if connection.verdict is None:
            connection.verdict = (code, reason)
            CLIENTS_DROPPED.labels(_reason_label(code)).inc()
        self.forget(connection)
        connection.interrupt()

    def connections(self) -> Iterator[Connection]:
        for mine in list(self._by_user.values()):
            yield from list(mine.values())

    def count(self, user_id: UUID | None = None) -> int:
        if user_id is not None:
            return len(self._by_user.get(user_id, ()))
        return sum(len(mine) for mine in self._by_user.values())

    def seen(self, connection: Connection) -> None:
        connection.last_seen = _now()
        MESSAGES_IN.inc()

    # -- outbound -----------------------------------------------------------------

    def deliver(self, user_ids: Collection[UUID] | None, text: str) -> int:
        """Queue ``text`` for every connection of ``user_ids`` (``None``: everyone); return how many."""
        if user_ids is None:
            targets = list(self.connections())
        else:
            targets = [c for user_id in user_ids for c in list(self._by_user.get(user_id, {}).values())]
        for connection in targets:
            self.send(connection, text)
        return len(targets)

    def send(self, connection: Connection, text: str) -> None:
        if connection.verdict is not None:
            return
        if len(connection.outbox) >= self._queue_size:
            self.drop(connection, CLOSE_TOO_SLOW, "client too slow")
            return
        connection.outbox.append(text)
        if connection.flusher is None or connection.flusher.done():
            connection.flusher = asyncio.get_running_loop().create_task(self._flush(connection))

    async def _flush(self, connection: Connection) -> None:
        while connection.outbox and connection.verdict is None:
            text = connection.outbox.popleft()
            try:
                async with asyncio.timeout(self._send_timeout):
                    await connection.socket.send_text(text)
            except TimeoutError:
                self.drop(connection, CLOSE_TOO_SLOW, "client too slow")
                return
            except Exception:  # the client went away; its handler cleans up
                logger.debug("send to a closed websocket", exc_info=True)
                connection.outbox.clear()
                return
            MESSAGES_OUT.inc()

    # -- idle policy --------------------------------------------------------------

    def ping_quiet(self, ping_text: str) -> int:
        """Send a ping to each connection silent for ``ping_interval``; return how many were pinged."""
        quiet_since = _now() - self.ping_interval
        pinged = 0
        for connection in self.connections():
            if connection.last_seen <= quiet_since and not connection.outbox:
                self.send(connection, ping_text)
                pinged += 1
        return pinged

    async def run_pinger(self, ping_text: str) -> None:
        """The one background task of the idle policy (the handlers enforce the idle timeout)."""
        while True:
            await asyncio.sleep(self.ping_interval / 2)
            self.ping_quiet(ping_text)

    def idle_deadline(self, connection: Connection) -> float:
        return connection.last_seen + self.idle_timeout

    # -- shutdown -----------------------------------------------------------------

    async def close_all(self, wait_seconds: float = 2.0) -> None:
        """Refuse new sockets, tell every handler to close with 1001, and wait (bounded) until they did."""
        self._closing = True
        for connection in list(self.connections()):
            self.drop(connection, CLOSE_GOING_AWAY, "server shutting down")
        self._all_released = asyncio.Event()
        if not self._serving:
            self._all_released.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_seconds):
                await self._all_released.wait()


def _now() -> float:
    return asyncio.get_running_loop().time()


def _reason_label(code: int) -> str:
    return _DROP_REASONS.get(code, str(code))
