"""The WebSocket protocol and connection policy, against in-memory sockets."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Mapping
from typing import Any

import pytest

from app.domain.shared.errors import Conflict
from app.infra.realtime.connections import (
    CLOSE_GOING_AWAY,
    CLOSE_IDLE,
    CLOSE_TOO_BIG,
    CLOSE_TOO_MANY_CONNECTIONS,
    CLOSE_TOO_SLOW,
    CLOSE_UNAUTHENTICATED,
    ConnectionManager,
)
from app.infra.realtime.server import PING, RealtimeServer

ALICE = uuid.uuid4()
BOB = uuid.uuid4()
TOKENS = {"alice-token": ALICE, "bob-token": BOB}


class FakeSocket:
    """An accepted socket: the test plays the client through ``inbox`` and ``sent``."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[str | None] = asyncio.Queue()
        self.sent: list[dict[str, Any]] = []
        self.closed: tuple[int, str] | None = None
        self.reading = asyncio.Event()  # cleared: sends block, like a client that stopped reading
        self.reading.set()
        self.got = asyncio.Event()

    async def receive_text(self) -> str | None:
        return await self.inbox.get()

    async def send_text(self, data: str) -> None:
        await self.reading.wait()
        self.sent.append(json.loads(data))
        self.got.set()

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def say(self, message: Mapping[str, Any] | str | None) -> None:
        """Send a message as the client; ``None``: the client disconnects."""
        self.inbox.put_nowait(message if message is None or isinstance(message, str) else json.dumps(message))

    async def next_message(self, timeout: float = 2.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while not self.sent:
                self.got.clear()
                await self.got.wait()
        return self.sent.pop(0)


async def authenticate(token: str) -> uuid.UUID | None:
    return TOKENS.get(token)


def make_server(**overrides: Any) -> RealtimeServer:
    options: dict[str, Any] = {
        "max_per_user": 2,
        "queue_size": 4,
        "send_timeout": 0.5,
        "ping_interval": 0.2,
        "idle_timeout": 0.6,
    }
    options.update(overrides)
    manager = ConnectionManager(**options)
    return RealtimeServer(manager, authenticate, auth_timeout=0.3, max_message_bytes=1024)


async def connect(server: RealtimeServer, token: str = "alice-token") -> tuple[FakeSocket, asyncio.Task[None]]:
    socket = FakeSocket()
    task = asyncio.create_task(server.serve(socket))
    socket.say({"type": "auth", "token": token})
    ready = await socket.next_message()
    assert ready["type"] == "ready"
    return socket, task


async def finished(task: asyncio.Task[None], timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout):
        await task


async def test_ready_after_auth_then_ping_pong_and_errors_keep_the_socket_open() -> None:
    server = make_server()
    socket, task = await connect(server)
    socket.say({"type": "ping"})
    assert await socket.next_message() == {"type": "pong"}
    socket.say("not json")
    assert (await socket.next_message())["code"] == "invalid_message"
    socket.say({"no": "type"})
    assert (await socket.next_message())["code"] == "invalid_message"
    socket.say({"type": "launch.rockets", "ref": 7})
    assert await socket.next_message() == {
        "type": "error",
        "code": "unknown_type",
        "message": "Unknown message type 'launch.rockets'.",
        "ref": 7,
    }
    assert server.manager.count(ALICE) == 1
    socket.say(None)  # the client leaves
    await finished(task)
    assert server.manager.count() == 0


@pytest.mark.parametrize(
    "first_message",
    [{"type": "auth", "token": "forged"}, {"type": "hello"}, "garbage", {"type": "auth", "token": 5}],
)
async def test_a_bad_first_message_closes_with_4401(first_message: Any) -> None:
    server = make_server()
    socket = FakeSocket()
    task = asyncio.create_task(server.serve(socket))
    socket.say(first_message)
    await finished(task)
    assert socket.closed == (CLOSE_UNAUTHENTICATED, "authentication required")
    assert socket.sent == []
    assert server.manager.count() == 0


async def test_no_auth_message_in_time_closes_with_4401() -> None:
    server = make_server()
    socket = FakeSocket()
    await finished(asyncio.create_task(server.serve(socket)))
    assert socket.closed is not None
    assert socket.closed[0] == CLOSE_UNAUTHENTICATED


async def test_a_client_gone_before_auth_is_not_registered() -> None:
    server = make_server()
    socket = FakeSocket()
    socket.say(None)
    await finished(asyncio.create_task(server.serve(socket)))
    assert socket.closed is None
    assert server.manager.count() == 0


async def test_the_connection_over_the_per_user_limit_closes_the_oldest_with_4429() -> None:
    server = make_server(max_per_user=2)
    first, first_task = await connect(server)
    _second, _ = await connect(server)
    _third, _ = await connect(server)
    await finished(first_task)
    assert first.closed == (CLOSE_TOO_MANY_CONNECTIONS, "too many connections for this user")
    assert server.manager.count(ALICE) == 2
    _bob, _ = await connect(server, "bob-token")  # the limit is per user
    assert server.manager.count() == 3


async def test_a_silent_client_gets_pings_and_is_closed_after_the_idle_timeout() -> None:
    server = make_server(ping_interval=0.1, idle_timeout=0.4)
    pinger = asyncio.create_task(server.manager.run_pinger(PING))
    try:
        socket, task = await connect(server)
        assert await socket.next_message() == {"type": "ping"}
        await finished(task, timeout=2.0)
        assert socket.closed == (CLOSE_IDLE, "idle timeout")
        assert server.manager.count() == 0
    finally:
        pinger.cancel()


async def test_answering_pings_keeps_a_client_connected() -> None:
    server = make_server(ping_interval=0.1, idle_timeout=0.3)
    pinger = asyncio.create_task(server.manager.run_pinger(PING))
    try:
        socket, task = await connect(server)
        for _ in range(8):  # 8 pings over ~0.8 s: well past the idle timeout
            assert await socket.next_message() == {"type": "ping"}
            socket.say({"type": "pong"})
        assert not task.done()
        assert socket.closed is None
    finally:
        pinger.cancel()


async def test_a_client_that_stops_reading_is_dropped_when_its_queue_is_full() -> None:
    server = make_server(queue_size=4, send_timeout=60)
    socket, task = await connect(server)
    socket.reading.clear()
    for n in range(50):
        server.manager.deliver([ALICE], json.dumps({"type": "event", "n": n}))
    await finished(task)
    assert socket.closed == (CLOSE_TOO_SLOW, "client too slow")
    assert server.manager.count() == 0
    # what it never read is gone with it: nothing kept for a dropped client
    assert server.manager.deliver([ALICE], "{}") == 0


async def test_a_send_that_takes_too_long_drops_the_client() -> None:
    server = make_server(send_timeout=0.1)
    socket, task = await connect(server)
    socket.reading.clear()
    server.manager.deliver([ALICE], json.dumps({"type": "event"}))
    await finished(task)
    assert socket.closed == (CLOSE_TOO_SLOW, "client too slow")


async def test_an_oversized_message_closes_with_1009() -> None:
    server = make_server()
    socket, task = await connect(server)
    socket.say({"type": "ping", "padding": "x" * 2000})
    await finished(task)
    assert socket.closed == (CLOSE_TOO_BIG, "message too big")


async def test_commands_reply_ack_or_error_with_the_clients_ref() -> None:
    server = make_server()
    seen: list[tuple[uuid.UUID, Mapping[str, Any]]] = []

    async def send(user_id: uuid.UUID, message: Mapping[str, Any]) -> Mapping[str, Any] | None:
        seen.append((user_id, message))
        if message.get("body") == "refuse":
            raise Conflict("The chat is closed.", code="chat_closed")
        if message.get("body") == "crash":
            raise RuntimeError("boom")
        return None

    server.add_command("chat.send", send)
    socket, _task = await connect(server)
    socket.say({"type": "chat.send", "body": "hi", "ref": "a1"})
    assert await socket.next_message() == {"type": "ack", "ref": "a1"}
    socket.say({"type": "chat.send", "body": "refuse", "ref": "a2"})
    assert await socket.next_message() == {
        "type": "error",
        "code": "chat_closed",
        "message": "The chat is closed.",
        "ref": "a2",
    }
    socket.say({"type": "chat.send", "body": "crash", "ref": "a3"})
    assert (await socket.next_message())["code"] == "internal_error"
    socket.say({"type": "chat.send", "body": "no ref"})
    socket.say({"type": "ping"})
    assert await socket.next_message() == {"type": "pong"}  # no ack without a ref
    assert [m["body"] for _, m in seen] == ["hi", "refuse", "crash", "no ref"]
    assert {user for user, _ in seen} == {ALICE}


async def test_events_reach_every_socket_of_the_user_and_no_one_else() -> None:
    server = make_server(max_per_user=3)
    a1, _ = await connect(server)
    a2, _ = await connect(server)
    bob, _ = await connect(server, "bob-token")
    assert server.manager.deliver([ALICE], json.dumps({"type": "notification", "n": 1})) == 2
    assert await a1.next_message() == {"type": "notification", "n": 1}
    assert await a2.next_message() == {"type": "notification", "n": 1}
    await asyncio.sleep(0.05)
    assert bob.sent == []


async def test_close_all_closes_every_socket_with_1001_and_refuses_new_ones() -> None:
    server = make_server(max_per_user=5)
    sockets = [await connect(server) for _ in range(3)] + [await connect(server, "bob-token")]
    await server.manager.close_all(wait_seconds=2)
    for socket, task in sockets:
        assert task.done()
        assert socket.closed == (CLOSE_GOING_AWAY, "server shutting down")
    late = FakeSocket()
    late.say({"type": "auth", "token": "alice-token"})
    await finished(asyncio.create_task(server.serve(late)))
    assert late.closed == (CLOSE_GOING_AWAY, "server shutting down")
    assert server.manager.count() == 0


async def test_authentication_that_cannot_be_checked_closes_with_1013() -> None:
    async def database_down(token: str) -> uuid.UUID | None:
        raise ConnectionRefusedError("database unavailable")

    server = RealtimeServer(make_server().manager, database_down, auth_timeout=0.3, max_message_bytes=1024)
    socket = FakeSocket()
    socket.say({"type": "auth", "token": "alice-token"})
    await finished(asyncio.create_task(server.serve(socket)))
    assert socket.closed == (1013, "try again later")
    assert server.manager.count() == 0
