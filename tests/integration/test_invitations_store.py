"""The invitations repository's expiry sweep on real databases."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from app.domain.invitations.model import InvitationCode, InvitationStatus
from app.domain.users.model import NewUser
from app.infra.db.invitation_tables import InvitationCodeRecord
from app.infra.db.invitations import SqlInvitationRepository
from app.infra.db.users import SqlUserRepository

NOW = datetime.now(UTC)


async def _seed(url: str, due: int, not_due: int) -> None:
    engine = create_async_engine(url)
    try:
        async with async_sessionmaker(engine)() as session:
            inviter = await SqlUserRepository(session).add(
                NewUser(email="ada@example.com", username="ada", password_hash="x")
            )
            repository = SqlInvitationRepository(session)
            for n in range(due + not_due):
                await repository.add(
                    InvitationCode(
                        id=uuid.uuid4(),
                        code=f"C{n:09d}",
                        inviter_id=inviter.id,
                        max_uses=1,
                        use_count=0,
                        expires_at=NOW - timedelta(minutes=1) if n < due else NOW + timedelta(days=1),
                        stored_status=InvitationStatus.ACTIVE,
                        created_at=NOW - timedelta(days=1),
                    )
                )
            await session.commit()
    finally:
        await engine.dispose()


async def _sweep(url: str, batch_size: int) -> int:
    engine = create_async_engine(url)
    try:
        total = 0
        while True:
            async with async_sessionmaker(engine)() as session:
                count = await SqlInvitationRepository(session).expire_due(NOW, batch_size)
                await session.commit()
            total += count
            if count < batch_size:
                return total
    finally:
        await engine.dispose()


async def _expired_count(url: str) -> int:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            statement = select(func.count()).where(InvitationCodeRecord.status == "expired")
            return int((await connection.execute(statement)).scalar_one())
    finally:
        await engine.dispose()


async def test_expiry_sweep_expires_due_codes_in_batches(database_url: str) -> None:
    await _seed(database_url, due=7, not_due=3)
    assert await _sweep(database_url, batch_size=3) == 7
    assert await _sweep(database_url, batch_size=3) == 0
    assert await _expired_count(database_url) == 7


@pytest.mark.postgres
async def test_overlapping_sweeps_expire_each_code_once(pg_url: str) -> None:
    await _seed(pg_url, due=60, not_due=5)
    counts = await asyncio.gather(*(_sweep(pg_url, batch_size=4) for _ in range(4)))
    assert sum(counts) == 60
    assert await _expired_count(pg_url) == 60


@pytest.mark.postgres
async def test_a_sweep_with_nothing_due_uses_an_index(pg_url: str) -> None:
    engine = create_async_engine(pg_url)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SET enable_seqscan = off"))
            plan = "\n".join(
                row[0]
                for row in await connection.execute(
                    text(
                        "EXPLAIN SELECT id FROM invitation_codes WHERE status = 'active' AND expires_at <= now() "
                        "ORDER BY expires_at LIMIT 1000 FOR UPDATE SKIP LOCKED"
                    )
                )
            )
    finally:
        await engine.dispose()
    assert "ix_invitation_codes_due" in plan
