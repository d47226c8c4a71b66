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
    # the lot's expire entry, set once by the sweep (as the SQL ledger keeps it on the lot)
    expired_at: datetime | None = None
    expired_amount: int | None = None

    def expire_entry(self) -> PointTransaction | None:
        if self.expired_amount is None or self.expired_at is None:
            return None
        return PointTransaction(
            id=self.id,
            user_id=self.user_id,
            kind=TransactionKind.EXPIRE,
            amount=-self.expired_amount,
            reason="expired",
            reference=None,
            idempotency_key=None,
            created_at=self.expired_at,
        )


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

    async def release_holds(self, hold_ids: Sequence[UUID], now: datetime) -> list[Hold]:
        released = [
            hold
            for hold_id in dict.fromkeys(hold_ids)
            if (hold := self.holds.get(hold_id)) is not None and hold.status is HoldStatus.HELD
        ]
        for hold in released:
            self.holds[hold.id] = replace(hold, status=HoldStatus.RELEASED)
            await self.insert_transaction(
                NewTransaction(
                    user_id=hold.user_id,
                    kind=TransactionKind.RELEASE,
                    amount=hold.amount,
                    reason="release",
                    reference=hold.reference,
                    idempotency_key=None,
                    fingerprint=None,
                    created_at=now,
                    hold_id=hold.id,
                )
            )
            for allocation in hold.allocations:
                await self.add_lot(hold.user_id, allocation.amount, allocation.expires_at, now)
        return released

    async def balance(self, user_id: UUID, now: datetime, expiring_until: datetime) -> tuple[int, int]:
        lots = [lot for lot in self.lots.values() if lot.user_id == user_id and lot.remaining > 0]
        expiring = sum(lot.remaining for lot in lots if now < lot.expires_at <= expiring_until)
        return sum(lot.remaining for lot in lots), expiring

    def entries(self) -> list[PointTransaction]:
        """The whole ledger: the transactions and the expire entries of expired lots."""
        expired = [entry for lot in self.lots.values() if (entry := lot.expire_entry()) is not None]
        return [transaction for transaction, _ in self.transactions] + expired

    async def list_transactions(
        self, user_id: UUID, filters: TransactionFilter, limit: int, offset: int
    ) -> tuple[list[PointTransaction], int]:
        matching = [
            entry
            for entry in self.entries()
            if entry.user_id == user_id
            and (not filters.kinds or entry.kind in filters.kinds)
            and (filters.since is None or entry.created_at >= filters.since)
            and (filters.until is None or entry.created_at < filters.until)
        ]
        matching.sort(key=lambda entry: (entry.created_at, entry.id), reverse=True)
        return matching[offset : offset + limit], len(matching)

    async def expire_due(self, now: datetime, batch_size: int) -> int:
        due = [lot for lot in self.lots.values() if lot.remaining > 0 and lot.expires_at <= now][:batch_size]
        for lot in due:
            lot.expired_amount, lot.expired_at, lot.remaining = lot.remaining, now, 0
        return len(due)

    # invariant helpers for tests
    def lots_total(self, user_id: UUID) -> int:
        return sum(lot.remaining for lot in self.lots.values() if lot.user_id == user_id)

    def ledger_total(self, user_id: UUID) -> int:
        return sum(entry.amount for entry in self.entries() if entry.user_id == user_id)
