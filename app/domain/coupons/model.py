"""Coupons: templates an admin publishes, and the coupons users claim from them.

A template is a batch of identical coupons: ``total_quantity`` of them can be claimed,
at most ``per_user_limit`` per user, while its claim window (``valid_from`` to
``valid_until``) is open and it is ``active``. A claimed coupon copies the template's
name, kind, value and minimum, so a later edit of the template never changes a promise
already made, and expires at the template's fixed end or N days after its claim.

Two kinds: ``points_bonus`` pays its value in points when redeemed; ``task_discount``
lowers the points held when its owner posts a task with a reward of at least
``min_reward``. Either way a coupon is used once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from uuid import UUID

from app.domain.points.model import PointTransaction


class CouponKind(StrEnum):
    POINTS_BONUS = "points_bonus"  # pays ``value`` points on redeem
    TASK_DISCOUNT = "task_discount"  # lowers a task's held reward by ``value``


class TemplateStatus(StrEnum):
    ACTIVE = "active"
    CLOSED = "closed"  # by an admin, or by the sweep once ``valid_until`` passed: no more claims


class CouponStatus(StrEnum):
    CLAIMED = "claimed"  # owned and usable until ``expires_at``
    USED = "used"  # redeemed, or applied to a task
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class CouponValidity:
    """How long a claimed coupon stays usable: until a fixed moment, or N days after its claim."""

    expires_at: datetime | None = None
    days: int | None = None

    def expiry_for(self, claimed_at: datetime) -> datetime:
        if self.expires_at is not None:
            return self.expires_at
        assert self.days is not None
        return claimed_at + timedelta(days=self.days)


@dataclass(frozen=True, slots=True)
class TemplateDraft:
    """What an admin fills in to publish coupons."""

    name: str
    kind: CouponKind
    value: int
    total_quantity: int
    per_user_limit: int
    valid_from: datetime
    valid_until: datetime
    validity: CouponValidity
    min_reward: int | None = None


@dataclass(frozen=True, slots=True)
class TemplateChanges:
    """An admin's edit of a template; ``None`` keeps a field. The kind never changes.

    Giving ``coupon_expires_at`` or ``coupon_valid_days`` replaces the validity as a whole.
    """

    name: str | None = None
    value: int | None = None
    min_reward: int | None = None
    total_quantity: int | None = None
    per_user_limit: int | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    coupon_expires_at: datetime | None = None
    coupon_valid_days: int | None = None


@dataclass(frozen=True, slots=True)
class CouponTemplate:
    id: UUID
    name: str
    kind: CouponKind
    value: int
    min_reward: int | None
    total_quantity: int
    per_user_limit: int
    claimed_count: int
    valid_from: datetime
    valid_until: datetime
    validity: CouponValidity
    status: TemplateStatus
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None = None

    @property
    def remaining(self) -> int:
        return self.total_quantity - self.claimed_count

    def as_draft(self) -> TemplateDraft:
        return TemplateDraft(
            name=self.name,
            kind=self.kind,
            value=self.value,
            total_quantity=self.total_quantity,
            per_user_limit=self.per_user_limit,
            valid_from=self.valid_from,
            valid_until=self.valid_until,
            validity=self.validity,
            min_reward=self.min_reward,
        )


@dataclass(frozen=True, slots=True)
class AvailableCoupon:
    """A template the caller may look at in the catalogue, with how many of it they already hold."""

    template: CouponTemplate
    claimed_by_me: int

    @property
    def can_claim(self) -> bool:
        return self.claimed_by_me < self.template.per_user_limit and self.template.remaining > 0


@dataclass(frozen=True, slots=True)
class Coupon:
    id: UUID
    template_id: UUID
    owner_id: UUID
    name: str
    kind: CouponKind
    value: int
    min_reward: int | None
    status: CouponStatus
    claimed_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    task_id: UUID | None = None

    def status_at(self, now: datetime) -> CouponStatus:
        """The status as the owner sees it: a claimed coupon past its expiry is expired before the sweep says so."""
        if self.status is CouponStatus.CLAIMED and self.expires_at <= now:
            return CouponStatus.EXPIRED
        return self.status


@dataclass(frozen=True, slots=True)
class NewCoupon:
    template_id: UUID
    owner_id: UUID
    name: str
    kind: CouponKind
    value: int
    min_reward: int | None
    claimed_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class TemplateFilter:
    statuses: frozenset[TemplateStatus] = frozenset()
    kinds: frozenset[CouponKind] = frozenset()


@dataclass(frozen=True, slots=True)
class CouponFilter:
    """Statuses are the ones the owner sees (``Coupon.status_at``), not the stored ones."""

    statuses: frozenset[CouponStatus] = frozenset()
    kinds: frozenset[CouponKind] = frozenset()


@dataclass(frozen=True, slots=True)
class Redemption:
    """A redeemed ``points_bonus`` coupon and the ledger row that paid it."""

    coupon: Coupon
    transaction: PointTransaction
