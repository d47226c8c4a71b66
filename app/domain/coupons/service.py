"""Use cases of coupons.

Two kinds of methods, as in the points context:

* use cases (template management, ``claim``, ``redeem``, the lists, ``expire_due``)
  that the API and the scheduler call: they commit;
* building blocks (``reserve_for_task``, ``release_from_task``) that the tasks context
  calls *inside its own transaction*: they never commit, so a task and the coupon it
  uses stand or fall together.

Concurrency rests on guarded single-row updates, never on a read followed by a write:
a claim first counts itself on the template row (``claimed_count < total_quantity``),
which locks that row until commit and so serialises the claims of one template; the
per-user count is read after that lock. Using a coupon is one ``UPDATE ... WHERE
status = 'claimed'``: of simultaneous uses exactly one changes the row. Only when a
guarded write changes nothing does the service read the row to say why.

A coupon that belongs to someone else is answered exactly like an unknown one
(``coupon_not_found``): ids of other users' coupons reveal nothing.
"""

from __future__ import annotations

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
    CouponValidity,
    NewCoupon,
    Redemption,
    TemplateChanges,
    TemplateDraft,
    TemplateFilter,
    TemplateStatus,
)
from app.domain.coupons.ports import CouponRepository
from app.domain.coupons.rules import check_template
from app.domain.points.service import PointsService
from app.domain.shared.errors import Conflict, DomainError, Forbidden, NotFound, ValidationFailed
from app.domain.shared.ports import Clock, UnitOfWork
from app.domain.users.model import Principal, Role


class CouponTemplateNotFound(NotFound):
    code = "template_not_found"


class CouponNotFound(NotFound):
    code = "coupon_not_found"


class NotClaimable(Conflict):
    code = "not_claimable"


class SoldOut(Conflict):
    code = "sold_out"


class LimitReached(Conflict):
    code = "limit_reached"


class TemplateClosed(Conflict):
    code = "template_closed"


class AlreadyUsed(Conflict):
    code = "already_used"


class CouponExpired(Conflict):
    code = "expired"


class WrongCouponKind(Conflict):
    code = "wrong_kind"


class MinRewardNotMet(ValidationFailed):
    code = "min_reward_not_met"


def _require_admin(actor: Principal) -> None:
    if not actor.has_role(Role.ADMIN):
        raise Forbidden("Only admins manage coupon templates.")


def _merge(template: CouponTemplate, changes: TemplateChanges) -> TemplateDraft:
    validity = template.validity
    if changes.coupon_expires_at is not None or changes.coupon_valid_days is not None:
        validity = CouponValidity(expires_at=changes.coupon_expires_at, days=changes.coupon_valid_days)
    return replace(
        template.as_draft(),
        name=template.name if changes.name is None else changes.name.strip(),
        value=template.value if changes.value is None else changes.value,
        min_reward=template.min_reward if changes.min_reward is None else changes.min_reward,
        total_quantity=template.total_quantity if changes.total_quantity is None else changes.total_quantity,
        per_user_limit=template.per_user_limit if changes.per_user_limit is None else changes.per_user_limit,
        valid_from=template.valid_from if changes.valid_from is None else changes.valid_from,
        valid_until=template.valid_until if changes.valid_until is None else changes.valid_until,
        validity=validity,
    )


