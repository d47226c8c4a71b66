"""Any sequence of ledger operations keeps balance == remaining lots == sum of transactions."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from app.domain.points.model import HoldStatus
from app.domain.points.service import InsufficientPoints, PointsPolicy, PointsService
from app.domain.shared.errors import Conflict
from tests.fakes.points import InMemoryPointsLedger

USERS = [uuid.UUID(int=n) for n in range(1, 4)]


class _Clock:
    def __init__(self) -> None:
        self.current = datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current


class _NoCommit:
    async def commit(self) -> None:
        return None

    async def rollback(self) -> None:
        return None


class PointsLedgerMachine(RuleBasedStateMachine):
    holds = Bundle("holds")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()  # a test-only loop driving the async service
        self.clock = _Clock()
        self.ledger = InMemoryPointsLedger()
        self.service = PointsService(self.ledger, _NoCommit(), self.clock, PointsPolicy(timedelta(days=10)))

    def teardown(self) -> None:
        self.loop.close()

    def run(self, coroutine: object) -> object:
        return self.loop.run_until_complete(coroutine)  # type: ignore[arg-type]

    @rule(user=st.sampled_from(USERS), amount=st.integers(1, 500))
    def earn(self, user: uuid.UUID, amount: int) -> None:
        self.run(self.service.earn(user, amount))

    @rule(user=st.sampled_from(USERS), amount=st.integers(1, 500), key=st.sampled_from(["a", "b", None]))
    def grant(self, user: uuid.UUID, amount: int, key: str | None) -> None:
        with contextlib.suppress(Conflict):  # the key was used for another request: refused, nothing applied
            self.run(self.service.grant(user, amount, idempotency_key=key))

    @rule(user=st.sampled_from(USERS), amount=st.integers(1, 300))
    def spend(self, user: uuid.UUID, amount: int) -> None:
        with contextlib.suppress(InsufficientPoints):
            self.run(self.service.spend(user, amount))

    @rule(target=holds, user=st.sampled_from(USERS), amount=st.integers(1, 300))
    def hold(self, user: uuid.UUID, amount: int) -> uuid.UUID | None:
        try:
            return self.run(self.service.hold(user, amount)).id  # type: ignore[attr-defined, no-any-return]
        except InsufficientPoints:
            return None

    @rule(hold_id=holds)
    def release(self, hold_id: uuid.UUID | None) -> None:
        if hold_id is not None and self.ledger.holds[hold_id].status in (HoldStatus.HELD, HoldStatus.RELEASED):
            self.run(self.service.release(hold_id))

    @rule(hold_id=holds, to_user=st.sampled_from(USERS))
    def capture(self, hold_id: uuid.UUID | None, to_user: uuid.UUID) -> None:
        if hold_id is not None and self.ledger.holds[hold_id].status in (HoldStatus.HELD, HoldStatus.CAPTURED):
            self.run(self.service.capture(hold_id, to_user))

    @rule(user=st.sampled_from(USERS), amount=st.integers(1, 300))
    def refund(self, user: uuid.UUID, amount: int) -> None:
        self.run(self.service.refund(user, amount))

    @rule(days=st.integers(1, 6))
    def time_passes_and_lots_expire(self, days: int) -> None:
        self.clock.current += timedelta(days=days)
        while self.run(self.service.expire_due(self.clock.current, batch_size=3)) == 3:
            pass

    @invariant()
    def balance_equals_lots_equals_ledger(self) -> None:
        for user in USERS:
            balance = self.run(self.service.summary(user)).balance  # type: ignore[attr-defined]
            assert balance == self.ledger.lots_total(user) == self.ledger.ledger_total(user)
            assert balance >= 0

    @invariant()
    def no_lot_is_negative(self) -> None:
        assert all(lot.remaining >= 0 for lot in self.ledger.lots.values())


PointsLedgerMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
test_points_ledger_keeps_its_invariant = PointsLedgerMachine.TestCase
