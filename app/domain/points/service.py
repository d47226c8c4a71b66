"""Use cases of the points ledger.

Two kinds of methods:

* building blocks (``earn``, ``grant``, ``refund``, ``spend``, ``hold``, ``release``,
  ``capture``) that other contexts call *inside their own transaction*: they never
  commit, so a task's hold and the task itself stand or fall together;
* use cases (``admin_grant``, ``summary``, ``transactions``, ``expire_due``) that the
  API and the scheduler call: they commit.

Idempotency: a building block given an ``idempotency_key`` applies once. The key is
recorded with the ledger row it produced (a unique column), so of two concurrent
calls with one key the second waits for the first to commit and then replays its
result; the same key with a different request is refused.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from app.domain.points.model import (
    Allocation,
    Hold,
    HoldStatus,
    Lot,
    NewTransaction,
    PointsSummary,
    PointTransaction,
    TransactionFilter,
    TransactionKind,
)
from app.domain.points.ports import IdempotencyKeyTaken, PointsLedger
from app.domain.shared.errors import Conflict, FieldIssue, Forbidden, NotFound, ValidationFailed
from app.domain.shared.ports import Clock, UnitOfWork
from app.domain.users.model import Principal, Role

MAX_AMOUNT = 1_000_000_000
EXPIRING_WINDOW = timedelta(days=30)


class InsufficientPoints(Conflict):
    code = "insufficient_points"


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"


@dataclass(frozen=True, slots=True)
class PointsPolicy:
    lot_lifetime: timedelta  # how long earned points stay valid (default 365 days)


def _check_amount(amount: int) -> None:
    if not 0 < amount <= MAX_AMOUNT:
        raise ValidationFailed(
            "Amount must be a positive whole number of points.",
            issues=(FieldIssue(code="invalid_amount", message=f"Must be 1 to {MAX_AMOUNT}.", field="amount"),),
        )


def _fingerprint(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(part) for part in parts).encode()).hexdigest()


def allocate(lots: Sequence[Lot], amount: int) -> list[Allocation]:
    """Take ``amount`` from ``lots`` in order (they come sorted, those expiring first first)."""
    allocations: list[Allocation] = []
    left = amount
    for lot in lots:
        if left == 0:
            break
        taken = min(lot.remaining, left)
        if taken > 0:
            allocations.append(Allocation(lot_id=lot.id, amount=taken, expires_at=lot.expires_at))
            left -= taken
    if left:
        raise InsufficientPoints(f"Not enough points: {amount - left} of {amount} available.")
    return allocations


class PointsService:
    def __init__(self, ledger: PointsLedger, uow: UnitOfWork, clock: Clock, policy: PointsPolicy) -> None:
        self._ledger = ledger
        self._uow = uow
        self._clock = clock
        self._policy = policy

    async def _record_once(self, transaction: NewTransaction) -> tuple[PointTransaction, bool]:
        """Append ``transaction``; with a key already used, return the earlier one (or refuse a different request).

        Returns the transaction and whether it is new (and so must be applied).
        """
        key = transaction.idempotency_key
        if key is not None:
            earlier = await self._replay(key, transaction.fingerprint)
            if earlier is not None:
                return earlier, False
        try:
            return await self._ledger.insert_transaction(transaction), True
        except IdempotencyKeyTaken:
            assert key is not None
            earlier = await self._replay(key, transaction.fingerprint)
            if earlier is None:  # pragma: no cover - the key's owner rolled back between the two reads
                raise IdempotencyKeyReused("The idempotency key is in use; retry.") from None
            return earlier, False

    async def _replay(self, key: str, fingerprint: str | None) -> PointTransaction | None:
        found = await self._ledger.find_by_idempotency_key(key)
        if found is None:
            return None
        transaction, earlier_fingerprint = found
        if earlier_fingerprint != fingerprint:
            raise IdempotencyKeyReused("The idempotency key was already used for a different request.")
        return transaction

    async def _credit(
        self,
        kind: TransactionKind,
        user_id: UUID,
        amount: int,
        *,
        reason: str | None,
        reference: str | None,
        idempotency_key: str | None,
        expires_at: datetime | None = None,
    ) -> PointTransaction:
        _check_amount(amount)
        now = self._clock.now()
        expiry = expires_at or now + self._policy.lot_lifetime
        transaction, is_new = await self._record_once(
            NewTransaction(
                user_id=user_id,
                kind=kind,
                amount=amount,
                reason=reason,
                reference=reference,
                idempotency_key=idempotency_key,
                fingerprint=_fingerprint(kind, user_id, amount, reason, reference, expires_at),
                created_at=now,
            )
        )
        if is_new:
            await self._ledger.add_lot(user_id, amount, expiry, now)
        return transaction

    async def earn(
        self,
        user_id: UUID,
        amount: int,
        *,
        reason: str | None = None,
        reference: str | None = None,
        idempotency_key: str | None = None,
    ) -> PointTransaction:
        """Credit earned points (a new lot with the default lifetime). Does not commit."""
        return await self._credit(
            TransactionKind.EARN, user_id, amount, reason=reason, reference=reference, idempotency_key=idempotency_key
        )

    async def grant(
        self,
        user_id: UUID,
        amount: int,
        *,
        reason: str | None = None,
        reference: str | None = None,
        idempotency_key: str | None = None,
        expires_at: datetime | None = None,
    ) -> PointTransaction:
        """Credit granted points (admin or promotion). Does not commit."""
        return await self._credit(
            TransactionKind.GRANT,
            user_id,
            amount,
            reason=reason,
            reference=reference,
            idempotency_key=idempotency_key,
            expires_at=expires_at,
        )

    async def refund(
        self,
        user_id: UUID,
        amount: int,
        *,
        reason: str | None = None,
        reference: str | None = None,
        idempotency_key: str | None = None,
    ) -> PointTransaction:
        """Give back points that were spent (a new lot). Does not commit."""
        return await self._credit(
            TransactionKind.REFUND,
            user_id,
            amount,
            reason=reason,
            reference=reference,
            idempotency_key=idempotency_key,
        )

    async def _debit(
        self,
        kind: TransactionKind,
        user_id: UUID,
        amount: int,
        *,
        reason: str | None,
        reference: str | None,
        idempotency_key: str | None,
        hold_id: UUID | None = None,
    ) -> tuple[PointTransaction, list[Allocation] | None]:
        _check_amount(amount)
        now = self._clock.now()
        fingerprint = _fingerprint(kind, user_id, amount, reason, reference)
        # Lock first: a concurrent debit with the same key then waits here and, once the
        # first has committed, replays it instead of finding the points already gone.
        lots = await self._ledger.lock_spendable_lots(user_id, now)
        if idempotency_key is not None:
            earlier = await self._replay(idempotency_key, fingerprint)
            if earlier is not None:
                return earlier, None
        allocations = allocate(lots, amount)  # refuses before anything is written
        transaction, is_new = await self._record_once(
            NewTransaction(
                user_id=user_id,
                kind=kind,
                amount=-amount,
                reason=reason,
                reference=reference,
                idempotency_key=idempotency_key,
                fingerprint=fingerprint,
                created_at=now,
                hold_id=hold_id,
            )
        )
        if not is_new:
            return transaction, None
        await self._ledger.consume(allocations)
        return transaction, allocations

    async def spend(
        self,
        user_id: UUID,
        amount: int,
        *,
        reason: str | None = None,
        reference: str | None = None,
        idempotency_key: str | None = None,
    ) -> PointTransaction:
        """Use up points, those expiring first first. Does not commit.

        Raises:
            InsufficientPoints: the unexpired balance is smaller than ``amount``.
        """
        transaction, _ = await self._debit(
            TransactionKind.SPEND,
            user_id,
            amount,
            reason=reason,
            reference=reference,
            idempotency_key=idempotency_key,
        )
        return transaction

    async def hold(
        self, user_id: UUID, amount: int, *, reference: str | None = None, idempotency_key: str | None = None
    ) -> Hold:
        """Reserve points (for a posted task) until ``release`` or ``capture``. Does not commit."""
        hold_id = uuid.uuid4()
        transaction, allocations = await self._debit(
            TransactionKind.HOLD,
            user_id,
            amount,
            reason="hold",
            reference=reference,
            idempotency_key=idempotency_key,
            hold_id=hold_id,
        )
        if allocations is None:  # replayed: the hold exists already
            assert transaction.hold_id is not None
            return await self._get_hold(transaction.hold_id)
        hold = Hold(
            id=hold_id,
            user_id=user_id,
            amount=amount,
            status=HoldStatus.HELD,
            reference=reference,
            allocations=tuple(allocations),
        )
        await self._ledger.insert_hold(hold, self._clock.now())
        return hold

    async def _get_hold(self, hold_id: UUID) -> Hold:
        hold = await self._ledger.lock_hold(hold_id)
        if hold is None:
            raise NotFound("Hold not found.", code="hold_not_found")
        return hold

    async def _settle(self, hold_id: UUID, status: HoldStatus) -> Hold | None:
        """Lock the hold and mark it settled; ``None`` when it was already settled the same way (replay)."""
        hold = await self._get_hold(hold_id)
        if hold.status is status:
            return None
        if hold.status is not HoldStatus.HELD:
            raise Conflict(f"The hold is already {hold.status.value}.", code="hold_settled")
        await self._ledger.set_hold_status(hold_id, status, self._clock.now())
        return hold

    async def release(self, hold_id: UUID) -> None:
        """Give held points back to their owner, with the expiries they had. Idempotent. Does not commit."""
        await self.release_many([hold_id])

    async def release_many(self, hold_ids: Sequence[UUID]) -> None:
        """Give each of ``hold_ids`` back, in a few statements whatever their number (the expiry sweep gives
        back thousands of holds a batch). Idempotent: a hold already released is skipped. Does not commit.

        Raises NotFound for an unknown hold and Conflict (``hold_settled``) for a captured one, the first
        such in ``hold_ids`` (none of them is released then: the caller rolls back).
        """
        released = await self._ledger.release_holds(hold_ids, self._clock.now())
        if len(released) == len(set(hold_ids)):
            return
        # Only when the guarded update skipped some: say why (already released is a replay, not an error).
        done = {hold.id for hold in released}
        for hold_id in dict.fromkeys(hold_ids):
            if hold_id not in done:
                hold = await self._get_hold(hold_id)
                if hold.status is not HoldStatus.RELEASED:
                    raise Conflict(f"The hold is already {hold.status.value}.", code="hold_settled")

    async def capture(self, hold_id: UUID, to_user_id: UUID, *, reason: str | None = None) -> None:
        """Pay held points to another user (they earn a new lot). Idempotent. Does not commit."""
        hold = await self._settle(hold_id, HoldStatus.CAPTURED)
        if hold is None:
            return
        now = self._clock.now()
        await self._ledger.insert_transaction(
            NewTransaction(
                user_id=to_user_id,
                kind=TransactionKind.EARN,
                amount=hold.amount,
                reason=reason or "payment",
                reference=hold.reference,
                idempotency_key=None,
                fingerprint=None,
                created_at=now,
                hold_id=hold.id,
            )
        )
        await self._ledger.add_lot(to_user_id, hold.amount, now + self._policy.lot_lifetime, now)

    async def admin_grant(
        self,
        actor: Principal,
        user_id: UUID,
        amount: int,
        *,
        reason: str,
        idempotency_key: str,
        expires_in_days: int | None = None,
    ) -> PointTransaction:
        """An admin credits a user; the same key with the same request applies once."""
        if not actor.has_role(Role.ADMIN):
            raise Forbidden("Only admins grant points.")
        if not await self._ledger.user_exists(user_id):
            raise NotFound("User not found.", code="user_not_found")
        if expires_in_days is not None and not 1 <= expires_in_days <= 3650:
            raise ValidationFailed(
                "expires_in_days must be 1 to 3650.",
                issues=(FieldIssue(code="out_of_range", message="Must be 1 to 3650.", field="expires_in_days"),),
            )
        expires_at = None
        if expires_in_days is not None:
            expires_at = self._clock.now() + timedelta(days=expires_in_days)
        transaction = await self.grant(
            user_id, amount, reason=reason, idempotency_key=f"admin-grant:{idempotency_key}", expires_at=expires_at
        )
        await self._uow.commit()
        return transaction

    async def summary(self, user_id: UUID) -> PointsSummary:
        """The balance and how much of it expires in the next 30 days."""
        now = self._clock.now()
        until = now + EXPIRING_WINDOW
        balance, expiring = await self._ledger.balance(user_id, now, until)
        return PointsSummary(balance=balance, expiring_soon=expiring, expiring_until=until)

    async def transactions(
        self, user_id: UUID, filters: TransactionFilter, limit: int, offset: int
    ) -> tuple[list[PointTransaction], int]:
        """The caller's ledger, newest first."""
        return await self._ledger.list_transactions(user_id, filters, limit, offset)

    async def expire_due(self, now: datetime, batch_size: int) -> int:
        """Expire one batch of due lots (each shows in its owner's ledger as one ``expire`` transaction) and
        commit; the scheduler calls it until it returns less than a batch."""
        expired = await self._ledger.expire_due(now, batch_size)
        await self._uow.commit()
        return expired
