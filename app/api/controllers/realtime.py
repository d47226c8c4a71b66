"""``GET /ws``: the one WebSocket per client session (protocol in the README, "WebSocket protocol").

The handler only adapts Litestar's socket; authentication, the registry, the
idle policy and the commands live in the real-time server the composition root
provides. No ``db_session`` is injected here: a socket lives for hours, and each
command opens its own short session.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from litestar import WebSocket, websocket
from litestar.di import NamedDependency
from litestar.exceptions import WebSocketDisconnect


class AcceptedSocket(Protocol):
    async def receive_text(self) -> str | None: ...

    async def send_text(self, data: str) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


# Authenticates and runs one accepted socket until the client leaves or the server drops it.
ServeSocket = Callable[[AcceptedSocket], Awaitable[None]]


class _LitestarSocket:
    def __init__(self, socket: WebSocket[Any, Any, Any]) -> None:
        self._socket = socket

    async def receive_text(self) -> str | None:
        try:
            return await self._socket.receive_data("text")
        except WebSocketDisconnect:
            return None

    async def send_text(self, data: str) -> None:
        await self._socket.send_text(data)

    async def close(self, code: int, reason: str) -> None:
        await self._socket.close(code, reason)


@websocket("/ws", name="realtime")
async def realtime_socket(socket: WebSocket[Any, Any, Any], serve_socket: NamedDependency[ServeSocket]) -> None:
    await socket.accept()
    await serve_socket(_LitestarSocket(socket))
