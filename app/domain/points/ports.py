"""What the points context needs from storage."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol
from uuid import UUID

from app.domain.points.model import (
    Allocation,
    Hold,
    HoldStatus,
    Lot,
    NewTransaction,
    PointTransaction,
    TransactionFilter,
)


class IdempotencyKeyTaken(Exception):
    """``insert_transaction`` found the idempotency key already used (by a committed transaction)."""


class PointsLedger(Protocol):
    async def user_exists(self, user_id: UUID) -> bool: ...

    async def find_by_idempotency_key(self, key: str) -> tuple[PointTransaction, str | None] | None:
        """The transaction recorded under ``key`` and the fingerprint of the request that made it."""
        ...

    async def insert_transaction(self, transaction: NewTransaction) -> PointTransaction:
        """Append to the ledger; raises ``IdempotencyKeyTaken`` without spoiling the surrounding transaction."""
        ...

    async def lock_spendable_lots(self, user_id: UUID, now: datetime) -> list[Lot]:
        """The user's unexpired lots with points left, those expiring first first, locked until commit.

        Locking them serialises concurrent debits of one user.
        """
        ...

    async def consume(self, allocations: Sequence[Allocation]) -> None: ...

    async def add_lot(self, user_id: UUID, amount: int, expires_at: datetime, created_at: datetime) -> None: ...

    async def insert_hold(self, hold: Hold, created_at: datetime) -> None: ...

    async def lock_hold(self, hold_id: UUID) -> Hold | None: ...

    async def set_hold_status(self, hold_id: UUID, status: HoldStatus, now: datetime) -> None: ...

    async def release_holds(self, hold_ids: Sequence[UUID], now: datetime) -> list[Hold]:
        """Release, at once, those of ``hold_ids`` still held; return them (as they were before).

        For each: the hold becomes released, its allocations come back as new lots with the expiries
        they had (as ``add_lot`` does), and a ``release`` transaction is recorded (as ``release`` does).
        A constant number of statements whatever the number of holds; holds not held are left alone.
        """
        ...

    async def balance(self, user_id: UUID, now: datetime, expiring_until: datetime) -> tuple[int, int]:
        """(sum of remaining lots, the part of it expiring between ``now`` and ``expiring_until``)."""
        ...

    async def list_transactions(
        self, user_id: UUID, filters: TransactionFilter, limit: int, offset: int
    ) -> tuple[list[PointTransaction], int]:
        """A page of the user's ledger, newest first (then by id), and the total count.

        The ledger is the recorded transactions and one ``expire`` entry per expired lot
        (id: the lot's; amount: what the lot held; time: when it expired).
        """
        ...

    async def expire_due(self, now: datetime, batch_size: int) -> int:
        """Expire up to ``batch_size`` due lots; return how many.

        An expired lot is emptied and keeps what it held and when as its ``expire`` entry of the
        ledger (see ``list_transactions``); nothing else is written. Safe to run concurrently with
        itself and with debits: a lot is emptied, and so expired, exactly once.
        """
        ...
