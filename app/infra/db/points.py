"""The points ledger on SQLAlchemy Core.

Concurrency: debits of one user lock that user's spendable lots (``FOR UPDATE``, in
expiry order, so two debits never deadlock); the expiry sweep takes lots with
``SKIP LOCKED`` and so never waits for, or blocks, a debit. Idempotency keys are a
unique column of the ledger. SQLite runs one writer at a time, so the same
statements are safe there without row locks.

Where the ledger lives: the rows of ``point_transactions``, and one ``expire`` entry per
expired lot, kept on the lot itself (it lost ``expired_amount`` points at ``expired_at``;
the entry's id is the lot's). The sweep then only updates the lots it expires: it writes no
ledger row, and a lot is expired once because it is emptied once (``remaining > 0`` is
the condition of the sweep). ``ledger_entries`` is the whole ledger as one selectable.
"""

from __future__ import annotations

import datetime
import typing
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    CompoundSelect,
    Select,
    String,
    Table,
    and_,
    any_,
    bindparam,
    cast,
    func,
    insert,
    literal_column,
    null,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

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
_HOLD = PointHoldRecord
_TX_TABLE = typing.cast(Table, _TX.__table__)
_LOT_TABLE = typing.cast(Table, _LOT.__table__)
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
# The expire entry of an expired lot, with the columns of ``_TX_COLUMNS`` (and ``lot_id``).
_EXPIRED = _LOT.expired_amount.is_not(None)  # the predicate of ix_point_lots_user_expired, word for word
_EXPIRE_COLUMNS = (
    _LOT.id.label("id"),
    _LOT.user_id.label("user_id"),
    literal_column(f"'{TransactionKind.EXPIRE.value}'", String).label("kind"),
    (-_LOT.expired_amount).label("amount"),
    literal_column("'expired'", String).label("reason"),
    cast(null(), _TX.reference.type).label("reference"),
    cast(null(), _TX.idempotency_key.type).label("idempotency_key"),
    _LOT.expired_at.label("created_at"),
    cast(null(), _TX.hold_id.type).label("hold_id"),
)


def ledger_entries() -> CompoundSelect[Any]:
    """Every entry of every user's ledger: the transactions, then the expire entries of expired lots."""
    return union_all(
        select(*_TX_COLUMNS, _TX.lot_id), select(*_EXPIRE_COLUMNS, _LOT.id.label("lot_id")).where(_EXPIRED)
    )


# PostgreSQL: one statement per batch. Lock due lots (oldest due first, through ix_point_lots_due)
# without waiting for any, and empty them, recording what they held as their expire entry. The
# batch is handed to the UPDATE as the locked rows' physical addresses (a TID scan): joined on
# ``id`` instead, PostgreSQL hashed the whole table for each batch. ``remaining > 0`` is what
# keeps a lot from expiring twice: ``FOR UPDATE`` re-checks it on the row's latest version, and a
# row locked here cannot change (or move) before this statement ends. (Not repeated outside: there
# it would offer the planner the spendable-lots index instead of the TID scan.)
_EXPIRE_BATCH_POSTGRES = text(
    """
    UPDATE point_lots SET expired_amount = remaining, remaining = 0, expired_at = :now
    WHERE ctid = ANY(ARRAY(
        SELECT ctid FROM point_lots
        WHERE remaining > 0 AND expires_at <= :now
        ORDER BY expires_at
        LIMIT :batch_size
        FOR UPDATE SKIP LOCKED
    ))
    """
)


