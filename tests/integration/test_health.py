"""Liveness does no I/O; readiness probes every component within the health timeout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.support import REDIS_URL, make_settings, redis_available, running_app

HEALTH_TIMEOUT = 1.0
# a closed port: connecting is refused at once
REFUSED_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:1/x"
REFUSED_REDIS_URL = "redis://127.0.0.1:1/0"
TIMEOUTS: dict[str, Any] = {
    "health_check_timeout_seconds": HEALTH_TIMEOUT,
    "database_connect_timeout_seconds": HEALTH_TIMEOUT,
    "redis_timeout_seconds": HEALTH_TIMEOUT,
}


class SilentServer:
    """Accepts TCP connections and never answers: a database that hangs instead of refusing."""

    def __init__(self) -> None:
        self.connections = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        await reader.read()  # until the client gives up

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def stop(self) -> None:
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@pytest.fixture
async def silent_server() -> AsyncIterator[tuple[SilentServer, int]]:
    server = SilentServer()
    port = await server.start()
    try:
        yield server, port
    finally:
        await server.stop()


async def timed_get(client: httpx.AsyncClient, path: str) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = await client.get(path)
    return response, time.perf_counter() - started


def components(response: httpx.Response) -> dict[str, dict[str, Any]]:
    body: dict[str, Any] = response.json()
    result: dict[str, dict[str, Any]] = body["components"]
    return result


async def test_liveness_answers_without_touching_an_unreachable_database(
    silent_server: tuple[SilentServer, int],
) -> None:
    server, port = silent_server
    settings = make_settings(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/x", **TIMEOUTS)
    # startup opens no connection: the app starts although the database never answers
    async with running_app(settings) as (_, client):
        for _ in range(3):
            response, elapsed = await timed_get(client, "/health")
            assert response.status_code == 200
            assert response.json() == {"status": "ok"}
            assert elapsed < 0.5
        assert server.connections == 0

        # readiness does probe it (so the count above means something)
        ready, _ = await timed_get(client, "/health/ready")
        assert ready.status_code == 503
        assert server.connections >= 1


async def test_liveness_answers_with_a_refused_database() -> None:
    async with running_app(make_settings(REFUSED_DATABASE_URL, **TIMEOUTS)) as (_, client):
        response = await client.get("/health")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}


async def test_readiness_is_ready_when_the_database_answers(database_url: str) -> None:
    async with running_app(make_settings(database_url, **TIMEOUTS)) as (_, client):
        response = await client.get("/health/ready")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ready"
    assert set(components(response)) == {"database"}
    database = components(response)["database"]
    assert database["status"] == "up"
    assert database["latency_ms"] >= 0


@pytest.mark.redis
async def test_readiness_reports_redis_up_when_configured(sqlite_url: str) -> None:
    await (await redis_available()).aclose()
    async with running_app(make_settings(sqlite_url, redis_url=REDIS_URL, **TIMEOUTS)) as (_, client):
        response = await client.get("/health/ready")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ready"
    statuses = {name: c["status"] for name, c in components(response).items()}
    assert statuses == {
        "database": "up",
        "redis": "up",
        "websocket_fanout": "up",
        # no scheduler or worker runs in this test: reported, but not a reason to take the API out
        "job_scheduler": "degraded",
        "job_workers": "degraded",
    }


async def test_readiness_is_503_at_once_when_the_database_refuses_connections() -> None:
    async with running_app(make_settings(REFUSED_DATABASE_URL, **TIMEOUTS)) as (_, client):
        response, elapsed = await timed_get(client, "/health/ready")
    assert response.status_code == 503, response.text
    assert response.json()["status"] == "not_ready"
    assert components(response)["database"]["status"] == "down"
    assert elapsed < HEALTH_TIMEOUT + 1.0


async def test_readiness_is_503_within_the_health_timeout_when_the_database_hangs(
    silent_server: tuple[SilentServer, int],
) -> None:
    _, port = silent_server
    settings = make_settings(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/x", **TIMEOUTS)
    started = time.perf_counter()
    async with running_app(settings) as (_, client):
        response, elapsed = await timed_get(client, "/health/ready")
    total = time.perf_counter() - started

    assert response.status_code == 503, response.text
    assert response.json()["status"] == "not_ready"
    assert components(response)["database"]["status"] == "down"
    # bounded by the health timeout (never the pool's or the driver's longer defaults) ...
    assert HEALTH_TIMEOUT * 0.9 <= elapsed < HEALTH_TIMEOUT + 1.0, elapsed
    # ... and the hung connection attempt does not hold up the shutdown either
    assert total < elapsed + 2.0, total


async def test_readiness_reports_redis_down_when_redis_is_unreachable(sqlite_url: str) -> None:
    settings = make_settings(sqlite_url, redis_url=REFUSED_REDIS_URL, **TIMEOUTS)
    async with running_app(settings) as (_, client):
        response, elapsed = await timed_get(client, "/health/ready")
        liveness = await client.get("/health")
    assert response.status_code == 503, response.text
    assert response.json()["status"] == "not_ready"
    # everything that lives on Redis says so: the cache itself, live fan-out, the jobs' heartbeats
    assert {name: c["status"] for name, c in components(response).items()} == {
        "database": "up",
        "redis": "down",
        "websocket_fanout": "down",
        "job_scheduler": "down",
        "job_workers": "down",
    }
    assert elapsed < HEALTH_TIMEOUT + 1.0
    assert liveness.status_code == 200
