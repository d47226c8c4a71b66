"""SPEC 6.2 / S1: SIGTERM with requests in flight on PostgreSQL.

uvicorn stops accepting at once and drains the in-flight requests; only then the
app's ordered shutdown runs (background tasks, sessions, then the pool), and the
process exits by itself, with a clean log.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time

import httpx
import pytest

from tests.e2e.helpers import HOST, ServiceFactory, admin_connection, app_backend_pids, forbidden_lines

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

IN_FLIGHT = 50
SLOW_SECONDS = 2.0
GRACEFUL_TIMEOUT = 10.0

_ORDERED_STEPS = (
    "close the loop bridge",
    "cancel background tasks",
    "close database sessions",
    "dispose database pool",
)
_STEP_DONE = re.compile(r"shutdown step done step=(?P<step>.+?) phase=")


async def _refused_within(port: int, limit_seconds: float) -> bool:
    """True once a new TCP connection to ``port`` is refused (polled for at most ``limit_seconds``)."""
    deadline = time.monotonic() + limit_seconds
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), 1)
        except ConnectionRefusedError:
            return True
        except (OSError, TimeoutError):
            pass
        else:
            writer.transport.abort()
        await asyncio.sleep(0.02)
    return False


async def test_sigterm_drains_in_flight_requests_then_shuts_down_in_order(
    e2e_database_url: str, service_factory: ServiceFactory
) -> None:
    # A pooled connection for every in-flight request (the default pool holds 20): this test is about
    # the drain, not about waiting for the pool.
    service = service_factory(
        e2e_database_url,
        graceful_timeout=GRACEFUL_TIMEOUT,
        extra_env={"DATABASE_POOL_SIZE": str(IN_FLIGHT), "DATABASE_MAX_OVERFLOW": "5"},
    )
    await service.wait_ready()
    admin = await admin_connection(e2e_database_url)
    try:
        limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=service.base_url, timeout=GRACEFUL_TIMEOUT + 5, limits=limits) as client:
            # open the pool's connections first, so the slow requests below all start at once
            warm = await asyncio.gather(
                *(client.get("/api/_test/slow", params={"seconds": 0.5}) for _ in range(IN_FLIGHT))
            )
            assert [r.status_code for r in warm] == [200] * IN_FLIGHT

            async def slow_request() -> tuple[httpx.Response | Exception, float]:
                try:
                    response: httpx.Response | Exception = await client.get(
                        "/api/_test/slow", params={"seconds": SLOW_SECONDS}
                    )
                except httpx.HTTPError as error:
                    response = error
                return response, time.monotonic()

            requests = [asyncio.create_task(slow_request()) for _ in range(IN_FLIGHT)]

            # In flight for sure: every request ran its first query and now waits inside its transaction.
            deadline = time.monotonic() + SLOW_SECONDS
            holding = 0
            while time.monotonic() < deadline:
                holding = len(await app_backend_pids(admin, e2e_database_url, state="idle in transaction"))
                if holding >= IN_FLIGHT:
                    break
                await asyncio.sleep(0.02)
            assert holding >= IN_FLIGHT, f"only {holding} of {IN_FLIGHT} requests reached the database in time"

            sigterm_at = time.monotonic()
            service.send_signal(signal.SIGTERM)

            refused = await _refused_within(service.port, 1.5)
            refused_at = time.monotonic()

            results = await asyncio.wait_for(asyncio.gather(*requests), GRACEFUL_TIMEOUT + 5)

        exit_code = await service.wait_exit(GRACEFUL_TIMEOUT + 2)
        exited_after = time.monotonic() - sigterm_at

        # the server refused new connections while the old ones were still being served
        assert refused, "a new connection was still accepted 1.5 s after SIGTERM"
        assert refused_at < min(done for _, done in results)

        # every in-flight request completed normally, after the signal
        failures = [
            repr(r) if isinstance(r, Exception) else f"{r.status_code} {r.text[:200]}"
            for r, _ in results
            if isinstance(r, Exception) or r.status_code != 200
        ]
        assert not failures, f"{len(failures)} in-flight requests failed: {failures[:5]}"
        assert all(done > sigterm_at for _, done in results)

        # the process ended by itself, well inside the graceful timeout (143 / -15: uvicorn re-raises SIGTERM)
        assert exit_code in {0, -signal.SIGTERM, 128 + signal.SIGTERM}, f"exit code {exit_code}\n{service.log()}"
        assert exited_after < GRACEFUL_TIMEOUT, f"exit took {exited_after:.1f} s"

        # nothing of the service is left connected to the database: the pool was disposed, no session leaked
        deadline = time.monotonic() + 3
        leftover = await app_backend_pids(admin, e2e_database_url)
        while leftover and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            leftover = await app_backend_pids(admin, e2e_database_url)
        assert not leftover, f"{len(leftover)} connections of the stopped service are still open"
    finally:
        await admin.close()

    log = service.log()
    assert not forbidden_lines(log), forbidden_lines(log)
    lines = log.splitlines()

    # the drain came first: every slow request was logged before the app's shutdown began
    lifespan_shutdown = next(i for i, line in enumerate(lines) if "Waiting for application shutdown" in line)
    sigterm_logged = next(i for i, line in enumerate(lines) if "Shutting down" in line)
    slow_logged = [
        i
        for i, line in enumerate(lines)
        if i > sigterm_logged and "path=/api/_test/slow" in line and "status=200" in line
    ]
    assert len(slow_logged) == IN_FLIGHT
    assert max(slow_logged) < lifespan_shutdown

    # then the ordered shutdown: every step done (none timed out or failed), in the order of SPEC 6.2
    assert "shutdown step timed out" not in log
    assert "shutdown step failed" not in log
    steps = [match["step"] for line in lines if (match := _STEP_DONE.search(line))]
    for step in _ORDERED_STEPS:
        assert step in steps, f"step {step!r} missing from {steps}"
    assert steps.index("close the loop bridge") < steps.index("cancel background tasks")
    assert steps.index("cancel background tasks") < steps.index("dispose database pool")
    assert steps.index("close database sessions") < steps.index("dispose database pool")
    assert any("shutdown complete" in line for line in lines[lifespan_shutdown:])
    assert "Application shutdown complete" in log
