"""The invitations repository on SQLAlchemy Core.

A code's use count is taken with one guarded ``UPDATE``: concurrent registrations
with one code queue on its row lock, and once ``max_uses`` is reached the guard
matches nothing, so no more than ``max_uses`` accounts are ever rewarded.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.invitations.model import InvitationCode, InvitationStatus
from app.domain.invitations.ports import AlreadyRedeemed, CodeTaken
from app.infra.db.invitation_tables import InvitationCodeRecord, InvitationRedemptionRecord
from app.infra.db.tables import UserRecord

_CODE = InvitationCodeRecord
_COLUMNS = (
    _CODE.id,
    _CODE.code,
    _CODE.inviter_id,
    _CODE.max_uses,
    _CODE.use_count,
    _CODE.expires_at,
    _CODE.status,
    _CODE.created_at,
)

_EXPIRE_BATCH_POSTGRES = text(
    """
    UPDATE invitation_codes SET status = 'expired', closed_at = :now
    WHERE id IN (
        SELECT id FROM invitation_codes
        WHERE status = 'active' AND expires_at <= :now
        ORDER BY expires_at
        LIMIT :batch_size
        FOR UPDATE SKIP LOCKED
    )
    """
)


def _to_code(row: Any) -> InvitationCode:
    return InvitationCode(
        id=row.id,
        code=row.code,
        inviter_id=row.inviter_id,
        max_uses=row.max_uses,
        use_count=row.use_count,
        expires_at=row.expires_at,
        stored_status=InvitationStatus(row.status),
        created_at=row.created_at,
    )


def _usable(now: datetime.datetime) -> Any:
    return and_(_CODE.status == InvitationStatus.ACTIVE.value, _CODE.expires_at > now, _CODE.use_count < _CODE.max_uses)


def _with_status(status: InvitationStatus, now: datetime.datetime) -> Any:
    """The SQL form of ``InvitationCode.status(now) == status``."""
    active = _CODE.status == InvitationStatus.ACTIVE.value
    match status:
        case InvitationStatus.ACTIVE:
            return _usable(now)
        case InvitationStatus.USED_UP:
            return and_(active, _CODE.expires_at > now, _CODE.use_count >= _CODE.max_uses)
        case InvitationStatus.EXPIRED:
            return or_(_CODE.status == InvitationStatus.EXPIRED.value, and_(active, _CODE.expires_at <= now))
        case _:
            return _CODE.status == InvitationStatus.REVOKED.value


class SqlInvitationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def lock_inviter(self, user_id: uuid.UUID) -> None:
        await self._session.execute(select(UserRecord.id).where(UserRecord.id == user_id).with_for_update())

    async def count_active(self, inviter_id: uuid.UUID, now: datetime.datetime) -> int:
        statement = select(func.count()).select_from(_CODE).where(_CODE.inviter_id == inviter_id, _usable(now))
        return int((await self._session.execute(statement)).scalar_one())

    async def add(self, code: InvitationCode) -> None:
        statement = insert(_CODE).values(
            id=code.id,
            code=code.code,
            inviter_id=code.inviter_id,
            max_uses=code.max_uses,
            use_count=code.use_count,
            expires_at=code.expires_at,
            status=code.stored_status.value,
            created_at=code.created_at,
        )
        try:
            async with self._session.begin_nested():
                await self._session.execute(statement)
        except IntegrityError as error:
            if "code" in str(error.orig):
                raise CodeTaken from None
            raise

    async def take_use(self, code: str, now: datetime.datetime) -> InvitationCode | None:
        statement = (
            update(_CODE)
            .where(_CODE.code == code, _usable(now))
            .values(use_count=_CODE.use_count + 1)
            .returning(*_COLUMNS)
        )
        row = (await self._session.execute(statement)).first()
        return None if row is None else _to_code(row)

    async def find_by_code(self, code: str) -> InvitationCode | None:
        row = (await self._session.execute(select(*_COLUMNS).where(_CODE.code == code))).first()
        return None if row is None else _to_code(row)

    async def record_redemption(self, code_id: uuid.UUID, invitee_id: uuid.UUID, now: datetime.datetime) -> uuid.UUID:
        redemption_id = uuid.uuid4()
        try:
            async with self._session.begin_nested():
                await self._session.execute(
                    insert(InvitationRedemptionRecord).values(
                        id=redemption_id, code_id=code_id, invitee_id=invitee_id, created_at=now
                    )
                )
        except IntegrityError:
            raise AlreadyRedeemed from None
        return redemption_id

    async def revoke(self, code_id: uuid.UUID, inviter_id: uuid.UUID, now: datetime.datetime) -> InvitationCode | None:
        statement = (
            update(_CODE)
            .where(_CODE.id == code_id, _CODE.inviter_id == inviter_id)
            .values(
                # revoking twice, or revoking an expired code, keeps the first closing
                status=InvitationStatus.REVOKED.value,
                closed_at=func.coalesce(_CODE.closed_at, now),
            )
            .returning(*_COLUMNS)
        )
        row = (await self._session.execute(statement)).first()
        return None if row is None else _to_code(row)

    async def list_for(
        self,
        inviter_id: uuid.UUID,
        status: InvitationStatus | None,
        now: datetime.datetime,
        limit: int,
        offset: int,
    ) -> tuple[list[InvitationCode], int]:
        conditions = [_CODE.inviter_id == inviter_id]
        if status is not None:
            conditions.append(_with_status(status, now))
        page = (
            select(*_COLUMNS)
            .where(*conditions)
            .order_by(_CODE.created_at.desc(), _CODE.id.desc())
            .limit(limit)
            .offset(offset)
        )
        rows = (await self._session.execute(page)).all()
        total = (await self._session.execute(select(func.count()).select_from(_CODE).where(*conditions))).scalar_one()
        return [_to_code(row) for row in rows], int(total)

    async def expire_due(self, now: datetime.datetime, batch_size: int) -> int:
        if self._session.get_bind().dialect.name == "postgresql":
            result = await self._session.execute(_EXPIRE_BATCH_POSTGRES, {"now": now, "batch_size": batch_size})
            return int(result.rowcount)  # type: ignore[attr-defined]
        due = select(_CODE.id).where(_CODE.status == "active", _CODE.expires_at <= now).limit(batch_size)
        result = await self._session.execute(
            update(_CODE).where(_CODE.id.in_(due)).values(status=InvitationStatus.EXPIRED.value, closed_at=now)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]
