"""The WebSocket protocol: authentication, the receive loop, and commands from clients.

The wire format is JSON objects with a ``type`` (documented in the README,
"WebSocket protocol"). A client authenticates with its first message,
``{"type": "auth", "token": "<access token>"}``, so the token never appears in
a URL that proxies and servers log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol
from uuid import UUID

import msgspec

from app.domain.shared.errors import DomainError
from app.infra.realtime.connections import (
    CLIENTS_DROPPED,
    CLOSE_GOING_AWAY,
    CLOSE_IDLE,
    CLOSE_TOO_BIG,
    CLOSE_TRY_AGAIN_LATER,
    CLOSE_UNAUTHENTICATED,
    Connection,
    ConnectionManager,
    ShuttingDown,
)

logger = logging.getLogger("app.realtime")

PING = msgspec.json.encode({"type": "ping"}).decode()
PONG = msgspec.json.encode({"type": "pong"}).decode()
_CLOSE_TIMEOUT_SECONDS = 2.0

Authenticator = Callable[[str], Awaitable[UUID | None]]
# A command handler: (user id, message) -> a reply object or None; raises DomainError to refuse.
Command = Callable[[UUID, Mapping[str, Any]], Awaitable[Mapping[str, Any] | None]]


class ServerSocket(Protocol):
    """An accepted WebSocket, as the API adapts it."""

    async def receive_text(self) -> str | None:
        """The next text message, or ``None`` once the client has gone."""
        ...

    async def send_text(self, data: str) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


def encode(message: Mapping[str, Any]) -> str:
    return msgspec.json.encode(message).decode()


class RealtimeServer:
    def __init__(
        self,
        manager: ConnectionManager,
        authenticate: Authenticator,
        *,
        auth_timeout: float,
        max_message_bytes: int,
        commands: Mapping[str, Command] | None = None,
    ) -> None:
        self.manager = manager
        self._authenticate = authenticate
        self._auth_timeout = auth_timeout
        self._max_message_bytes = max_message_bytes
        self._commands: dict[str, Command] = dict(commands or {})

    def add_command(self, message_type: str, handler: Command) -> None:
        self._commands[message_type] = handler

    async def serve(self, socket: ServerSocket) -> None:
        """Run one accepted socket until the client leaves or the server drops it."""
        user_id = await self._handshake(socket)
        if user_id is None:
            return
        try:
            connection = self.manager.open(user_id, socket)
        except ShuttingDown:
            await _close(socket, CLOSE_GOING_AWAY, "server shutting down")
            return
        try:
            self.manager.send(
                connection,
                encode(
                    {
                        "type": "ready",
                        "user_id": str(user_id),
                        "ping_interval_seconds": self.manager.ping_interval,
                        "idle_timeout_seconds": self.manager.idle_timeout,
                    }
                ),
            )
            await self._receive_loop(connection, socket)
        finally:
            self.manager.release(connection)

    async def _handshake(self, socket: ServerSocket) -> UUID | None:
        """Wait for ``{"type": "auth", "token": ...}``; close with 4401 on anything else or on timeout."""
        try:
            async with asyncio.timeout(self._auth_timeout):
                raw = await socket.receive_text()
        except TimeoutError:
            raw = ""
        if raw is None:
            return None
        token = _auth_token(raw) if len(raw) <= self._max_message_bytes else None
        try:
            user_id = await self._authenticate(token) if token else None
        except Exception as exc:  # noqa: BLE001 - the database may be down or busy: the client retries
            logger.warning("websocket authentication unavailable", extra={"error": type(exc).__name__})
            CLIENTS_DROPPED.labels("auth_unavailable").inc()
            await _close(socket, CLOSE_TRY_AGAIN_LATER, "try again later")
            return None
        if user_id is None:
            CLIENTS_DROPPED.labels("unauthenticated").inc()
            await _close(socket, CLOSE_UNAUTHENTICATED, "authentication required")
        return user_id

    async def _receive_loop(self, connection: Connection, socket: ServerSocket) -> None:
        while connection.verdict is None:
            try:
                async with asyncio.timeout_at(self.manager.idle_deadline(connection)) as deadline:
                    connection.deadline = deadline
                    raw = await socket.receive_text()
            except TimeoutError:
                break
            finally:
                connection.deadline = None
            if raw is None:
                return  # the client closed
            if _dropped(connection):
                break  # dropped while its message was arriving
            self.manager.seen(connection)
            if len(raw) > self._max_message_bytes and len(raw.encode()) > self._max_message_bytes:
                self.manager.drop(connection, CLOSE_TOO_BIG, "message too big")
                break
            reply = await self._dispatch(connection.user_id, raw)
            if reply is not None:
                self.manager.send(connection, reply)
        if connection.verdict is None:
            self.manager.drop(connection, CLOSE_IDLE, "idle timeout")
        code, reason = connection.verdict or (CLOSE_IDLE, "idle timeout")
        await _close(socket, code, reason)

    async def _dispatch(self, user_id: UUID, raw: str) -> str | None:
        try:
            message = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            return _error("invalid_message", "Messages are JSON objects with a string `type`.", None)
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            return _error("invalid_message", "Messages are JSON objects with a string `type`.", None)
        ref = message.get("ref")
        ref = ref if isinstance(ref, (str, int)) and not isinstance(ref, bool) else None
        kind = message["type"]
        if kind == "pong":
            return None
        if kind == "ping":
            return PONG
        handler = self._commands.get(kind)
        if handler is None:
            return _error("unknown_type", f"Unknown message type {kind[:64]!r}.", ref)
        try:
            reply = await handler(user_id, message)
        except DomainError as exc:
            return _error(exc.code, exc.message, ref)
        except Exception:
            logger.exception("websocket command failed", extra={"message_type": kind})
            return _error("internal_error", "The command failed; try again.", ref)
        if reply is None:
            return encode({"type": "ack", "ref": ref}) if ref is not None else None
        return encode({**reply, "ref": ref}) if ref is not None else encode(reply)


def _dropped(connection: Connection) -> bool:
    return connection.verdict is not None


def _auth_token(raw: str) -> str | None:
    try:
        message = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None
    if isinstance(message, dict) and message.get("type") == "auth":
        token = message.get("token")
        if isinstance(token, str) and 0 < len(token) <= 4096:
            return token
    return None


def _error(code: str, message: str, ref: str | int | None) -> str:
    body: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if ref is not None:
        body["ref"] = ref
    return encode(body)


async def _close(socket: ServerSocket, code: int, reason: str) -> None:
    """Send a close frame, bounded: a client that does not read must not hold the handler."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(_CLOSE_TIMEOUT_SECONDS):
            await socket.close(code, reason)
