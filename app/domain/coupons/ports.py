"""What the coupons context needs from storage."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol
from uuid import UUID

from app.domain.coupons.model import (
    AvailableCoupon,
    Coupon,
    CouponFilter,
    CouponKind,
    CouponTemplate,
    NewCoupon,
    TemplateDraft,
    TemplateFilter,
)


class CouponRepository(Protocol):
    async def insert_template(self, draft: TemplateDraft, now: datetime) -> CouponTemplate: ...

    async def get_template(self, template_id: UUID) -> CouponTemplate | None: ...

    async def lock_template(self, template_id: UUID) -> CouponTemplate | None:
        """The template, locked until commit (an edit then waits for, and is waited for by, claims)."""
        ...

    async def update_template(self, template_id: UUID, draft: TemplateDraft, now: datetime) -> CouponTemplate: ...

    async def close_template(self, template_id: UUID, now: datetime) -> CouponTemplate | None:
        """Close an active template; ``None`` when it is unknown or closed already."""
        ...

    async def list_templates(
        self, filters: TemplateFilter, limit: int, offset: int
    ) -> tuple[list[CouponTemplate], int]:
        """A page of templates, newest first, and the total count."""
        ...

    async def list_available(
        self, user_id: UUID, kinds: frozenset[CouponKind], now: datetime, limit: int, offset: int
    ) -> tuple[list[AvailableCoupon], int]:
        """Active templates in their claim window with coupons left, those ending first first, and the total."""
        ...

    async def take_one(self, template_id: UUID, now: datetime) -> CouponTemplate | None:
        """Count one more claim of the template, atomically, if it is active, in its window and not sold out.

        Returns the template as updated, or ``None`` when it could not give one more. On
        success the template stays locked until commit: that serialises the claims of one
        template, so the per-user count that follows sees every earlier claim.
        """
        ...

    async def count_owned(self, template_id: UUID, owner_id: UUID) -> int:
        """How many coupons of the template the user has ever claimed (any status)."""
        ...

    async def insert_coupon(self, coupon: NewCoupon) -> Coupon: ...

    async def get_coupon(self, coupon_id: UUID) -> Coupon | None: ...

    async def mark_used(
        self,
        coupon_id: UUID,
        owner_id: UUID,
        kind: CouponKind,
        now: datetime,
        *,
        task_id: UUID | None = None,
        reward: int | None = None,
    ) -> Coupon | None:
        """Use the coupon, atomically, if the owner holds it claimed and unexpired, of ``kind``.

        With ``reward``, only if the coupon's ``min_reward`` is met. ``None`` when nothing
        was changed; of concurrent calls on one coupon at most one gets it.
        """
        ...

    async def release(self, coupon_id: UUID, task_id: UUID, now: datetime) -> Coupon | None:
        """Give back a coupon used by ``task_id`` (claimed again, or expired if its time ran out meanwhile)."""
        ...

    async def release_many(self, uses: Sequence[tuple[UUID, UUID]], now: datetime) -> int:
        """``release`` of each ``(coupon_id, task_id)`` at once, in one statement; return how many were given back."""
        ...

    async def list_owned(
        self, owner_id: UUID, filters: CouponFilter, now: datetime, limit: int, offset: int
    ) -> tuple[list[Coupon], int]:
        """A page of the owner's coupons, newest claim first, and the total count."""
        ...

    async def expire_due_coupons(self, now: datetime, batch_size: int) -> int:
        """Expire up to ``batch_size`` claimed coupons past their expiry; return how many.

        Safe to run concurrently with itself and with redeems: a coupon changes state once.
        """
        ...

    async def close_due_templates(self, now: datetime, batch_size: int) -> int:
        """Close up to ``batch_size`` active templates past ``valid_until``; return how many."""
        ...
