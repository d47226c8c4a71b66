"""SQLAlchemy adapters of the users context's ports."""

from __future__ import annotations

import asyncio
import datetime
import time
import uuid
from typing import Any, cast

import asyncpg
from sqlalchemy import Select, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from app.domain.shared.errors import Conflict
from app.domain.users.model import (
    Credentials,
    NewUser,
    ProfileChanges,
    RefreshTokenRecord,
    Role,
    User,
)
from app.infra.db.config import database_answered, probing_checkout
from app.infra.db.driver import DriverStatement, driver_failure
from app.infra.db.tables import RefreshTokenRecord as RefreshTokenRow
from app.infra.db.tables import UserRecord
from app.infra.observability.db_metrics import observe_query

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


def _active_user(user_id: Any) -> Select[*tuple[Any, ...]]:
    return select(*_USER_COLUMNS).where(UserRecord.id == user_id, UserRecord.is_active.is_(True))


async def load_active_user(connection: AsyncConnection, user_id: uuid.UUID) -> User | None:
    """The authenticated caller: one primary-key lookup."""
    row = (await connection.execute(_active_user(user_id))).first()
    return None if row is None else _to_user(row)


class ActiveUserLoader:
    """Reads the caller of every authenticated request: the service's most frequent statement.

    On PostgreSQL it skips SQLAlchemy's execution layer, which costs several times the
    round trip here: the statement is compiled once, and runs on the pooled asyncpg
    connection itself, outside a transaction (no BEGIN and ROLLBACK around one read).
    It doubles as the checkout's liveness probe (``probing_checkout``): it is bounded
    by ``probe_timeout_seconds``, and a connection that fails or is late is discarded.
    A connection found dead is replaced once, as the pre-ping would have done; a late
    one is not retried, so a silent server costs one bounded wait (then 503). Its answer
    spares the same request's next checkout a ping (``database_answered``).
    """

    def __init__(self, engine: AsyncEngine, probe_timeout_seconds: float) -> None:
        self._engine = engine
        self._timeout = probe_timeout_seconds
        self._sql: str | None = None
        if engine.dialect.driver == "asyncpg":
            # positional ($1) parameters, as asyncpg takes them
            self._sql = DriverStatement(_active_user(uuid.UUID(int=0)), engine.dialect).sql

    async def __call__(self, user_id: uuid.UUID) -> User | None:
        if self._sql is None:
            async with self._engine.connect() as connection:
                return await load_active_user(connection, user_id)
        try:
            return await self._read(self._sql, user_id)
        except OperationalError as error:
            if isinstance(error.orig, TimeoutError):
                raise
        return await self._read(self._sql, user_id)

    async def _read(self, sql: str, user_id: uuid.UUID) -> User | None:
        driver_error = self._engine.dialect.loaded_dbapi.Error
        try:
            with probing_checkout():
                pooled = await self._engine.raw_connection()
        except driver_error as error:  # no connection to be had (refused, timed out): as SQLAlchemy reports it
            raise DBAPIError.instance(None, None, error, driver_error) from error
        try:
            driver = cast("asyncpg.Connection[asyncpg.Record]", pooled.driver_connection)
            started = time.perf_counter()
            record = await driver.fetchrow(sql, user_id, timeout=self._timeout)
            observe_query("select", time.perf_counter() - started)
        except asyncio.CancelledError:
            pooled.invalidate()  # cancelled mid-statement: the connection's state is unknown
            raise
        except Exception as error:
            failure, lost = driver_failure(error, sql)
            if lost:  # like a failed ping: lost, refused or late, this connection is never handed out again
                pooled.invalidate(error)
            raise failure from error
        finally:
            pooled.close()
        database_answered()
        if record is None:
            return None
        return User(
            id=record["id"],
            email=record["email"],
            username=record["username"],
            role=Role(record["role"]),
            display_name=record["display_name"],
            bio=record["bio"],
            is_active=record["is_active"],
            created_at=record["created_at"],
            updated_at=record["updated_at"],
        )


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
