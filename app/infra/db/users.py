"""SQLAlchemy adapters of the users context's ports."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.domain.shared.errors import Conflict
from app.domain.users.model import (
    Credentials,
    NewUser,
    ProfileChanges,
    RefreshTokenRecord,
    Role,
    User,
)
from app.infra.db.tables import RefreshTokenRecord as RefreshTokenRow
from app.infra.db.tables import UserRecord

_USER_COLUMNS = (
    UserRecord.id,
    UserRecord.email,
    UserRecord.username,
    UserRecord.role,
    UserRecord.display_name,
    UserRecord.bio,
    UserRecord.is_active,
    UserRecord.created_at,
    UserRecord.updated_at,
)


def _to_user(row: Any) -> User:
    return User(
        id=row.id,
        email=row.email,
        username=row.username,
        role=Role(row.role),
        display_name=row.display_name,
        bio=row.bio,
        is_active=row.is_active,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _conflict_from(error: IntegrityError) -> Conflict:
    # PostgreSQL names the constraint, SQLite the column; both contain the column name.
    text = str(error.orig)
    if "email" in text:
        return Conflict("Email is already registered.", code="email_taken")
    if "username" in text:
        return Conflict("Username is taken.", code="username_taken")
    return Conflict("The change conflicts with existing data.")


class SqlUserRepository:
    """Users on SQLAlchemy Core statements (one round trip each)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, new_user: NewUser) -> User:
        now = datetime.datetime.now(datetime.UTC)
        statement = (
            insert(UserRecord)
            .values(
                id=uuid.uuid4(),
                email=new_user.email,
                username=new_user.username,
                username_key=new_user.username.casefold(),
                password_hash=new_user.password_hash,
                role=new_user.role.value,
                is_active=True,
                created_at=now,
                updated_at=now,
            )
            .returning(*_USER_COLUMNS)
        )
        try:
            # A savepoint keeps the surrounding transaction usable after a duplicate.
            async with self._session.begin_nested():
                row = (await self._session.execute(statement)).one()
        except IntegrityError as error:
            raise _conflict_from(error) from None
        return _to_user(row)

    async def get(self, user_id: uuid.UUID) -> User | None:
        row = (await self._session.execute(select(*_USER_COLUMNS).where(UserRecord.id == user_id))).first()
        return None if row is None else _to_user(row)

    async def _credentials(self, condition: Any) -> Credentials | None:
        statement = select(*_USER_COLUMNS, UserRecord.password_hash).where(condition)
        row = (await self._session.execute(statement)).first()
        return None if row is None else Credentials(user=_to_user(row), password_hash=row.password_hash)

    async def get_credentials(self, user_id: uuid.UUID) -> Credentials | None:
        return await self._credentials(UserRecord.id == user_id)

    async def get_credentials_by_email(self, email: str) -> Credentials | None:
        return await self._credentials(UserRecord.email == email)

    async def update_profile(self, user_id: uuid.UUID, changes: ProfileChanges) -> User:
        values: dict[str, Any] = {"updated_at": datetime.datetime.now(datetime.UTC)}
        if changes.display_name is not None:
            values["display_name"] = changes.display_name
        if changes.bio is not None:
            values["bio"] = changes.bio
        if changes.username is not None:
            values["username"] = changes.username
            values["username_key"] = changes.username.casefold()
        statement = update(UserRecord).where(UserRecord.id == user_id).values(**values).returning(*_USER_COLUMNS)
        try:
            async with self._session.begin_nested():
                row = (await self._session.execute(statement)).one()
        except IntegrityError as error:
            raise _conflict_from(error) from None
        return _to_user(row)

    async def set_password_hash(self, user_id: uuid.UUID, password_hash: str) -> None:
        await self._session.execute(
            update(UserRecord)
            .where(UserRecord.id == user_id)
            .values(password_hash=password_hash, updated_at=datetime.datetime.now(datetime.UTC))
        )

    async def set_role(self, user_id: uuid.UUID, role: Role) -> User | None:
        statement = (
            update(UserRecord)
            .where(UserRecord.id == user_id)
            .values(role=role.value, updated_at=datetime.datetime.now(datetime.UTC))
            .returning(*_USER_COLUMNS)
        )
        row = (await self._session.execute(statement)).first()
        return None if row is None else _to_user(row)


async def load_active_user(connection: AsyncConnection, user_id: uuid.UUID) -> User | None:
    """The authenticated caller, read on every authenticated request: one primary-key lookup."""
    statement = select(*_USER_COLUMNS).where(UserRecord.id == user_id, UserRecord.is_active.is_(True))
    row = (await connection.execute(statement)).first()
    return None if row is None else _to_user(row)


class SqlRefreshTokenStore:
    def __init__(self, session: AsyncSession, ttl: datetime.timedelta) -> None:
        self._session = session
        self._ttl = ttl

    async def create(self, user_id: uuid.UUID, family_id: uuid.UUID, token_hash: str, now: datetime.datetime) -> None:
        await self._session.execute(
            insert(RefreshTokenRow).values(
                id=uuid.uuid4(),
                user_id=user_id,
                family_id=family_id,
                token_hash=token_hash,
                created_at=now,
                expires_at=now + self._ttl,
            )
        )

    async def consume(self, token_hash: str, now: datetime.datetime) -> RefreshTokenRecord | None:
        # The guarded UPDATE is the whole concurrency story: a second transaction
        # waits for the row lock, re-checks ``used_at IS NULL`` and matches nothing.
        statement = (
            update(RefreshTokenRow)
            .where(
                RefreshTokenRow.token_hash == token_hash,
                RefreshTokenRow.used_at.is_(None),
                RefreshTokenRow.revoked_at.is_(None),
                RefreshTokenRow.expires_at > now,
            )
            .values(used_at=now)
            .returning(*_TOKEN_COLUMNS)
        )
        row = (await self._session.execute(statement)).first()
        return None if row is None else _to_token(row)

    async def find(self, token_hash: str) -> RefreshTokenRecord | None:
        row = (
            await self._session.execute(select(*_TOKEN_COLUMNS).where(RefreshTokenRow.token_hash == token_hash))
        ).first()
        return None if row is None else _to_token(row)

    async def revoke_family(self, family_id: uuid.UUID, now: datetime.datetime) -> None:
        await self._session.execute(
            update(RefreshTokenRow)
            .where(RefreshTokenRow.family_id == family_id, RefreshTokenRow.revoked_at.is_(None))
            .values(revoked_at=now)
        )

    async def revoke_all_for_user(self, user_id: uuid.UUID, now: datetime.datetime) -> None:
        await self._session.execute(
            update(RefreshTokenRow)
            .where(RefreshTokenRow.user_id == user_id, RefreshTokenRow.revoked_at.is_(None))
            .values(revoked_at=now)
        )


_TOKEN_COLUMNS = (
    RefreshTokenRow.user_id,
    RefreshTokenRow.family_id,
    RefreshTokenRow.expires_at,
    RefreshTokenRow.used_at,
    RefreshTokenRow.revoked_at,
)


def _to_token(row: Any) -> RefreshTokenRecord:
    return RefreshTokenRecord(
        user_id=row.user_id,
        family_id=row.family_id,
        expires_at=row.expires_at,
        used_at=row.used_at,
        revoked_at=row.revoked_at,
    )
