"""The points ledger on SQLAlchemy Core.

Concurrency: debits of one user lock that user's spendable lots (``FOR UPDATE``, in
expiry order, so two debits never deadlock); the expiry sweep takes lots with
``SKIP LOCKED`` and so never waits for, or blocks, a debit. Idempotency keys are a
unique column of the ledger. SQLite runs one writer at a time, so the same
statements are safe there without row locks.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

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
from app.infra.db.tables import PointHoldRecord, PointLotRecord, PointTransactionRecord, UserRecord

_TX = PointTransactionRecord
_LOT = PointLotRecord
_TX_COLUMNS = (
    _TX.id,
    _TX.user_id,
    _TX.kind,
    _TX.amount,
    _TX.reason,
    _TX.reference,
    _TX.idempotency_key,
    _TX.created_at,
    _TX.hold_id,
)

# PostgreSQL: one statement per batch. Lock due lots without waiting for any, zero them,
# and write one expire row each; the partial unique index on expire rows backs it up.
_EXPIRE_BATCH_POSTGRES = text(
    """
    WITH due AS (
        SELECT id, user_id, remaining FROM point_lots
        WHERE remaining > 0 AND expires_at <= :now
        ORDER BY expires_at
        LIMIT :batch_size
        FOR UPDATE SKIP LOCKED
    ), emptied AS (
        UPDATE point_lots AS lot SET remaining = 0, expired_at = :now
        FROM due WHERE lot.id = due.id
        RETURNING due.id, due.user_id, due.remaining
    )
    INSERT INTO point_transactions (id, user_id, kind, amount, reason, lot_id, created_at)
    SELECT gen_random_uuid(), user_id, 'expire', -remaining, 'expired', id, :now FROM emptied
    """
)


def _to_transaction(row: Any) -> PointTransaction:
    return PointTransaction(
        id=row.id,
        user_id=row.user_id,
        kind=TransactionKind(row.kind),
        amount=row.amount,
        reason=row.reason,
        reference=row.reference,
        idempotency_key=row.idempotency_key,
        created_at=row.created_at,
        hold_id=row.hold_id,
    )


def _allocations_to_json(allocations: Sequence[Allocation]) -> list[dict[str, str | int]]:
    return [{"lot_id": str(a.lot_id), "amount": a.amount, "expires_at": a.expires_at.isoformat()} for a in allocations]


def _allocations_from_json(items: list[dict[str, Any]]) -> tuple[Allocation, ...]:
    return tuple(
        Allocation(
            lot_id=uuid.UUID(str(item["lot_id"])),
            amount=int(item["amount"]),
            expires_at=datetime.datetime.fromisoformat(str(item["expires_at"])),
        )
        for item in items
    )


class SqlPointsLedger:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    @property
    def _is_postgres(self) -> bool:
        return self._session.get_bind().dialect.name == "postgresql"

    async def user_exists(self, user_id: uuid.UUID) -> bool:
        return (await self._session.execute(select(UserRecord.id).where(UserRecord.id == user_id))).first() is not None

    async def find_by_idempotency_key(self, key: str) -> tuple[PointTransaction, str | None] | None:
        statement = select(*_TX_COLUMNS, _TX.fingerprint).where(_TX.idempotency_key == key)
        row = (await self._session.execute(statement)).first()
        return None if row is None else (_to_transaction(row), row.fingerprint)

    async def insert_transaction(self, transaction: NewTransaction) -> PointTransaction:
        statement = (
            insert(_TX)
            .values(
                id=uuid.uuid4(),
                user_id=transaction.user_id,
                kind=transaction.kind.value,
                amount=transaction.amount,
                reason=transaction.reason,
                reference=transaction.reference,
                idempotency_key=transaction.idempotency_key,
                fingerprint=transaction.fingerprint,
                hold_id=transaction.hold_id,
                created_at=transaction.created_at,
            )
            .returning(*_TX_COLUMNS)
        )
        try:
            # A savepoint: a duplicate key leaves the caller's transaction usable for the replay.
            async with self._session.begin_nested():
                row = (await self._session.execute(statement)).one()
        except IntegrityError as error:
            if transaction.idempotency_key is not None and "idempotency_key" in str(error.orig):
                raise IdempotencyKeyTaken from None
            raise
        return _to_transaction(row)

    async def lock_spendable_lots(self, user_id: uuid.UUID, now: datetime.datetime) -> list[Lot]:
        statement = (
            select(_LOT.id, _LOT.user_id, _LOT.remaining, _LOT.expires_at)
            .where(_LOT.user_id == user_id, _LOT.remaining > 0, _LOT.expires_at > now)
            .order_by(_LOT.expires_at, _LOT.id)
            .with_for_update()
        )
        rows = (await self._session.execute(statement)).all()
        return [Lot(id=row.id, user_id=row.user_id, remaining=row.remaining, expires_at=row.expires_at) for row in rows]

    async def consume(self, allocations: Sequence[Allocation]) -> None:
        for allocation in allocations:
            await self._session.execute(
                update(_LOT).where(_LOT.id == allocation.lot_id).values(remaining=_LOT.remaining - allocation.amount)
            )

    async def add_lot(
        self, user_id: uuid.UUID, amount: int, expires_at: datetime.datetime, created_at: datetime.datetime
    ) -> None:
        await self._session.execute(
            insert(_LOT).values(
                id=uuid.uuid4(),
                user_id=user_id,
                amount=amount,
                remaining=amount,
                expires_at=expires_at,
                created_at=created_at,
            )
        )

    async def insert_hold(self, hold: Hold, created_at: datetime.datetime) -> None:
        await self._session.execute(
            insert(PointHoldRecord).values(
                id=hold.id,
                user_id=hold.user_id,
                amount=hold.amount,
                status=hold.status.value,
                reference=hold.reference,
                allocations=_allocations_to_json(hold.allocations),
                created_at=created_at,
            )
        )

    async def lock_hold(self, hold_id: uuid.UUID) -> Hold | None:
        statement = select(PointHoldRecord).where(PointHoldRecord.id == hold_id).with_for_update()
        record = (await self._session.execute(statement)).scalar_one_or_none()
        if record is None:
            return None
        return Hold(
            id=record.id,
            user_id=record.user_id,
            amount=record.amount,
            status=HoldStatus(record.status),
            reference=record.reference,
            allocations=_allocations_from_json(record.allocations),
        )

    async def set_hold_status(self, hold_id: uuid.UUID, status: HoldStatus, now: datetime.datetime) -> None:
        await self._session.execute(
            update(PointHoldRecord).where(PointHoldRecord.id == hold_id).values(status=status.value, settled_at=now)
        )

    async def balance(
        self, user_id: uuid.UUID, now: datetime.datetime, expiring_until: datetime.datetime
    ) -> tuple[int, int]:
        expiring = and_(_LOT.expires_at > now, _LOT.expires_at <= expiring_until)
        statement = select(
            func.coalesce(func.sum(_LOT.remaining), 0),
            func.coalesce(func.sum(_LOT.remaining).filter(expiring), 0),
        ).where(_LOT.user_id == user_id, _LOT.remaining > 0)
        row = (await self._session.execute(statement)).one()
        return int(row[0]), int(row[1])

    async def list_transactions(
        self, user_id: uuid.UUID, filters: TransactionFilter, limit: int, offset: int
    ) -> tuple[list[PointTransaction], int]:
        conditions = [_TX.user_id == user_id]
        if filters.kinds:
            conditions.append(_TX.kind.in_([kind.value for kind in filters.kinds]))
        if filters.since is not None:
            conditions.append(_TX.created_at >= filters.since)
        if filters.until is not None:
            conditions.append(_TX.created_at < filters.until)
        page = (
            select(*_TX_COLUMNS)
            .where(*conditions)
            .order_by(_TX.created_at.desc(), _TX.id.desc())
            .limit(limit)
            .offset(offset)
        )
        rows = (await self._session.execute(page)).all()
        total = (await self._session.execute(select(func.count()).select_from(_TX).where(*conditions))).scalar_one()
        return [_to_transaction(row) for row in rows], int(total)

    async def expire_due(self, now: datetime.datetime, batch_size: int) -> int:
        if self._is_postgres:
            result = await self._session.execute(_EXPIRE_BATCH_POSTGRES, {"now": now, "batch_size": batch_size})
            return int(result.rowcount)  # type: ignore[attr-defined]
        return await self._expire_due_portable(now, batch_size)

    async def _expire_due_portable(self, now: datetime.datetime, batch_size: int) -> int:
        """The same batch in three statements, for SQLite (one writer at a time)."""
        due = (
            await self._session.execute(
                select(_LOT.id, _LOT.user_id, _LOT.remaining)
                .where(_LOT.remaining > 0, _LOT.expires_at <= now)
                .order_by(_LOT.expires_at)
                .limit(batch_size)
            )
        ).all()
        if not due:
            return 0
        await self._session.execute(
            update(_LOT).where(_LOT.id.in_([row.id for row in due])).values(remaining=0, expired_at=now)
        )
        await self._session.execute(
            insert(_TX),
            [
                {
                    "id": uuid.uuid4(),
                    "user_id": row.user_id,
                    "kind": TransactionKind.EXPIRE.value,
                    "amount": -row.remaining,
                    "reason": "expired",
                    "lot_id": row.id,
                    "created_at": now,
                }
                for row in due
            ],
        )
        return len(due)
