"""Coupons on SQLAlchemy Core.

Concurrency: every state change is one guarded ``UPDATE ... WHERE <the state it
needs> RETURNING``. On PostgreSQL a concurrent transaction waits for the row lock and
then re-checks the condition against the committed row, so of simultaneous claims of
the last coupon, or uses of one coupon, exactly one changes the row. A successful claim
keeps its template row locked until commit, which serialises the claims of one template
and makes the per-user count read after it exact. The sweeps lock a batch of due rows
with ``SKIP LOCKED`` and so never wait for, or block, a redeem or another sweep. SQLite runs
one writer at a time, and ignores ``FOR UPDATE``: the same statements are safe there.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    CTE,
    ColumnElement,
    Select,
    Table,
    and_,
    case,
    func,
    insert,
    literal,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Update

from app.domain.coupons.model import (
    AvailableCoupon,
    Coupon,
    CouponFilter,
    CouponKind,
    CouponStatus,
    CouponTemplate,
    CouponValidity,
    NewCoupon,
    TemplateDraft,
    TemplateFilter,
    TemplateStatus,
)
from app.infra.db.coupon_tables import CouponRecord, CouponTemplateRecord

_T = CouponTemplateRecord
_C = CouponRecord
_TEMPLATE_COLUMNS = (
    _T.id,
    _T.name,
    _T.kind,
    _T.value,
    _T.min_reward,
    _T.total_quantity,
    _T.per_user_limit,
    _T.claimed_count,
    _T.valid_from,
    _T.valid_until,
    _T.coupon_expires_at,
    _T.coupon_valid_days,
    _T.status,
    _T.created_at,
    _T.updated_at,
    _T.closed_at,
)
_COUPON_COLUMNS = (
    _C.id,
    _C.template_id,
    _C.owner_id,
    _C.name,
    _C.kind,
    _C.value,
    _C.min_reward,
    _C.status,
    _C.claimed_at,
    _C.expires_at,
    _C.used_at,
    _C.task_id,
)


def _to_template(row: Any) -> CouponTemplate:
    return CouponTemplate(
        id=row.id,
        name=row.name,
        kind=CouponKind(row.kind),
        value=row.value,
        min_reward=row.min_reward,
        total_quantity=row.total_quantity,
        per_user_limit=row.per_user_limit,
        claimed_count=row.claimed_count,
        valid_from=row.valid_from,
        valid_until=row.valid_until,
        validity=CouponValidity(expires_at=row.coupon_expires_at, days=row.coupon_valid_days),
        status=TemplateStatus(row.status),
        created_at=row.created_at,
        updated_at=row.updated_at,
        closed_at=row.closed_at,
    )


def _to_coupon(row: Any) -> Coupon:
    return Coupon(
        id=row.id,
        template_id=row.template_id,
        owner_id=row.owner_id,
        name=row.name,
        kind=CouponKind(row.kind),
        value=row.value,
        min_reward=row.min_reward,
        status=CouponStatus(row.status),
        claimed_at=row.claimed_at,
        expires_at=row.expires_at,
        used_at=row.used_at,
        task_id=row.task_id,
    )


def _draft_values(draft: TemplateDraft) -> dict[str, Any]:
    return {
        "name": draft.name,
        "kind": draft.kind.value,
        "value": draft.value,
        "min_reward": draft.min_reward,
        "total_quantity": draft.total_quantity,
        "per_user_limit": draft.per_user_limit,
        "valid_from": draft.valid_from,
        "valid_until": draft.valid_until,
        "coupon_expires_at": draft.validity.expires_at,
        "coupon_valid_days": draft.validity.days,
    }


def _seen_as(status: CouponStatus, now: datetime.datetime) -> ColumnElement[bool]:
    """Coupons that their owner sees with ``status`` (a claimed one past its expiry is expired)."""
    if status is CouponStatus.CLAIMED:
        return and_(_C.status == CouponStatus.CLAIMED.value, _C.expires_at > now)
    if status is CouponStatus.EXPIRED:
        return or_(
            _C.status == CouponStatus.EXPIRED.value,
            and_(_C.status == CouponStatus.CLAIMED.value, _C.expires_at <= now),
        )
    return _C.status == status.value


def _locked_batch(due: Select[Any], name: str) -> CTE:
    """One batch of due rows, locked, skipping rows another transaction holds (a sweep or a redeem).

    A materialised CTE, run exactly once. As a plain ``WHERE id IN (SELECT ... LIMIT n FOR UPDATE
    SKIP LOCKED)`` PostgreSQL may plan a nested-loop semi-join that re-runs the subquery for every
    outer row and so changes more than ``n`` rows (seen in the tests). SQLite ignores the lock.
    """
    return due.with_for_update(skip_locked=True).cte(name).prefix_with("MATERIALIZED", dialect="postgresql")


# The sweeps update the plain tables: an UPDATE of the ORM entity goes through the ORM's bulk
# path (session synchronisation) for nothing here, and a batch returns its count, not its ids.
_COUPONS: Table = CouponRecord.__table__  # type: ignore[assignment]
_TEMPLATES: Table = CouponTemplateRecord.__table__  # type: ignore[assignment]


def expire_coupons_statement(now: datetime.datetime, batch_size: int) -> Update:
    """One batch of the coupon sweep: claimed coupons past their expiry become expired."""
    claimed = _COUPONS.c.status == CouponStatus.CLAIMED.value
    due = _locked_batch(
        select(_COUPONS.c.id)
        .where(claimed, _COUPONS.c.expires_at <= now)
        .order_by(_COUPONS.c.expires_at)
        .limit(batch_size),
        "due_coupons",
    )
    return (
        update(_COUPONS)
        .where(_COUPONS.c.id.in_(select(due.c.id)), claimed)
        .values(status=CouponStatus.EXPIRED.value, expired_at=now)
    )


def close_templates_statement(now: datetime.datetime, batch_size: int) -> Update:
    """One batch of the template sweep: active templates past their claim window close."""
    active = _TEMPLATES.c.status == TemplateStatus.ACTIVE.value
    due = _locked_batch(
        select(_TEMPLATES.c.id)
        .where(active, _TEMPLATES.c.valid_until <= now)
        .order_by(_TEMPLATES.c.valid_until)
        .limit(batch_size),
        "due_templates",
    )
    return (
        update(_TEMPLATES)
        .where(_TEMPLATES.c.id.in_(select(due.c.id)), active)
        .values(status=TemplateStatus.CLOSED.value, closed_at=now, updated_at=now)
    )


def _given_back(now: datetime.datetime) -> dict[str, Any]:
    """What giving back a used coupon writes: claimed again, or expired if its time ran out meanwhile."""
    still_valid = _C.expires_at > now
    return {
        "status": case((still_valid, CouponStatus.CLAIMED.value), else_=CouponStatus.EXPIRED.value),
        "expired_at": case((still_valid, None), else_=literal(now, _C.expired_at.type)),
        "used_at": None,
        "task_id": None,
    }


class SqlCouponRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def insert_template(self, draft: TemplateDraft, now: datetime.datetime) -> CouponTemplate:
        statement = (
            insert(_T)
            .values(
                id=uuid.uuid4(),
                claimed_count=0,
                status=TemplateStatus.ACTIVE.value,
                created_at=now,
                updated_at=now,
                **_draft_values(draft),
            )
            .returning(*_TEMPLATE_COLUMNS)
        )
        return _to_template((await self._session.execute(statement)).one())

    async def get_template(self, template_id: uuid.UUID) -> CouponTemplate | None:
        row = (await self._session.execute(select(*_TEMPLATE_COLUMNS).where(_T.id == template_id))).first()
        return None if row is None else _to_template(row)

    async def lock_template(self, template_id: uuid.UUID) -> CouponTemplate | None:
        statement = select(*_TEMPLATE_COLUMNS).where(_T.id == template_id).with_for_update()
        row = (await self._session.execute(statement)).first()
        return None if row is None else _to_template(row)

    async def update_template(
        self, template_id: uuid.UUID, draft: TemplateDraft, now: datetime.datetime
    ) -> CouponTemplate:
        statement = (
            update(_T)
            .where(_T.id == template_id)
            .values(updated_at=now, **_draft_values(draft))
            .returning(*_TEMPLATE_COLUMNS)
        )
        return _to_template((await self._session.execute(statement)).one())

    async def close_template(self, template_id: uuid.UUID, now: datetime.datetime) -> CouponTemplate | None:
        statement = (
            update(_T)
            .where(_T.id == template_id, _T.status == TemplateStatus.ACTIVE.value)
            .values(status=TemplateStatus.CLOSED.value, closed_at=now, updated_at=now)
            .returning(*_TEMPLATE_COLUMNS)
        )
        row = (await self._session.execute(statement)).first()
        return None if row is None else _to_template(row)

    async def list_templates(
        self, filters: TemplateFilter, limit: int, offset: int
    ) -> tuple[list[CouponTemplate], int]:
        conditions: list[ColumnElement[bool]] = []
        if filters.statuses:
            conditions.append(_T.status.in_([status.value for status in filters.statuses]))
        if filters.kinds:
            conditions.append(_T.kind.in_([kind.value for kind in filters.kinds]))
        page = (
            select(*_TEMPLATE_COLUMNS)
            .where(*conditions)
            .order_by(_T.created_at.desc(), _T.id.desc())
            .limit(limit)
            .offset(offset)
        )
        rows = (await self._session.execute(page)).all()
        total = (await self._session.execute(select(func.count()).select_from(_T).where(*conditions))).scalar_one()
        return [_to_template(row) for row in rows], int(total)

    async def list_available(
        self, user_id: uuid.UUID, kinds: frozenset[CouponKind], now: datetime.datetime, limit: int, offset: int
    ) -> tuple[list[AvailableCoupon], int]:
        conditions: list[ColumnElement[bool]] = [
            _T.status == TemplateStatus.ACTIVE.value,
            _T.valid_from <= now,
            _T.valid_until > now,
            _T.claimed_count < _T.total_quantity,
        ]
        if kinds:
            conditions.append(_T.kind.in_([kind.value for kind in kinds]))
        # one index lookup per template of the page (ix_coupons_template_owner)
        mine = (
            select(func.count())
            .where(_C.template_id == _T.id, _C.owner_id == user_id)
            .correlate(_T)
            .scalar_subquery()
            .label("claimed_by_me")
        )
        page = (
            select(*_TEMPLATE_COLUMNS, mine)
            .where(*conditions)
            .order_by(_T.valid_until, _T.id)
            .limit(limit)
            .offset(offset)
        )
        rows = (await self._session.execute(page)).all()
        total = (await self._session.execute(select(func.count()).select_from(_T).where(*conditions))).scalar_one()
        return [AvailableCoupon(_to_template(row), int(row.claimed_by_me)) for row in rows], int(total)

    async def take_one(self, template_id: uuid.UUID, now: datetime.datetime) -> CouponTemplate | None:
        statement = (
            update(_T)
            .where(
                _T.id == template_id,
                _T.status == TemplateStatus.ACTIVE.value,
                _T.valid_from <= now,
                _T.valid_until > now,
                _T.claimed_count < _T.total_quantity,
            )
            .values(claimed_count=_T.claimed_count + 1)
            .returning(*_TEMPLATE_COLUMNS)
        )
        row = (await self._session.execute(statement)).first()
        return None if row is None else _to_template(row)

    async def count_owned(self, template_id: uuid.UUID, owner_id: uuid.UUID) -> int:
        statement = select(func.count()).where(_C.template_id == template_id, _C.owner_id == owner_id)
        return int((await self._session.execute(statement)).scalar_one())

    async def insert_coupon(self, coupon: NewCoupon) -> Coupon:
        statement = (
            insert(_C)
            .values(
                id=uuid.uuid4(),
                template_id=coupon.template_id,
                owner_id=coupon.owner_id,
                name=coupon.name,
                kind=coupon.kind.value,
                value=coupon.value,
                min_reward=coupon.min_reward,
                status=CouponStatus.CLAIMED.value,
                claimed_at=coupon.claimed_at,
                expires_at=coupon.expires_at,
            )
            .returning(*_COUPON_COLUMNS)
        )
        return _to_coupon((await self._session.execute(statement)).one())

    async def get_coupon(self, coupon_id: uuid.UUID) -> Coupon | None:
        row = (await self._session.execute(select(*_COUPON_COLUMNS).where(_C.id == coupon_id))).first()
        return None if row is None else _to_coupon(row)

    async def mark_used(
        self,
        coupon_id: uuid.UUID,
        owner_id: uuid.UUID,
        kind: CouponKind,
        now: datetime.datetime,
        *,
        task_id: uuid.UUID | None = None,
        reward: int | None = None,
    ) -> Coupon | None:
        conditions = [
            _C.id == coupon_id,
            _C.owner_id == owner_id,
            _C.kind == kind.value,
            _C.status == CouponStatus.CLAIMED.value,
            _C.expires_at > now,
        ]
        if reward is not None:
            conditions.append(or_(_C.min_reward.is_(None), _C.min_reward <= reward))
        statement = (
            update(_C)
            .where(*conditions)
            .values(status=CouponStatus.USED.value, used_at=now, task_id=task_id)
            .returning(*_COUPON_COLUMNS)
        )
        row = (await self._session.execute(statement)).first()
        return None if row is None else _to_coupon(row)

    async def release(self, coupon_id: uuid.UUID, task_id: uuid.UUID, now: datetime.datetime) -> Coupon | None:
        statement = (
            update(_C)
            .where(_C.id == coupon_id, _C.task_id == task_id, _C.status == CouponStatus.USED.value)
            .values(**_given_back(now))
            .returning(*_COUPON_COLUMNS)
        )
        row = (await self._session.execute(statement)).first()
        return None if row is None else _to_coupon(row)

    async def release_many(self, uses: Sequence[tuple[uuid.UUID, uuid.UUID]], now: datetime.datetime) -> int:
        if not uses:
            return 0
        statement = (
            update(_C)
            .where(tuple_(_C.id, _C.task_id).in_(list(uses)), _C.status == CouponStatus.USED.value)
            .values(**_given_back(now))
        )
        return int((await self._session.execute(statement)).rowcount)  # type: ignore[attr-defined]

    async def list_owned(
        self, owner_id: uuid.UUID, filters: CouponFilter, now: datetime.datetime, limit: int, offset: int
    ) -> tuple[list[Coupon], int]:
        conditions: list[ColumnElement[bool]] = [_C.owner_id == owner_id]
        if filters.statuses:
            conditions.append(or_(*(_seen_as(status, now) for status in filters.statuses)))
        if filters.kinds:
            conditions.append(_C.kind.in_([kind.value for kind in filters.kinds]))
        page = (
            select(*_COUPON_COLUMNS)
            .where(*conditions)
            .order_by(_C.claimed_at.desc(), _C.id.desc())
            .limit(limit)
            .offset(offset)
        )
        rows = (await self._session.execute(page)).all()
        total = (await self._session.execute(select(func.count()).select_from(_C).where(*conditions))).scalar_one()
        return [_to_coupon(row) for row in rows], int(total)

    async def expire_due_coupons(self, now: datetime.datetime, batch_size: int) -> int:
        return await self._changed(expire_coupons_statement(now, batch_size))

    async def close_due_templates(self, now: datetime.datetime, batch_size: int) -> int:
        return await self._changed(close_templates_statement(now, batch_size))

    async def _changed(self, statement: Update) -> int:
        """Run a sweep's batch and count the rows it changed: the row count on PostgreSQL; SQLite's
        driver reports none for an UPDATE that starts with a CTE, so there the rows are returned."""
        if self._session.get_bind().dialect.name == "postgresql":
            result = await self._session.execute(statement)
            return int(result.rowcount)  # type: ignore[attr-defined]
        return len((await self._session.execute(statement.returning(literal(1)))).all())
