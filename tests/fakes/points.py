"""An in-memory PointsLedger with the same contract as the SQL one (single-threaded)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from uuid import UUID

from app.domain.points.model import (
    Allocation,
    Hold,
    HoldStatus,
    Lot,
    NewTransaction,
    PointTransaction,
    TransactionFilter,
    TransactionKind,
)
from app.domain.points.ports import IdempotencyKeyTaken


@dataclass
class _StoredLot:
    id: UUID
    user_id: UUID
    amount: int
    remaining: int
    expires_at: datetime
    expired: bool = False


class InMemoryPointsLedger:
    def __init__(self) -> None:
        self.transactions: list[tuple[PointTransaction, str | None]] = []
        self.lots: dict[UUID, _StoredLot] = {}
        self.holds: dict[UUID, Hold] = {}
        self.known_users: set[UUID] = set()

    async def user_exists(self, user_id: UUID) -> bool:
        return user_id in self.known_users

    async def find_by_idempotency_key(self, key: str) -> tuple[PointTransaction, str | None] | None:
        for transaction, fingerprint in self.transactions:
            if transaction.idempotency_key == key:
                return transaction, fingerprint
        return None

    async def insert_transaction(self, transaction: NewTransaction) -> PointTransaction:
        if transaction.idempotency_key is not None and await self.find_by_idempotency_key(transaction.idempotency_key):
            raise IdempotencyKeyTaken
        stored = PointTransaction(
            id=uuid.uuid4(),
            user_id=transaction.user_id,
            kind=transaction.kind,
            amount=transaction.amount,
            reason=transaction.reason,
            reference=transaction.reference,
            idempotency_key=transaction.idempotency_key,
            created_at=transaction.created_at,
            hold_id=transaction.hold_id,
        )
        self.transactions.append((stored, transaction.fingerprint))
        return stored

    async def lock_spendable_lots(self, user_id: UUID, now: datetime) -> list[Lot]:
        lots = [
            lot for lot in self.lots.values() if lot.user_id == user_id and lot.remaining > 0 and lot.expires_at > now
        ]
        lots.sort(key=lambda lot: (lot.expires_at, lot.id))
        return [Lot(id=lot.id, user_id=lot.user_id, remaining=lot.remaining, expires_at=lot.expires_at) for lot in lots]

    async def consume(self, allocations: Sequence[Allocation]) -> None:
        for allocation in allocations:
            lot = self.lots[allocation.lot_id]
            assert lot.remaining >= allocation.amount
            lot.remaining -= allocation.amount

    async def add_lot(self, user_id: UUID, amount: int, expires_at: datetime, created_at: datetime) -> None:
        lot_id = uuid.uuid4()
        self.lots[lot_id] = _StoredLot(lot_id, user_id, amount, amount, expires_at)

    async def insert_hold(self, hold: Hold, created_at: datetime) -> None:
        self.holds[hold.id] = hold

    async def lock_hold(self, hold_id: UUID) -> Hold | None:
        return self.holds.get(hold_id)

    async def set_hold_status(self, hold_id: UUID, status: HoldStatus, now: datetime) -> None:
        self.holds[hold_id] = replace(self.holds[hold_id], status=status)

    async def balance(self, user_id: UUID, now: datetime, expiring_until: datetime) -> tuple[int, int]:
        lots = [lot for lot in self.lots.values() if lot.user_id == user_id and lot.remaining > 0]
        expiring = sum(lot.remaining for lot in lots if now < lot.expires_at <= expiring_until)
        return sum(lot.remaining for lot in lots), expiring

    async def list_transactions(
        self, user_id: UUID, filters: TransactionFilter, limit: int, offset: int
    ) -> tuple[list[PointTransaction], int]:
        matching = [
            transaction
            for transaction, _ in reversed(self.transactions)
            if transaction.user_id == user_id
            and (not filters.kinds or transaction.kind in filters.kinds)
            and (filters.since is None or transaction.created_at >= filters.since)
            and (filters.until is None or transaction.created_at < filters.until)
        ]
        return matching[offset : offset + limit], len(matching)

    async def expire_due(self, now: datetime, batch_size: int) -> int:
        due = [lot for lot in self.lots.values() if lot.remaining > 0 and lot.expires_at <= now][:batch_size]
        for lot in due:
            self.transactions.append(
                (
                    PointTransaction(
                        id=uuid.uuid4(),
                        user_id=lot.user_id,
                        kind=TransactionKind.EXPIRE,
                        amount=-lot.remaining,
                        reason="expired",
                        reference=None,
                        idempotency_key=None,
                        created_at=now,
                    ),
                    None,
                )
            )
            lot.remaining = 0
            lot.expired = True
        return len(due)

    # invariant helpers for tests
    def lots_total(self, user_id: UUID) -> int:
        return sum(lot.remaining for lot in self.lots.values() if lot.user_id == user_id)

    def ledger_total(self, user_id: UUID) -> int:
        return sum(transaction.amount for transaction, _ in self.transactions if transaction.user_id == user_id)
