"""Login rate limits: per account and per client address, in memory or shared through Redis (failing open)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio as redis_asyncio

from tests.support import REDIS_URL, login, make_settings, redis_available, register, running_app

PREFIX = "ratelimit:"
WINDOW_SECONDS = 300


def unique_name(stem: str) -> str:
    return f"{stem}_{uuid.uuid4().hex[:10]}"


async def attempt(client: httpx.AsyncClient, email: str, password: str = "Wrong€Pass9") -> httpx.Response:
    return await client.post("/api/secure-auth/login", json={"email": email, "password": password})


def assert_rate_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= WINDOW_SECONDS
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == 429
    assert body["code"] == "rate_limited"
    assert body["title"] == "Too Many Requests"


# ---- in-memory limiter (no Redis configured) -------------------------------------------------------------------------


async def test_fourth_login_attempt_for_one_account_is_rate_limited(sqlite_url: str) -> None:
    settings = make_settings(sqlite_url, login_rate_limit_per_account=3, login_rate_limit_per_address=100)
    name = unique_name("ada")
    email = f"{name}@example.com"
    async with running_app(settings) as (_, client):
        await register(client, name)
        assert (await attempt(client, email)).status_code == 401
        assert (await attempt(client, email)).status_code == 401
        assert (await attempt(client, email.upper())).status_code == 401  # same account, other spelling

        # the limit is checked before the password: even the right one is refused now
        assert_rate_limited(await attempt(client, email, "Secret€Pass9"))

        # only that account is limited, not the whole address
        other = unique_name("bob")
        await register(client, other)
        assert (await login(client, other))["token_type"] == "bearer"


async def test_fourth_login_attempt_from_one_address_is_rate_limited(sqlite_url: str) -> None:
    settings = make_settings(sqlite_url, login_rate_limit_per_account=100, login_rate_limit_per_address=3)
    async with running_app(settings) as (app, client):
        for _ in range(3):
            assert (await attempt(client, f"{unique_name('nobody')}@example.com")).status_code == 401
        assert_rate_limited(await attempt(client, f"{unique_name('nobody')}@example.com"))

        # another client address is counted on its own
        transport = httpx.ASGITransport(app=app, client=("198.51.100.9", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as elsewhere:
            assert (await attempt(elsewhere, f"{unique_name('nobody')}@example.com")).status_code == 401


# ---- Redis limiter ---------------------------------------------------------------------------------------------------


@pytest.fixture
async def redis_client() -> AsyncIterator[redis_asyncio.Redis]:
    """The test Redis, with only the rate limiter's keys removed before and after."""
    client = await redis_available()

    async def clear() -> None:
        keys = [key async for key in client.scan_iter(match=f"{PREFIX}*")]
        if keys:
            await client.delete(*keys)

    await clear()
    try:
        yield client
    finally:
        await clear()
        await client.aclose()


@pytest.mark.redis
async def test_two_app_instances_share_the_login_count_through_redis(
    sqlite_url: str, redis_client: redis_asyncio.Redis
) -> None:
    settings = make_settings(
        sqlite_url, redis_url=REDIS_URL, login_rate_limit_per_account=3, login_rate_limit_per_address=100
    )
    email = f"{unique_name('shared')}@example.com"
    async with running_app(settings) as (_, first), running_app(settings) as (_, second):
        assert (await attempt(first, email)).status_code == 401
        assert (await attempt(first, email)).status_code == 401
        assert (await attempt(second, email)).status_code == 401
        assert_rate_limited(await attempt(second, email))
        assert_rate_limited(await attempt(first, email))

    # the count lives in Redis under the app's prefix and expires with the window
    ttl_ms = await redis_client.pttl(f"{PREFIX}login:acct:{email}")
    assert 0 < ttl_ms <= WINDOW_SECONDS * 1000
    assert int(await redis_client.get(f"{PREFIX}login:acct:{email}")) == 5


@pytest.mark.redis
async def test_redis_limiter_counts_per_address_across_instances(
    sqlite_url: str, redis_client: redis_asyncio.Redis
) -> None:
    settings = make_settings(
        sqlite_url, redis_url=REDIS_URL, login_rate_limit_per_account=100, login_rate_limit_per_address=3
    )
    async with running_app(settings) as (_, first), running_app(settings) as (_, second):
        assert (await attempt(first, f"{unique_name('a')}@example.com")).status_code == 401
        assert (await attempt(second, f"{unique_name('b')}@example.com")).status_code == 401
        assert (await attempt(first, f"{unique_name('c')}@example.com")).status_code == 401
        assert_rate_limited(await attempt(second, f"{unique_name('d')}@example.com"))


async def test_redis_limiter_fails_open_with_a_warning_when_redis_is_unreachable(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(
        sqlite_url,
        redis_url="redis://127.0.0.1:1/0",
        login_rate_limit_per_account=3,
        login_rate_limit_per_address=3,
    )
    name = unique_name("ada")
    email = f"{name}@example.com"
    async with running_app(settings) as (_, client):
        await register(client, name)
        with caplog.at_level(logging.WARNING, logger="app.infra.ratelimit.redis"):
            for _ in range(5):  # beyond both limits
                assert (await attempt(client, email)).status_code == 401
            assert (await login(client, name))["token_type"] == "bearer"

    warnings = [
        r
        for r in caplog.records
        if r.name == "app.infra.ratelimit.redis"
        and r.levelno == logging.WARNING
        and "rate limiter unavailable" in r.getMessage()
    ]
    # one warning per interval, not one per attempt: an outage must not flood the log
    assert len(warnings) == 1
    assert warnings[0].failures == 1  # type: ignore[attr-defined]
