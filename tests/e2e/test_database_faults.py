"""SPEC 6.5 / F1: the service survives a database that drops its connections or goes away, without a restart."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Awaitable, Callable

import httpx
import pytest

from tests.e2e.helpers import (
    F3_FRAGMENTS,
    ServiceFactory,
    TcpProxy,
    admin_connection,
    app_backend_pids,
    database_name,
    forbidden_lines,
    problem_code,
    unexpected_tracebacks,
    with_port,
)
from tests.support import POSTGRES_ADMIN_URL

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

PASSWORD = "Secret€Pass9"
FAIL_FAST_SECONDS = 2.0
RECOVERY_SECONDS = 5.0


def _new_name() -> str:
    return f"u{uuid.uuid4().hex[:10]}"


async def _register(client: httpx.AsyncClient, username: str) -> httpx.Response:
    return await client.post(
        "/api/users/register", json={"email": f"{username}@example.com", "username": username, "password": PASSWORD}
    )


async def _login(client: httpx.AsyncClient, username: str) -> httpx.Response:
    return await client.post("/api/secure-auth/login", json={"email": f"{username}@example.com", "password": PASSWORD})


async def _timed(call: Awaitable[httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await call
    return response, time.monotonic() - started


def _upstream() -> tuple[str, int]:
    location = POSTGRES_ADMIN_URL.split("@", 1)[1].split("/", 1)[0]
    host, _, port = location.partition(":")
    return host, int(port or 5432)


async def test_killed_server_connections_are_replaced_without_restart(
    e2e_database_url: str, service_factory: ServiceFactory
) -> None:
    service = service_factory(e2e_database_url)
    await service.wait_ready()
    admin = await admin_connection(e2e_database_url)
    try:
        async with httpx.AsyncClient(base_url=service.base_url, timeout=10) as client:
            # fill the pool with several connections, then kill every one of them on the server
            first = _new_name()
            assert (await _register(client, first)).status_code == 201
            assert (await _login(client, first)).status_code == 200
            warm = await asyncio.gather(*(client.get("/api/_test/slow", params={"seconds": 0.3}) for _ in range(6)))
            assert [r.status_code for r in warm] == [200] * 6
            before = set(await app_backend_pids(admin, e2e_database_url))
            assert len(before) >= 2, "the pool should hold several idle connections"

            killed = await admin.fetch(
                "SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()",
                database_name(e2e_database_url),
            )
            assert sum(row["done"] for row in killed) >= len(before)
            deadline = time.monotonic() + 3
            while before & set(await app_backend_pids(admin, e2e_database_url)) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)

            # the very next requests succeed: pre-ping throws the dead connections away
            ready = await asyncio.gather(*(client.get("/health/ready") for _ in range(6)))
            assert [r.status_code for r in ready] == [200] * 6, [r.text for r in ready]
            second = _new_name()
            created = await _register(client, second)
            assert created.status_code == 201, created.text
            tokens = await _login(client, second)
            assert tokens.status_code == 200, tokens.text
            assert (await _login(client, first)).status_code == 200
            me = await client.get(
                "/api/users/profile/me", headers={"Authorization": f"Bearer {tokens.json()['access_token']}"}
            )
            assert me.status_code == 200, me.text
            after = set(await app_backend_pids(admin, e2e_database_url))
            assert after, "the service should have reconnected"
            assert not after & before, "a killed connection is still in use"
    finally:
        await admin.close()
    assert not forbidden_lines(service.log()), forbidden_lines(service.log())
    assert "database unavailable" not in service.log(), "a request failed although the database was up"


async def test_requests_whose_connection_is_killed_mid_transaction_get_503(
    e2e_database_url: str, service_factory: ServiceFactory
) -> None:
    service = service_factory(e2e_database_url)
    await service.wait_ready()
    admin = await admin_connection(e2e_database_url)
    try:
        async with httpx.AsyncClient(base_url=service.base_url, timeout=10) as client:
            in_flight = [asyncio.create_task(client.get("/api/_test/slow", params={"seconds": 1.5})) for _ in range(4)]
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                if len(await app_backend_pids(admin, e2e_database_url, state="idle in transaction")) >= 4:
                    break
                await asyncio.sleep(0.02)
            killed_at = time.monotonic()
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                database_name(e2e_database_url),
            )
            replies = await asyncio.wait_for(asyncio.gather(*in_flight), 10)
            # the database said "terminating connection": that is an outage for these requests, not a bug (500)
            assert [r.status_code for r in replies] == [503] * 4, [r.text for r in replies]
            assert all(problem_code(r) == "database_unavailable" for r in replies)
            assert time.monotonic() - killed_at < 1.5 + FAIL_FAST_SECONDS
            # and the next ones are served again
            after = await asyncio.gather(*(client.get("/api/_test/slow", params={"seconds": 0}) for _ in range(4)))
            assert [r.status_code for r in after] == [200] * 4, [r.text for r in after]
    finally:
        await admin.close()
    assert not forbidden_lines(service.log()), forbidden_lines(service.log())


async def test_database_outage_fails_fast_with_503_and_recovers_without_restart(
    e2e_database_url: str, service_factory: ServiceFactory
) -> None:
    proxy = TcpProxy(*_upstream())
    await proxy.start()
    try:
        service = service_factory(with_port(e2e_database_url, proxy.port), graceful_timeout=5)
        await service.wait_ready()
        async with httpx.AsyncClient(base_url=service.base_url, timeout=10) as client:
            user = _new_name()
            assert (await _register(client, user)).status_code == 201
            tokens = await _login(client, user)
            assert tokens.status_code == 200
            auth = {"Authorization": f"Bearer {tokens.json()['access_token']}"}
            pooled = await asyncio.gather(*(client.get("/api/_test/slow", params={"seconds": 0.2}) for _ in range(4)))
            assert [r.status_code for r in pooled] == [200] * 4
            assert (await client.get("/health/ready")).status_code == 200
            assert proxy.accepted >= 2

            # --- the database goes away: listener closed, every open connection cut
            await proxy.stop()

            needs_database: list[tuple[str, Callable[[], Awaitable[httpx.Response]]]] = [
                ("register", lambda: _register(client, _new_name())),
                ("login", lambda: _login(client, user)),
                ("slow", lambda: client.get("/api/_test/slow", params={"seconds": 0})),
                ("profile", lambda: client.get("/api/users/profile/me", headers=auth)),
            ]
            # twice each: first the pooled (now dead) connections, then fresh connection attempts
            for round_ in range(2):
                for name, call in needs_database:
                    response, took = await _timed(call())
                    where = f"{name} (round {round_ + 1})"
                    assert response.status_code == 503, f"{where}: {response.status_code} {response.text}"
                    assert response.headers["content-type"].startswith("application/problem+json"), where
                    body = response.json()
                    assert body["code"] == "database_unavailable", where
                    assert body["status"] == 503, where
                    assert took < FAIL_FAST_SECONDS, f"{where} took {took:.2f} s"

            # under concurrency too
            started = time.monotonic()
            burst = await asyncio.gather(*(_register(client, _new_name()) for _ in range(10)))
            assert [r.status_code for r in burst] == [503] * 10
            assert all(problem_code(r) == "database_unavailable" for r in burst)
            assert time.monotonic() - started < FAIL_FAST_SECONDS * 2

            live, took = await _timed(client.get("/health"))
            assert live.status_code == 200
            assert took < 1
            ready, took = await _timed(client.get("/health/ready"))
            assert ready.status_code == 503
            assert ready.json()["components"]["database"]["status"] == "down"
            assert took < FAIL_FAST_SECONDS

            # --- the database returns on the same address: full recovery, same process
            await proxy.start()
            back_at = time.monotonic()
            recovered = False
            while time.monotonic() - back_at < RECOVERY_SECONDS:
                ready = await client.get("/health/ready", timeout=RECOVERY_SECONDS)
                if ready.status_code == 200 and (await _register(client, _new_name())).status_code == 201:
                    recovered = True
                    break
                await asyncio.sleep(0.1)
            recovery = time.monotonic() - back_at
            assert recovered, f"not recovered {RECOVERY_SECONDS} s after the database returned"
            assert recovery < RECOVERY_SECONDS

            assert (await _login(client, user)).status_code == 200
            assert (await client.get("/api/users/profile/me", headers=auth)).status_code == 200
            again = await asyncio.gather(*(client.get("/api/_test/slow", params={"seconds": 0}) for _ in range(5)))
            assert [r.status_code for r in again] == [200] * 5
        assert service.process.poll() is None, "the service must not have restarted or died"

        # and it still shuts down cleanly, with its pool full of post-outage connections
        service.send_signal(signal.SIGTERM)
        assert await service.wait_exit(10) in {0, -signal.SIGTERM, 128 + signal.SIGTERM}
    finally:
        await proxy.stop()
    log = service.log()
    assert not forbidden_lines(log), forbidden_lines(log)
    assert "unhandled error" not in log
    assert "shutdown step timed out" not in log
    assert "shutdown step failed" not in log


async def test_database_that_stops_answering_gets_503_in_bounded_time_and_shutdown_stays_clean(
    e2e_database_url: str, service_factory: ServiceFactory
) -> None:
    """The server is there (TCP accepted) but answers nothing: a frozen host, a partition without RST.

    Bound: one ping of a pooled connection (HEALTH_CHECK_TIMEOUT_SECONDS, 1 s) plus one connect attempt
    (DATABASE_CONNECT_TIMEOUT_SECONDS, 2 s), plus slack for a shared 2-core machine.
    """
    bound = 1.0 + 2.0 + 1.0
    graceful = 2.0
    proxy = TcpProxy(*_upstream())
    await proxy.start()
    admin = await admin_connection(e2e_database_url)
    try:
        service = service_factory(with_port(e2e_database_url, proxy.port), graceful_timeout=graceful)
        await service.wait_ready()
        async with httpx.AsyncClient(base_url=service.base_url, timeout=20) as client:
            assert (await _register(client, _new_name())).status_code == 201
            pooled = await asyncio.gather(*(client.get("/api/_test/slow", params={"seconds": 0.2}) for _ in range(4)))
            assert [r.status_code for r in pooled] == [200] * 4

            # two requests are inside their transaction when the database stops answering
            stuck = [asyncio.create_task(client.get("/api/_test/slow", params={"seconds": 0.5})) for _ in range(2)]
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                if len(await app_backend_pids(admin, e2e_database_url, state="idle in transaction")) >= 2:
                    break
                await asyncio.sleep(0.02)
            proxy.freeze()

            for name, call in [
                ("slow", lambda: client.get("/api/_test/slow", params={"seconds": 0})),
                ("register", lambda: _register(client, _new_name())),
                ("slow again", lambda: client.get("/api/_test/slow", params={"seconds": 0})),
            ]:
                response, took = await _timed(call())
                assert response.status_code == 503, f"{name}: {response.status_code} {response.text}"
                assert problem_code(response) == "database_unavailable", name
                assert took < bound, f"{name} took {took:.2f} s"
            live, took = await _timed(client.get("/health"))
            assert live.status_code == 200
            assert took < 1
            ready, took = await _timed(client.get("/health/ready"))
            assert ready.status_code == 503
            assert took < bound

            # SIGTERM while requests still wait on the silent database: the graceful timeout
            # cancels them, and the ordered shutdown still runs cleanly and in bounded time
            sigterm_at = time.monotonic()
            service.send_signal(signal.SIGTERM)
            exit_code = await service.wait_exit(graceful + 10)
            exited_after = time.monotonic() - sigterm_at
            outcomes = await asyncio.wait_for(asyncio.gather(*stuck, return_exceptions=True), 5)
        assert exit_code in {0, -signal.SIGTERM, 128 + signal.SIGTERM}, f"exit code {exit_code}\n{service.log()}"
        assert exited_after < graceful + 6, f"exit took {exited_after:.1f} s"
        assert all(isinstance(o, httpx.TransportError) or o.status_code >= 500 for o in outcomes), outcomes
    finally:
        await admin.close()
        await proxy.stop()
    log = service.log()
    assert not forbidden_lines(log, F3_FRAGMENTS), forbidden_lines(log, F3_FRAGMENTS)
    # the only tracebacks: uvicorn reporting the two requests it cancelled at the graceful timeout
    assert log.count("timeout graceful shutdown exceeded") >= 2
    assert not unexpected_tracebacks(log), unexpected_tracebacks(log)
    assert "unhandled error" not in log
    assert "shutdown step failed" not in log
    assert "shutdown step timed out" not in log
