"""SPEC section 4: the WebSocket under uvicorn, with fan-out between processes over Redis.

Every service here runs as a subprocess on PostgreSQL; the Redis they share is a
private ``redis-server`` the test starts (and restarts) on its own port, so
stopping it disturbs nothing else.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import signal
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.e2e.helpers import HOST, PrivateRedis, Service, ServiceFactory, unexpected_tracebacks
from tests.integration.task_harness import cast_of_users, task_body
from tests.support import fresh_postgres_database, litestar_cli, set_role

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

FAST_WS = {"WS_PING_INTERVAL_SECONDS": "0.5", "WS_IDLE_TIMEOUT_SECONDS": "1.5", "WS_AUTH_TIMEOUT_SECONDS": "1"}


@pytest.fixture
def fresh_database() -> Iterator[str]:
    """Each test registers the same cast of users: a migrated database of its own."""
    with fresh_postgres_database() as url:
        yield url


def ws_url(service: Service) -> str:
    return f"ws://{HOST}:{service.port}/ws"


@contextlib.asynccontextmanager
async def socket_of(service: Service, token: str) -> AsyncIterator[ClientConnection]:
    """An authenticated WebSocket (its ``ready`` message already read); the client answers no pings."""
    async with connect(ws_url(service), ping_interval=None, open_timeout=5, close_timeout=2) as ws:
        await ws.send(json.dumps({"type": "auth", "token": token}))
        ready = await next_event(ws)
        assert ready["type"] == "ready", ready
        yield ws


async def next_event(ws: ClientConnection, timeout: float = 5.0, skip: tuple[str, ...] = ("ping",)) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            message: dict[str, Any] = json.loads(await ws.recv())
            if message["type"] not in skip:
                return message


async def close_code(ws: ClientConnection, timeout: float = 5.0) -> int | None:
    """Read until the server closes the socket; return the close code it sent."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None


