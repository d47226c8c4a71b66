"""An in-memory CouponRepository with the same contract as the SQL one (single-threaded).

It also plays the unit of work: ``commit`` keeps the state, ``rollback`` returns to the last commit,
so a refused claim can be seen to give back the place it took.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from uuid import UUID

from app.domain.coupons.model import (
    AvailableCoupon,
    Coupon,
    CouponFilter,
    CouponKind,
    CouponStatus,
    CouponTemplate,
    NewCoupon,
    TemplateDraft,
    TemplateFilter,
    TemplateStatus,
)


class InMemoryCoupons:
    def __init__(self) -> None:
        self.templates: dict[UUID, CouponTemplate] = {}
        self.coupons: dict[UUID, Coupon] = {}
        self.commits = 0
        self._saved: tuple[dict[UUID, CouponTemplate], dict[UUID, Coupon]] = ({}, {})

    # --- unit of work ---

    async def commit(self) -> None:
        self.commits += 1
        self._saved = (copy.copy(self.templates), copy.copy(self.coupons))

    async def rollback(self) -> None:
        self.templates, self.coupons = copy.copy(self._saved[0]), copy.copy(self._saved[1])

    # --- templates ---

    async def insert_template(self, draft: TemplateDraft, now: datetime) -> CouponTemplate:
        template = CouponTemplate(
            id=uuid.uuid4(),
            name=draft.name,
            kind=draft.kind,
            value=draft.value,
            min_reward=draft.min_reward,
            total_quantity=draft.total_quantity,
            per_user_limit=draft.per_user_limit,
            claimed_count=0,
            valid_from=draft.valid_from,
            valid_until=draft.valid_until,
            validity=draft.validity,
            status=TemplateStatus.ACTIVE,
            created_at=now,
            updated_at=now,
        )
        self.templates[template.id] = template
        return template

    async def get_template(self, template_id: UUID) -> CouponTemplate | None:
        return self.templates.get(template_id)

    async def lock_template(self, template_id: UUID) -> CouponTemplate | None:
        return self.templates.get(template_id)

    async def update_template(self, template_id: UUID, draft: TemplateDraft, now: datetime) -> CouponTemplate:
        template = replace(
            self.templates[template_id],
            name=draft.name,
            value=draft.value,
            min_reward=draft.min_reward,
            total_quantity=draft.total_quantity,
            per_user_limit=draft.per_user_limit,
            valid_from=draft.valid_from,
            valid_until=draft.valid_until,
            validity=draft.validity,
            updated_at=now,
        )
        self.templates[template_id] = template
        return template

    async def close_template(self, template_id: UUID, now: datetime) -> CouponTemplate | None:
        template = self.templates.get(template_id)
        if template is None or template.status is not TemplateStatus.ACTIVE:
            return None
        closed = replace(template, status=TemplateStatus.CLOSED, closed_at=now, updated_at=now)
        self.templates[template_id] = closed
        return closed

    async def list_templates(
        self, filters: TemplateFilter, limit: int, offset: int
    ) -> tuple[list[CouponTemplate], int]:
        matching = [
            template
            for template in sorted(self.templates.values(), key=lambda t: (t.created_at, t.id), reverse=True)
            if (not filters.statuses or template.status in filters.statuses)
            and (not filters.kinds or template.kind in filters.kinds)
        ]
        return matching[offset : offset + limit], len(matching)

    def _is_open(self, template: CouponTemplate, now: datetime) -> bool:
        return (
            template.status is TemplateStatus.ACTIVE
            and template.valid_from <= now < template.valid_until
            and template.claimed_count < template.total_quantity
        )

    async def list_available(
        self, user_id: UUID, kinds: frozenset[CouponKind], now: datetime, limit: int, offset: int
    ) -> tuple[list[AvailableCoupon], int]:
        matching = [
            AvailableCoupon(template, await self.count_owned(template.id, user_id))
            for template in sorted(self.templates.values(), key=lambda t: (t.valid_until, t.id))
            if self._is_open(template, now) and (not kinds or template.kind in kinds)
        ]
        return matching[offset : offset + limit], len(matching)

    async def take_one(self, template_id: UUID, now: datetime) -> CouponTemplate | None:
        template = self.templates.get(template_id)
        if template is None or not self._is_open(template, now):
            return None
        taken = replace(template, claimed_count=template.claimed_count + 1)
        self.templates[template_id] = taken
        return taken

    async def count_owned(self, template_id: UUID, owner_id: UUID) -> int:
        return sum(1 for c in self.coupons.values() if c.template_id == template_id and c.owner_id == owner_id)

    # --- coupons ---

    async def insert_coupon(self, coupon: NewCoupon) -> Coupon:
        stored = Coupon(
            id=uuid.uuid4(),
            template_id=coupon.template_id,
            owner_id=coupon.owner_id,
            name=coupon.name,
            kind=coupon.kind,
            value=coupon.value,
            min_reward=coupon.min_reward,
            status=CouponStatus.CLAIMED,
            claimed_at=coupon.claimed_at,
            expires_at=coupon.expires_at,
        )
        self.coupons[stored.id] = stored
        return stored

    async def get_coupon(self, coupon_id: UUID) -> Coupon | None:
        return self.coupons.get(coupon_id)

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
        coupon = self.coupons.get(coupon_id)
        if (
            coupon is None
            or coupon.owner_id != owner_id
            or coupon.kind is not kind
            or coupon.status is not CouponStatus.CLAIMED
            or coupon.expires_at <= now
            or (reward is not None and coupon.min_reward is not None and coupon.min_reward > reward)
        ):
            return None
        used = replace(coupon, status=CouponStatus.USED, used_at=now, task_id=task_id)
        self.coupons[coupon_id] = used
        return used

    async def release(self, coupon_id: UUID, task_id: UUID, now: datetime) -> Coupon | None:
        coupon = self.coupons.get(coupon_id)
        if coupon is None or coupon.task_id != task_id or coupon.status is not CouponStatus.USED:
            return None
        status = CouponStatus.CLAIMED if coupon.expires_at > now else CouponStatus.EXPIRED
        released = replace(coupon, status=status, used_at=None, task_id=None)
        self.coupons[coupon_id] = released
        return released

    async def release_many(self, uses: Sequence[tuple[UUID, UUID]], now: datetime) -> int:
        return sum([await self.release(coupon_id, task_id, now) is not None for coupon_id, task_id in uses])

    async def list_owned(
        self, owner_id: UUID, filters: CouponFilter, now: datetime, limit: int, offset: int
    ) -> tuple[list[Coupon], int]:
        matching = [
            coupon
            for coupon in sorted(self.coupons.values(), key=lambda c: (c.claimed_at, c.id), reverse=True)
            if coupon.owner_id == owner_id
            and (not filters.statuses or coupon.status_at(now) in filters.statuses)
            and (not filters.kinds or coupon.kind in filters.kinds)
        ]
        return matching[offset : offset + limit], len(matching)

    async def expire_due_coupons(self, now: datetime, batch_size: int) -> int:
        due = sorted(
            (c for c in self.coupons.values() if c.status is CouponStatus.CLAIMED and c.expires_at <= now),
            key=lambda c: c.expires_at,
        )[:batch_size]
        for coupon in due:
            self.coupons[coupon.id] = replace(coupon, status=CouponStatus.EXPIRED)
        return len(due)

    async def close_due_templates(self, now: datetime, batch_size: int) -> int:
        due = sorted(
            (t for t in self.templates.values() if t.status is TemplateStatus.ACTIVE and t.valid_until <= now),
            key=lambda t: t.valid_until,
        )[:batch_size]
        for template in due:
            self.templates[template.id] = replace(template, status=TemplateStatus.CLOSED, closed_at=now)
        return len(due)