# Releasing a batch of holds (the task expiry sweep), a constant number of statements whatever the batch:
# one guarded UPDATE of the holds (``status = 'held'``: a hold is released once), then the release
# transactions and the restored lots each in one INSERT. PostgreSQL: ``INSERT ... SELECT FROM unnest(<arrays>)``,
# a few parameters whatever the batch (a VALUES list would be thousands, past the protocol's limit of 32,767
# for large batches). SQLite, one writer in process: an executemany of the plain INSERT.
_RELEASE_TRANSACTIONS_POSTGRES = text(
    """
    INSERT INTO point_transactions (id, user_id, kind, amount, reason, reference, hold_id, created_at)
    SELECT released.id, released.user_id, 'release', released.amount, 'release',
        released.reference, released.hold_id, :now
    FROM unnest(
        CAST(:ids AS uuid[]), CAST(:user_ids AS uuid[]), CAST(:amounts AS integer[]),
        CAST(:references AS varchar[]), CAST(:hold_ids AS uuid[])
    ) AS released(id, user_id, amount, reference, hold_id)
    """
)
# The lots come back as ``add_lot`` makes them: new lots with the allocations' expiries, even those past by
# now (the lot sweep then expires them, as after a single release).
_RESTORE_LOTS_POSTGRES = text(
    """
    INSERT INTO point_lots (id, user_id, amount, remaining, expires_at, created_at)
    SELECT restored.id, restored.user_id, restored.amount, restored.amount, restored.expires_at, :now
    FROM unnest(
        CAST(:ids AS uuid[]), CAST(:user_ids AS uuid[]), CAST(:amounts AS integer[]),
        CAST(:expiries AS timestamptz[])
    ) AS restored(id, user_id, amount, expires_at)
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
        if transaction.idempotency_key is None:
            # Nothing to replay: any failure is the caller's to roll back, no savepoint needed (it would
            # cost two more round trips, for each release of each task the expiry sweep cancels too).
            return _to_transaction((await self._session.execute(statement)).one())
        try:
            # A savepoint: a duplicate key leaves the caller's transaction usable for the replay.
            async with self._session.begin_nested():
                row = (await self._session.execute(statement)).one()
        except IntegrityError as error:
            if "idempotency_key" in str(error.orig):
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

    async def release_holds(self, hold_ids: Sequence[uuid.UUID], now: datetime.datetime) -> list[Hold]:
        if not hold_ids:
            return []
        among = (
            _HOLD.id == any_(cast(bindparam("hold_ids", list(hold_ids)), ARRAY(PG_UUID(as_uuid=True))))
            if self._is_postgres
            else _HOLD.id.in_(list(hold_ids))
        )
        statement = (
            update(_HOLD)
            .where(among, _HOLD.status == HoldStatus.HELD.value)
            .values(status=HoldStatus.RELEASED.value, settled_at=now)
            .returning(_HOLD.id, _HOLD.user_id, _HOLD.amount, _HOLD.reference, _HOLD.allocations)
        )
        holds = [
            Hold(
                id=row.id,
                user_id=row.user_id,
                amount=row.amount,
                status=HoldStatus.HELD,
                reference=row.reference,
                allocations=_allocations_from_json(row.allocations),
            )
            for row in (await self._session.execute(statement)).all()
        ]
        if not holds:
            return []
        transactions = [
            {"id": uuid.uuid4(), "user_id": h.user_id, "amount": h.amount, "reference": h.reference, "hold_id": h.id}
            for h in holds
        ]
        lots = [
            {"id": uuid.uuid4(), "user_id": h.user_id, "amount": a.amount, "expires_at": a.expires_at}
            for h in holds
            for a in h.allocations
        ]
        if self._is_postgres:
            await self._session.execute(
                _RELEASE_TRANSACTIONS_POSTGRES,
                {"now": now, **{f"{key}s": [row[key] for row in transactions] for key in transactions[0]}},
            )
            if lots:
                await self._session.execute(
                    _RESTORE_LOTS_POSTGRES,
                    {
                        "now": now,
                        "ids": [lot["id"] for lot in lots],
                        "user_ids": [lot["user_id"] for lot in lots],
                        "amounts": [lot["amount"] for lot in lots],
                        "expiries": [lot["expires_at"] for lot in lots],
                    },
                )
            return holds
        release = {"kind": TransactionKind.RELEASE.value, "reason": "release", "created_at": now}
        await self._session.execute(insert(_TX_TABLE), [{**row, **release} for row in transactions])
        if lots:
            await self._session.execute(
                insert(_LOT_TABLE), [{**lot, "remaining": lot["amount"], "created_at": now} for lot in lots]
            )
        return holds

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
        # Each part of the ledger is read through its own index, newest first, and cut to the rows the
        # page can need (``offset + limit``), before the parts are merged: ix_point_transactions_user_created
        # for the transactions, ix_point_lots_user_expired for the expire entries of the user's lots.
        parts: list[Select[*tuple[Any, ...]]] = []
        counts: list[Select[int]] = []
        if not filters.kinds or filters.kinds - {TransactionKind.EXPIRE}:
            conditions = [_TX.user_id == user_id, *_period(_TX.created_at, filters)]
            if filters.kinds:
                conditions.append(_TX.kind.in_([kind.value for kind in filters.kinds]))
            parts.append(select(*_TX_COLUMNS).where(*conditions).order_by(_TX.created_at.desc(), _TX.id.desc()))
            counts.append(select(func.count()).select_from(_TX).where(*conditions))
        if not filters.kinds or TransactionKind.EXPIRE in filters.kinds:
            conditions = [_LOT.user_id == user_id, _EXPIRED, *_period(_LOT.expired_at, filters)]
            parts.append(select(*_EXPIRE_COLUMNS).where(*conditions).order_by(_LOT.expired_at.desc(), _LOT.id.desc()))
            counts.append(select(func.count()).select_from(_LOT).where(*conditions))
        if not parts:  # pragma: no cover - a filter always names at least one kind
            return [], 0
        cut = offset + limit
        merged = union_all(*(part.limit(cut).subquery().select() for part in parts)).subquery()
        page = select(merged).order_by(merged.c.created_at.desc(), merged.c.id.desc()).limit(limit).offset(offset)
        rows = (await self._session.execute(page)).all()
        total = 0
        for count in counts:
            total += int((await self._session.execute(count)).scalar_one())
        return [_to_transaction(row) for row in rows], total

    async def expire_due(self, now: datetime.datetime, batch_size: int) -> int:
        if self._is_postgres:
            result = await self._session.execute(_EXPIRE_BATCH_POSTGRES, {"now": now, "batch_size": batch_size})
            return int(result.rowcount)  # type: ignore[attr-defined]
        return await self._expire_due_portable(now, batch_size)

    async def _expire_due_portable(self, now: datetime.datetime, batch_size: int) -> int:
        """The same batch in two statements, for SQLite (one writer at a time)."""
        statement = (
            select(_LOT.id)
            .where(_LOT.remaining > 0, _LOT.expires_at <= now)
            .order_by(_LOT.expires_at)
            .limit(batch_size)
        )
        due = list((await self._session.execute(statement)).scalars())
        if not due:
            return 0
        result = await self._session.execute(
            update(_LOT)
            .where(_LOT.id.in_(due), _LOT.remaining > 0)
            .values(expired_amount=_LOT.remaining, remaining=0, expired_at=now)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


def _period(
    column: InstrumentedAttribute[datetime.datetime] | InstrumentedAttribute[datetime.datetime | None],
    filters: TransactionFilter,
) -> list[ColumnElement[bool]]:
    """The conditions of the filter's ``since`` (inclusive) and ``until`` (exclusive) on ``column``."""
    conditions: list[ColumnElement[bool]] = []
    if filters.since is not None:
        conditions.append(column >= filters.since)
    if filters.until is not None:
        conditions.append(column < filters.until)
    return conditions
