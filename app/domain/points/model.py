"""Points: an append-only ledger of transactions over lots that expire.

Every credit creates a lot with an expiry; every debit consumes lots, those that
expire first first. The invariant that everything else relies on, for every user
at every commit:

    balance == sum(remaining of the user's lots) == sum(amounts of the user's transactions)

Points held for a task leave the lots (a ``hold`` transaction, negative) and come
back as new lots on ``release`` or go to another user on ``capture``.

The ``expire`` transaction of a lot is not written as a transaction of its own: the
expired lot keeps it (what it held, and when it expired), and the ledger as read
(``PointsLedger.list_transactions``) shows it among the others, once per lot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID


class TransactionKind(StrEnum):
    EARN = "earn"  # + points paid by another user (a captured hold) or earned from an activity
    SPEND = "spend"  # - points used up
    HOLD = "hold"  # - points reserved (for a posted task)
    RELEASE = "release"  # + a hold given back to its owner
    REFUND = "refund"  # + points returned after a spend
    EXPIRE = "expire"  # - a lot's remaining points at its expiry
    GRANT = "grant"  # + points given by an admin or a promotion


CREDIT_KINDS = frozenset({TransactionKind.EARN, TransactionKind.RELEASE, TransactionKind.REFUND, TransactionKind.GRANT})
DEBIT_KINDS = frozenset({TransactionKind.SPEND, TransactionKind.HOLD, TransactionKind.EXPIRE})


class HoldStatus(StrEnum):
    HELD = "held"
    RELEASED = "released"
    CAPTURED = "captured"


@dataclass(frozen=True, slots=True)
class Lot:
    id: UUID
    user_id: UUID
    remaining: int
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Allocation:
    """Points taken from one lot by a debit; kept for holds so a release restores the same expiries."""

    lot_id: UUID
    amount: int
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class PointTransaction:
    id: UUID
    user_id: UUID
    kind: TransactionKind
    amount: int  # signed: credits positive, debits negative
    reason: str | None
    reference: str | None
    idempotency_key: str | None
    created_at: datetime
    hold_id: UUID | None = None


@dataclass(frozen=True, slots=True)
class NewTransaction:
    user_id: UUID
    kind: TransactionKind
    amount: int
    reason: str | None
    reference: str | None
    idempotency_key: str | None
    fingerprint: str | None
    created_at: datetime
    hold_id: UUID | None = None


@dataclass(frozen=True, slots=True)
class Hold:
    id: UUID
    user_id: UUID
    amount: int
    status: HoldStatus
    reference: str | None
    allocations: tuple[Allocation, ...]


@dataclass(frozen=True, slots=True)
class PointsSummary:
    balance: int
    expiring_soon: int  # part of the balance that expires within the summary's window
    expiring_until: datetime


@dataclass(frozen=True, slots=True)
class TransactionFilter:
    kinds: frozenset[TransactionKind] = frozenset()
    since: datetime | None = None
    until: datetime | None = None
