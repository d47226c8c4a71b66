"""The single-process fixed-window rate limiter, driven by a fake monotonic clock."""

from __future__ import annotations

import pytest

from app.infra.ratelimit import memory
from app.infra.ratelimit.memory import InMemoryRateLimiter


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def limiter(clock: FakeClock) -> InMemoryRateLimiter:
    return InMemoryRateLimiter(monotonic=clock)


async def test_allows_up_to_the_limit_then_returns_seconds_until_the_window_ends(
    limiter: InMemoryRateLimiter, clock: FakeClock
) -> None:
    assert [await limiter.hit("k", 3, 60) for _ in range(3)] == [0, 0, 0]
    clock.advance(10.2)
    assert await limiter.hit("k", 3, 60) == 50  # ceil(60 - 10.2)
    clock.advance(40)
    assert await limiter.hit("k", 3, 60) == 10


async def test_retry_after_is_at_least_one_second(limiter: InMemoryRateLimiter, clock: FakeClock) -> None:
    await limiter.hit("k", 1, 60)
    clock.advance(59.99)
    assert await limiter.hit("k", 1, 60) == 1


async def test_window_resets_once_it_ends(limiter: InMemoryRateLimiter, clock: FakeClock) -> None:
    for _ in range(5):
        await limiter.hit("k", 2, 60)
    assert await limiter.hit("k", 2, 60) > 0
    clock.advance(60)
    assert await limiter.hit("k", 2, 60) == 0
    assert await limiter.hit("k", 2, 60) == 0
    assert await limiter.hit("k", 2, 60) == 60


async def test_keys_are_counted_independently(limiter: InMemoryRateLimiter) -> None:
    assert await limiter.hit("login:addr:1.2.3.4", 1, 60) == 0
    assert await limiter.hit("login:addr:1.2.3.4", 1, 60) == 60
    assert await limiter.hit("login:addr:5.6.7.8", 1, 60) == 0


async def test_expired_windows_are_swept_once_the_table_grows_past_the_threshold(
    limiter: InMemoryRateLimiter, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(memory, "SWEEP_THRESHOLD", 100)
    for i in range(101):
        await limiter.hit(f"old:{i}", 5, 10)
    assert len(limiter) == 101
    clock.advance(11)

    await limiter.hit("new", 5, 10)

    assert len(limiter) == 1


async def test_sweep_keeps_live_windows_and_their_counts(
    limiter: InMemoryRateLimiter, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(memory, "SWEEP_THRESHOLD", 100)
    await limiter.hit("busy", 1, 60)
    for i in range(100):
        await limiter.hit(f"short:{i}", 5, 10)
    clock.advance(11)

    assert await limiter.hit("busy", 1, 60) == 49  # still limited after the sweep

    assert len(limiter) == 1


async def test_sweeping_is_amortised_when_every_window_is_live(
    limiter: InMemoryRateLimiter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Distinct keys within one window (an address spraying emails) must not make every hit scan the table."""
    monkeypatch.setattr(memory, "SWEEP_THRESHOLD", 100)
    sweeps = 0
    sweep = limiter._sweep

    def counting_sweep(now: float) -> None:
        nonlocal sweeps
        sweeps += 1
        sweep(now)

    monkeypatch.setattr(limiter, "_sweep", counting_sweep)
    for i in range(1000):
        await limiter.hit(f"login:acct:user{i}@example.com", 5, 300)

    assert len(limiter) == 1000
    assert 1 <= sweeps <= 5  # the table doubles between sweeps: 101, 202, 404, 808


async def test_default_clock_is_monotonic() -> None:
    limiter = InMemoryRateLimiter()
    assert await limiter.hit("k", 1, 60) == 0
    assert await limiter.hit("k", 1, 60) > 0
