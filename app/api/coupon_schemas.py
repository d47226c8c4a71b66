"""Request and response bodies of coupons (a contract, like ``schemas.py``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec

from app.api.schemas import PointTransactionResponse
from app.domain.coupons.model import (
    AvailableCoupon,
    Coupon,
    CouponKind,
    CouponStatus,
    CouponTemplate,
    CouponValidity,
    Redemption,
    TemplateChanges,
    TemplateDraft,
    TemplateStatus,
)

# Bounds on raw input only; the domain checks the rules and reports every broken one.
Moment = Annotated[datetime, msgspec.Meta(tz=True, description="With a time zone, e.g. `2026-07-01T00:00:00Z`.")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100, examples=["Welcome bonus"])]
Points = Annotated[int, msgspec.Meta(ge=1, le=1_000_000_000)]
Quantity = Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
PerUser = Annotated[int, msgspec.Meta(ge=1, le=1_000)]
ValidDays = Annotated[
    int, msgspec.Meta(ge=1, le=3_650, description="The coupon expires this many days after its claim.")
]


class CreateCouponTemplateRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Give exactly one of `coupon_expires_at` (a fixed end) and `coupon_valid_days`.

    `min_reward` is required for `task_discount` coupons (and must exceed `value`), refused for `points_bonus`.
    """

    name: Name
    kind: CouponKind
    value: Points
    total_quantity: Quantity
    per_user_limit: PerUser = 1
    valid_from: Moment
    valid_until: Moment
    coupon_expires_at: Moment | None = None
    coupon_valid_days: ValidDays | None = None
    min_reward: Points | None = None

    def to_draft(self) -> TemplateDraft:
        return TemplateDraft(
            name=self.name,
            kind=self.kind,
            value=self.value,
            total_quantity=self.total_quantity,
            per_user_limit=self.per_user_limit,
            valid_from=self.valid_from,
            valid_until=self.valid_until,
            validity=CouponValidity(expires_at=self.coupon_expires_at, days=self.coupon_valid_days),
            min_reward=self.min_reward,
        )


class UpdateCouponTemplateRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Fields left out (or null) keep their value. `coupon_expires_at` or `coupon_valid_days` replaces the
    validity. Coupons claimed already keep the terms they were claimed with."""

    name: Name | None = None
    value: Points | None = None
    min_reward: Points | None = None
    total_quantity: Quantity | None = None
    per_user_limit: PerUser | None = None
    valid_from: Moment | None = None
    valid_until: Moment | None = None
    coupon_expires_at: Moment | None = None
    coupon_valid_days: ValidDays | None = None

    def to_changes(self) -> TemplateChanges:
        return TemplateChanges(**msgspec.structs.asdict(self))


class CouponTemplateResponse(msgspec.Struct, kw_only=True):
    id: UUID
    name: str
    kind: CouponKind
    value: int
    min_reward: int | None
    total_quantity: int
    per_user_limit: int
    claimed_count: int
    remaining: int
    valid_from: datetime
    valid_until: datetime
    coupon_expires_at: datetime | None
    coupon_valid_days: int | None
    status: TemplateStatus
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None

    @classmethod
    def of(cls, template: CouponTemplate) -> CouponTemplateResponse:
        return cls(
            id=template.id,
            name=template.name,
            kind=template.kind,
            value=template.value,
            min_reward=template.min_reward,
            total_quantity=template.total_quantity,
            per_user_limit=template.per_user_limit,
            claimed_count=template.claimed_count,
            remaining=template.remaining,
            valid_from=template.valid_from,
            valid_until=template.valid_until,
            coupon_expires_at=template.validity.expires_at,
            coupon_valid_days=template.validity.days,
            status=template.status,
            created_at=template.created_at,
            updated_at=template.updated_at,
            closed_at=template.closed_at,
        )


class CouponTemplatePage(msgspec.Struct, kw_only=True):
    items: list[CouponTemplateResponse]
    total: int
    limit: int
    offset: int


class AvailableCouponResponse(msgspec.Struct, kw_only=True):
    template_id: UUID
    name: str
    kind: CouponKind
    value: int
    min_reward: int | None
    remaining: int
    per_user_limit: int
    claimed_by_me: int
    can_claim: bool
    valid_from: datetime
    valid_until: datetime
    coupon_expires_at: datetime | None
    coupon_valid_days: int | None

    @classmethod
    def of(cls, available: AvailableCoupon) -> AvailableCouponResponse:
        template = available.template
        return cls(
            template_id=template.id,
            name=template.name,
            kind=template.kind,
            value=template.value,
            min_reward=template.min_reward,
            remaining=template.remaining,
            per_user_limit=template.per_user_limit,
            claimed_by_me=available.claimed_by_me,
            can_claim=available.can_claim,
            valid_from=template.valid_from,
            valid_until=template.valid_until,
            coupon_expires_at=template.validity.expires_at,
            coupon_valid_days=template.validity.days,
        )


class AvailableCouponPage(msgspec.Struct, kw_only=True):
    items: list[AvailableCouponResponse]
    total: int
    limit: int
    offset: int


class ClaimCouponRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    template_id: UUID


class CouponResponse(msgspec.Struct, kw_only=True):
    id: UUID
    template_id: UUID
    name: str
    kind: CouponKind
    value: int
    min_reward: int | None
    status: CouponStatus
    claimed_at: datetime
    expires_at: datetime
    used_at: datetime | None
    task_id: UUID | None

    @classmethod
    def of(cls, coupon: Coupon) -> CouponResponse:
        return cls(
            id=coupon.id,
            template_id=coupon.template_id,
            name=coupon.name,
            kind=coupon.kind,
            value=coupon.value,
            min_reward=coupon.min_reward,
            status=coupon.status,
            claimed_at=coupon.claimed_at,
            expires_at=coupon.expires_at,
            used_at=coupon.used_at,
            task_id=coupon.task_id,
        )


class CouponPage(msgspec.Struct, kw_only=True):
    items: list[CouponResponse]
    total: int
    limit: int
    offset: int


class RedemptionResponse(msgspec.Struct, kw_only=True):
    coupon: CouponResponse
    transaction: PointTransactionResponse

    @classmethod
    def of(cls, redemption: Redemption) -> RedemptionResponse:
        return cls(
            coupon=CouponResponse.of(redemption.coupon),
            transaction=PointTransactionResponse.of(redemption.transaction),
        )