def token(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


async def test_task_notifications_reach_the_posters_sockets_live(
    fresh_database: str, service_factory: ServiceFactory
) -> None:
    service = service_factory(fresh_database, extra_env=FAST_WS)
    await service.wait_ready()
    async with httpx.AsyncClient(base_url=service.base_url, timeout=10) as client:
        people = await cast_of_users(client, fresh_database)
        ada, bob = people["ada"], people["bob"]
        async with (
            socket_of(service, token(ada)) as phone,
            socket_of(service, token(ada)) as laptop,
            socket_of(service, token(bob)) as bobs,
        ):
            posted = await client.post("/api/tasks", json=task_body(), headers=ada)
            assert posted.status_code == 201, posted.text
            taken = await client.post(f"/api/tasks/{posted.json()['id']}/take", headers=bob)
            assert taken.status_code == 200, taken.text
            for ws in (phone, laptop):
                event = await next_event(ws)
                assert event["type"] == "notification"
                assert event["kind"] == "task_taken"
                assert event["payload"]["task_id"] == posted.json()["id"]
            # the durable record is the same notification
            inbox = (await client.get("/api/notifications/me", headers=ada)).json()
            assert inbox["items"][0]["id"] == event["id"]
            # bob's socket got nothing of ada's
            with pytest.raises(TimeoutError):
                await next_event(bobs, timeout=0.5)


async def test_authentication_limit_and_idle_policy(fresh_database: str, service_factory: ServiceFactory) -> None:
    service = service_factory(fresh_database, extra_env={**FAST_WS, "WS_MAX_CONNECTIONS_PER_USER": "2"})
    await service.wait_ready()
    async with httpx.AsyncClient(base_url=service.base_url, timeout=10) as client:
        people = await cast_of_users(client, fresh_database)
    ada = token(people["ada"])

    async with connect(ws_url(service), ping_interval=None) as ws:
        await ws.send(json.dumps({"type": "auth", "token": ada[:-4] + "AAAA"}))
        assert await close_code(ws) == 4401
    async with connect(ws_url(service), ping_interval=None) as ws:  # says nothing at all
        assert await close_code(ws, timeout=3) == 4401

    async with socket_of(service, ada) as first, socket_of(service, ada), socket_of(service, ada):
        assert await close_code(first) == 4429

    # a client that answers pings stays; one that says nothing is closed after the idle timeout
    async with socket_of(service, ada) as talker, socket_of(service, ada) as mute:
        started = time.monotonic()
        mute_closed = asyncio.create_task(close_code(mute, timeout=5))
        while time.monotonic() - started < 3:
            event = await next_event(talker, skip=())
            assert event["type"] == "ping"
            await talker.send(json.dumps({"type": "pong"}))
        assert await mute_closed == 4408
        await talker.send(json.dumps({"type": "ping"}))
        assert (await next_event(talker))["type"] == "pong"


async def test_a_client_that_never_reads_is_dropped_and_memory_stays_bounded(
    fresh_database: str, service_factory: ServiceFactory
) -> None:
    service = service_factory(fresh_database, extra_env={"WS_SEND_QUEUE_SIZE": "64", "WS_SEND_TIMEOUT_SECONDS": "2"})
    await service.wait_ready()
    async with httpx.AsyncClient(base_url=service.base_url, timeout=30) as client:
        people = await cast_of_users(client, fresh_database)
        ada = people["ada"]
        user_id = people["ids"]["ada"]  # type: ignore[index]
        with never_reading_socket(service, token(ada)):
            await _metric_appears(client, r"taskmarket_ws_connections_active 1\.0")  # authenticated
            rss_before = _rss_kib(service)
            published = await client.post("/api/_test/events", params={"user_id": user_id, "count": 2000, "size": 4000})
            assert published.status_code == 204, published.text
            metrics = await _metric_appears(client, r'taskmarket_ws_clients_dropped_total\{reason="slow"\} 1\.0')
            assert re.search(r"taskmarket_ws_connections_active 0\.0", metrics), metrics
            # 2,000 events of 4 KB (8 MB) went to a client that reads nothing: the server held at most
            # its queue (64 events) and the socket buffers for it
            assert _rss_kib(service) - rss_before < 6 * 1024


async def _metric_appears(client: httpx.AsyncClient, pattern: str, limit_seconds: float = 15) -> str:
    deadline = time.monotonic() + limit_seconds
    while True:
        metrics = (await client.get("/metrics")).text
        if re.search(pattern, metrics):
            return metrics
        assert time.monotonic() < deadline, f"{pattern} not in /metrics:\n{metrics}"
        await asyncio.sleep(0.1)


@contextlib.contextmanager
def never_reading_socket(service: Service, access_token: str) -> Iterator[socket.socket]:
    """A WebSocket client on a plain TCP socket that authenticates, then never reads again."""
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.settimeout(5)
    try:
        raw.connect((HOST, service.port))
        key = base64.b64encode(os.urandom(16)).decode()
        raw.sendall(
            (
                f"GET /ws HTTP/1.1\r\nHost: {HOST}:{service.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        response = b""
        while b"\r\n\r\n" not in response:
            response += raw.recv(1)  # byte by byte: leave everything after the headers unread
        assert response.startswith(b"HTTP/1.1 101"), response
        raw.sendall(_masked_text_frame(json.dumps({"type": "auth", "token": access_token})))
        yield raw
    finally:
        raw.close()


def _masked_text_frame(text: str) -> bytes:
    payload = text.encode()
    mask = os.urandom(4)
    length = len(payload)
    header = bytes([0x81, 0x80 | length]) if length < 126 else bytes([0x81, 0x80 | 126]) + length.to_bytes(2, "big")
    return header + mask + bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))


def _rss_kib(service: Service) -> int:
    status = Path(f"/proc/{service.process.pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert match is not None
    return int(match.group(1))


async def test_events_cross_processes_over_redis_and_survive_a_redis_restart(
    fresh_database: str, service_factory: ServiceFactory, private_redis: PrivateRedis
) -> None:
    env = {**FAST_WS, "REDIS_URL": private_redis.url}
    a = service_factory(fresh_database, extra_env=env)
    b = service_factory(fresh_database, extra_env=env)
    await asyncio.gather(a.wait_ready(), b.wait_ready())
    async with httpx.AsyncClient(base_url=a.base_url, timeout=10) as client:
        people = await cast_of_users(client, fresh_database)
        ada, bob = people["ada"], people["bob"]
        async with socket_of(a, token(ada)) as on_a, socket_of(b, token(ada)) as on_b:
            await _wait_subscribed(client, a, b)
            posted = await client.post("/api/tasks", json=task_body(reward_points=50), headers=ada)
            taken = await client.post(f"/api/tasks/{posted.json()['id']}/take", headers=bob)
            assert taken.status_code == 200, taken.text
            for ws in (on_a, on_b):
                assert (await next_event(ws))["kind"] == "task_taken"

            private_redis.stop()
            # while Redis is down the API keeps serving, and this process's own sockets still get events
            fence = task_body(title="Paint a fence", reward_points=50)
            posted = await client.post("/api/tasks", json=fence, headers=ada)
            assert posted.status_code == 201, posted.text
            await client.post(f"/api/tasks/{posted.json()['id']}/take", headers=bob)
            assert (await next_event(on_a))["kind"] == "task_taken"
            private_redis.start()

            # the clients never reconnected; keep them answering pings while the services re-subscribe
            await _wait_subscribed(client, a, b, keepalive=(on_a, on_b))
            posted = await client.post("/api/tasks", json=task_body(title="Walk a dog", reward_points=50), headers=ada)
            await client.post(f"/api/tasks/{posted.json()['id']}/take", headers=bob)
            for ws in (on_a, on_b):
                event = await next_event(ws)
                assert (event["kind"], event["payload"]["task_id"]) == ("task_taken", posted.json()["id"])
    for service in (a, b):
        assert "event subscription lost; reconnecting" in service.log() or service is a
        assert not unexpected_tracebacks(service.log())


async def _wait_subscribed(
    client: httpx.AsyncClient, *services: Service, keepalive: tuple[ClientConnection, ...] = ()
) -> None:
    """Until every service's readiness reports its fan-out subscription (re)established."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        ready = []
        for service in services:
            response = await client.get(f"{service.base_url}/health/ready")
            components = response.json()["components"]
            ready.append("websocket_fanout" in components and response.status_code == 200)
        if all(ready):
            return
        for ws in keepalive:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.05):
                    while True:
                        if json.loads(await ws.recv())["type"] == "ping":
                            await ws.send(json.dumps({"type": "pong"}))
        await asyncio.sleep(0.2)
    raise AssertionError("the services did not (re)subscribe to the fan-out channel")


async def test_sigterm_closes_every_socket_and_the_process_exits(
    fresh_database: str, service_factory: ServiceFactory
) -> None:
    service = service_factory(fresh_database, extra_env={"WS_MAX_CONNECTIONS_PER_USER": "50"})
    await service.wait_ready()
    async with httpx.AsyncClient(base_url=service.base_url, timeout=10) as client:
        people = await cast_of_users(client, fresh_database)
    async with contextlib.AsyncExitStack() as stack:
        sockets = [await stack.enter_async_context(socket_of(service, token(people["ada"]))) for _ in range(20)]
        service.send_signal(signal.SIGTERM)
        codes = await asyncio.gather(*(close_code(ws, timeout=10) for ws in sockets))
        assert all(code in (1001, 1012) for code in codes), codes
        assert await service.wait_exit(10) is not None
    assert not unexpected_tracebacks(service.log())


async def test_a_chat_crosses_processes_both_ways_and_stays_private(
    fresh_database: str, service_factory: ServiceFactory, private_redis: PrivateRedis
) -> None:
    env = {**FAST_WS, "REDIS_URL": private_redis.url}
    a = service_factory(fresh_database, extra_env=env)
    b = service_factory(fresh_database, extra_env=env)
    await asyncio.gather(a.wait_ready(), b.wait_ready())
    async with httpx.AsyncClient(base_url=a.base_url, timeout=10) as client:
        people = await cast_of_users(client, fresh_database)
        ada, bob, eve = people["ada"], people["bob"], people["eve"]
        await set_role(fresh_database, "bob", "agent")
        online = await client.put("/api/support/agents/me/status", json={"status": "online"}, headers=bob)
        assert online.status_code == 200, online.text
        opened = await client.post("/api/support/chats", json={"subject": "Refund"}, headers=ada)
        assert opened.status_code == 201, opened.text
        chat_id = opened.json()["id"]
        # the assignment job, run once by hand as an operator would (the scheduler is not part of this test)
        assigned = await asyncio.to_thread(
            litestar_cli, "jobs", "run", "support-assignment", database_url=fresh_database
        )
        assert assigned.returncode == 0, assigned.stderr
        chat = (await client.get(f"/api/support/chats/{chat_id}", headers=ada)).json()
        assert (chat["status"], chat["agent_id"]) == ("assigned", people["ids"]["bob"])  # type: ignore[index]

        async with (
            socket_of(a, token(ada)) as user_on_a,
            socket_of(b, token(bob)) as agent_on_b,
            socket_of(a, token(eve)) as eve_on_a,
        ):
            await _wait_subscribed(client, a, b)
            await user_on_a.send(json.dumps({"type": "chat.send", "chat_id": chat_id, "body": "Hello?", "ref": "m1"}))
            received = await next_event(agent_on_b)
            assert (received["type"], received["body"], received["sender_role"]) == ("chat.message", "Hello?", "user")
            await agent_on_b.send(json.dumps({"type": "chat.typing", "chat_id": chat_id}))
            assert (await next_event(user_on_a, skip=("ping", "chat.message", "chat.sent")))["type"] == "chat.typing"
            await agent_on_b.send(json.dumps({"type": "chat.send", "chat_id": chat_id, "body": "Hi, Ada.", "ref": 2}))
            reply = await next_event(user_on_a, skip=("ping", "chat.sent"))
            assert (reply["type"], reply["body"], reply["sender_role"]) == ("chat.message", "Hi, Ada.", "agent")

            # eve is neither the user nor the agent: 404 over REST, an error and nothing else over the socket
            assert (await client.get(f"/api/support/chats/{chat_id}/messages", headers=eve)).status_code == 404
            await eve_on_a.send(json.dumps({"type": "chat.send", "chat_id": chat_id, "body": "Hi", "ref": "x"}))
            refused = await next_event(eve_on_a)
            assert (refused["type"], refused["code"], refused["ref"]) == ("error", "chat_not_found", "x")
            with pytest.raises(TimeoutError):
                await next_event(eve_on_a, timeout=0.5)
        history = (await client.get(f"/api/support/chats/{chat_id}/messages", headers=ada)).json()
        assert [m["body"] for m in history["items"]] == ["Hi, Ada.", "Hello?"]