class CouponService:
    def __init__(self, coupons: CouponRepository, points: PointsService, uow: UnitOfWork, clock: Clock) -> None:
        self._coupons = coupons
        self._points = points
        self._uow = uow
        self._clock = clock

    # --- templates (admins) -------------------------------------------------------------

    async def create_template(self, actor: Principal, draft: TemplateDraft) -> CouponTemplate:
        """Publish a template; every broken rule is reported at once (422 ``invalid_template``)."""
        _require_admin(actor)
        now = self._clock.now()
        draft = replace(draft, name=draft.name.strip())
        check_template(draft, open_after=now)
        template = await self._coupons.insert_template(draft, now)
        await self._uow.commit()
        return template

    async def list_templates(
        self, actor: Principal, filters: TemplateFilter, limit: int, offset: int
    ) -> tuple[list[CouponTemplate], int]:
        """Every template, newest first, with how many were claimed."""
        _require_admin(actor)
        return await self._coupons.list_templates(filters, limit, offset)

    async def update_template(self, actor: Principal, template_id: UUID, changes: TemplateChanges) -> CouponTemplate:
        """Edit an active template. Coupons claimed already keep the terms they were claimed with.

        The template is locked while it is checked and written, so a concurrent claim
        never sees half an edit and the total never drops below what was claimed.
        """
        _require_admin(actor)
        template = await self._coupons.lock_template(template_id)
        if template is None:
            raise CouponTemplateNotFound("Coupon template not found.")
        if template.status is TemplateStatus.CLOSED:
            raise TemplateClosed("The coupon template is closed and can no longer change.")
        now = self._clock.now()
        draft = _merge(template, changes)
        # A template whose window is over is closed by the sweep; only a moved end must lie ahead.
        open_after = now if changes.valid_until is not None else None
        check_template(draft, open_after=open_after, claimed_count=template.claimed_count)
        updated = await self._coupons.update_template(template_id, draft, now)
        await self._uow.commit()
        return updated

    async def close_template(self, actor: Principal, template_id: UUID) -> CouponTemplate:
        """Stop claims of a template (idempotent). Coupons claimed already stay usable until they expire."""
        _require_admin(actor)
        closed = await self._coupons.close_template(template_id, self._clock.now())
        if closed is None:
            closed = await self._coupons.get_template(template_id)
            if closed is None:
                raise CouponTemplateNotFound("Coupon template not found.")
        await self._uow.commit()
        return closed

    # --- users --------------------------------------------------------------------------

    async def available(
        self, user_id: UUID, kinds: frozenset[CouponKind], limit: int, offset: int
    ) -> tuple[list[AvailableCoupon], int]:
        """Templates open for claims now, those ending first first, with how many of each the caller holds."""
        return await self._coupons.list_available(user_id, kinds, self._clock.now(), limit, offset)

    async def claim(self, user_id: UUID, template_id: UUID) -> Coupon:
        """Claim one coupon of a template; the total and the per-user limit hold under concurrency.

        Raises:
            CouponTemplateNotFound, NotClaimable (closed or outside its window), SoldOut, LimitReached.
        """
        now = self._clock.now()
        template = await self._coupons.take_one(template_id, now)
        if template is None:
            raise await self._why_not_claimable(template_id, now)
        # The template row is locked from here to the commit: the count sees every earlier claim.
        if await self._coupons.count_owned(template_id, user_id) >= template.per_user_limit:
            await self._uow.rollback()  # gives back the place taken above
            raise LimitReached(f"You may claim at most {template.per_user_limit} of this coupon.")
        coupon = await self._coupons.insert_coupon(
            NewCoupon(
                template_id=template.id,
                owner_id=user_id,
                name=template.name,
                kind=template.kind,
                value=template.value,
                min_reward=template.min_reward,
                claimed_at=now,
                expires_at=template.validity.expiry_for(now),
            )
        )
        await self._uow.commit()
        return coupon

    async def _why_not_claimable(self, template_id: UUID, now: datetime) -> DomainError:
        template = await self._coupons.get_template(template_id)
        if template is None:
            return CouponTemplateNotFound("Coupon template not found.")
        if template.status is TemplateStatus.CLOSED:
            return NotClaimable("This coupon is no longer offered.")
        if now < template.valid_from:
            return NotClaimable("This coupon cannot be claimed yet.")
        if now >= template.valid_until:
            return NotClaimable("The time to claim this coupon is over.")
        if template.remaining <= 0:
            return SoldOut("All coupons of this kind were claimed.")
        return NotClaimable("The coupon changed meanwhile; retry.")  # pragma: no cover - an edit raced the claim

    async def my_coupons(
        self, user_id: UUID, filters: CouponFilter, limit: int, offset: int
    ) -> tuple[list[Coupon], int]:
        """The caller's coupons, newest claim first; a coupon past its expiry shows as expired."""
        now = self._clock.now()
        coupons, total = await self._coupons.list_owned(user_id, filters, now, limit, offset)
        return [replace(coupon, status=coupon.status_at(now)) for coupon in coupons], total

    async def redeem(self, user_id: UUID, coupon_id: UUID) -> Redemption:
        """Redeem a ``points_bonus`` coupon: it becomes used and its value is granted, in one transaction.

        Of simultaneous redeems of one coupon exactly one succeeds; the others get ``already_used``.
        """
        now = self._clock.now()
        coupon = await self._coupons.mark_used(coupon_id, user_id, CouponKind.POINTS_BONUS, now)
        if coupon is None:
            raise await self._why_not_usable(coupon_id, user_id, CouponKind.POINTS_BONUS, now)
        transaction = await self._points.grant(
            user_id,
            coupon.value,
            reason="coupon",
            reference=f"coupon:{coupon.id}",
            # belt and braces: the guarded update already lets one redeem through
            idempotency_key=f"coupon-redeem:{coupon.id}",
        )
        await self._uow.commit()
        return Redemption(coupon=coupon, transaction=transaction)

    # --- building blocks for tasks (never commit) ---------------------------------------

    async def reserve_for_task(self, user_id: UUID, coupon_id: UUID, task_id: UUID, reward_points: int) -> int:
        """Apply a ``task_discount`` coupon to a task being posted; return the discount in points.

        The coupon becomes used by ``task_id``. Calling it again for the same task returns the
        same discount (a retried post). Does not commit: call it inside the task's transaction.

        Raises:
            CouponNotFound (also for another user's coupon), WrongCouponKind, AlreadyUsed,
            CouponExpired, MinRewardNotMet.
        """
        now = self._clock.now()
        coupon = await self._coupons.mark_used(
            coupon_id, user_id, CouponKind.TASK_DISCOUNT, now, task_id=task_id, reward=reward_points
        )
        if coupon is not None:
            return coupon.value
        earlier = await self._coupons.get_coupon(coupon_id)
        if (
            earlier is not None
            and earlier.owner_id == user_id
            and earlier.status is CouponStatus.USED
            and earlier.task_id == task_id
        ):
            return earlier.value  # a retry of the same post
        raise await self._why_not_usable(coupon_id, user_id, CouponKind.TASK_DISCOUNT, now, reward_points)

    async def release_from_task(self, coupon_id: UUID, task_id: UUID) -> bool:
        """Give back the coupon a task used (the task was cancelled); idempotent. Does not commit.

        The coupon is claimed again, or expired if its time ran out meanwhile. Returns whether
        it was given back now (``False``: it is not, or no longer, used by that task).
        """
        return await self._coupons.release(coupon_id, task_id, self._clock.now()) is not None

    async def release_many_from_tasks(self, uses: Sequence[tuple[UUID, UUID]]) -> int:
        """``release_from_task`` of each ``(coupon_id, task_id)``, at once. Does not commit. Returns how many
        were given back now."""
        return await self._coupons.release_many(uses, self._clock.now())

    async def _why_not_usable(
        self, coupon_id: UUID, user_id: UUID, kind: CouponKind, now: datetime, reward: int | None = None
    ) -> DomainError:
        coupon = await self._coupons.get_coupon(coupon_id)
        if coupon is None or coupon.owner_id != user_id:
            return CouponNotFound("Coupon not found.")
        if coupon.kind is not kind:
            usage = "redeemed for points" if kind is CouponKind.POINTS_BONUS else "applied to a task"
            return WrongCouponKind(f"A {coupon.kind.value} coupon cannot be {usage}.")
        status = coupon.status_at(now)
        if status is CouponStatus.USED:
            return AlreadyUsed("The coupon was used already.")
        if status is CouponStatus.EXPIRED:
            return CouponExpired("The coupon has expired.")
        if reward is not None and coupon.min_reward is not None and reward < coupon.min_reward:
            return MinRewardNotMet(f"This coupon applies to tasks with a reward of at least {coupon.min_reward}.")
        return AlreadyUsed("The coupon was used already.")  # pragma: no cover - used and given back meanwhile

    # --- jobs ---------------------------------------------------------------------------

    async def expire_due(self, now: datetime, batch_size: int) -> int:
        """Expire one batch of claimed coupons past their expiry and close one batch of templates past their
        window, then commit; return how many rows changed. The scheduler calls it until it returns less than
        a batch. Safe when two runs overlap: each row changes once."""
        expired = await self._coupons.expire_due_coupons(now, batch_size)
        closed = await self._coupons.close_due_templates(now, batch_size)
        await self._uow.commit()
        return expired + closed
