"""Revision 0008 moves the expire transactions of expired lots onto the lots, and back on downgrade."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from advanced_alchemy.types import GUID, DateTimeUTC
from sqlalchemy import Integer, String, column, inspect, select, table
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from app.domain.points.model import TransactionFilter
from app.infra.db.points import SqlPointsLedger
from tests.support import create_postgres_database, drop_postgres_database, litestar_cli

EXPIRED_AT = datetime(2026, 5, 1, 3, 0, tzinfo=UTC)
CREATED_AT = EXPIRED_AT - timedelta(days=365)

# The tables as revision 0007 has them (only the columns written here), as plain SQL constructs.
USERS = table(
    "users",
    column("id", GUID),
    column("email", String),
    column("username", String),
    column("username_key", String),
    column("password_hash", String),
    column("created_at", DateTimeUTC),
    column("updated_at", DateTimeUTC),
)
LOTS = table(
    "point_lots",
    column("id", GUID),
    column("user_id", GUID),
    column("amount", Integer),
    column("remaining", Integer),
    column("expires_at", DateTimeUTC),
    column("created_at", DateTimeUTC),
    column("expired_at", DateTimeUTC),
)
TRANSACTIONS = table(
    "point_transactions",
    column("id", GUID),
    column("user_id", GUID),
    column("kind", String),
    column("amount", Integer),
    column("reason", String),
    column("lot_id", GUID),
    column("created_at", DateTimeUTC),
)


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'points_0008.sqlite3'}"
        return
    url = create_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(url)


async def _seed_at_0007(engine: AsyncEngine) -> dict[str, uuid.UUID]:
    """A user with a granted lot that expired (and its expire transaction), and a lot still spendable."""
    ids = {name: uuid.uuid4() for name in ("user", "expired_lot", "live_lot", "grant_1", "grant_2", "expire", "spend")}
    async with engine.begin() as connection:
        await connection.execute(
            USERS.insert().values(
                id=ids["user"],
                email="ada@example.com",
                username="ada",
                username_key="ada",
                password_hash="x",
                created_at=CREATED_AT,
                updated_at=CREATED_AT,
            )
        )
        lot = {"user_id": ids["user"], "amount": 30, "created_at": CREATED_AT, "expired_at": None}
        await connection.execute(
            LOTS.insert(),
            [
                {**lot, "id": ids["expired_lot"], "remaining": 0, "expires_at": EXPIRED_AT, "expired_at": EXPIRED_AT},
                {**lot, "id": ids["live_lot"], "remaining": 30, "expires_at": EXPIRED_AT + timedelta(days=365)},
            ],
        )
        entry = {"user_id": ids["user"], "lot_id": None}
        await connection.execute(
            TRANSACTIONS.insert(),
            [
                {**entry, "id": ids["grant_1"], "kind": "grant", "amount": 30, "reason": "a", "created_at": CREATED_AT},
                {**entry, "id": ids["grant_2"], "kind": "grant", "amount": 30, "reason": "b", "created_at": CREATED_AT},
                {
                    **entry,
                    "id": ids["spend"],
                    "kind": "spend",
                    "amount": -12,
                    "reason": None,
                    "created_at": CREATED_AT + timedelta(days=1),
                },
                {
                    **entry,
                    "id": ids["expire"],
                    "kind": "expire",
                    "amount": -18,
                    "reason": "expired",
                    "lot_id": ids["expired_lot"],
                    "created_at": EXPIRED_AT,
                },
            ],
        )
    return ids


async def _ledger(engine: AsyncEngine, user_id: uuid.UUID) -> list[tuple[Any, ...]]:
    async with async_sessionmaker(engine)() as session:
        entries, total = await SqlPointsLedger(session).list_transactions(user_id, TransactionFilter(), 20, 0)
    assert total == len(entries)
    return [(entry.id, entry.kind.value, entry.amount, entry.reason, entry.created_at) for entry in entries]


async def _columns(engine: AsyncEngine, table_name: str) -> set[str]:
    async with engine.connect() as connection:
        names = await connection.run_sync(lambda sync: [c["name"] for c in inspect(sync).get_columns(table_name)])
    return set(names)


async def test_expire_transactions_move_onto_their_lots_and_back(empty_database_url: str) -> None:
    url = empty_database_url
    litestar_cli("database", "upgrade", "0007", "--no-prompt", database_url=url)
    engine = create_async_engine(url)
    try:
        ids = await _seed_at_0007(engine)
        await engine.dispose()  # the schema changes under it

        litestar_cli("database", "upgrade", "head", "--no-prompt", database_url=url)
        ledger = await _ledger(engine, ids["user"])
        # the same entries, in the same order; the expire entry is now its lot (and carries the lot's id)
        assert [entry[1:] for entry in ledger] == [
            ("expire", -18, "expired", EXPIRED_AT),
            ("spend", -12, None, CREATED_AT + timedelta(days=1)),
            ("grant", 30, "b" if ids["grant_2"] > ids["grant_1"] else "a", CREATED_AT),
            ("grant", 30, "a" if ids["grant_2"] > ids["grant_1"] else "b", CREATED_AT),
        ]
        assert ledger[0][0] == ids["expired_lot"]
        assert sum(entry[2] for entry in ledger) == 30  # == what the live lot holds
        async with engine.connect() as connection:
            lots = (
                await connection.execute(
                    select(LOTS.c.id, LOTS.c.remaining, LOTS.c.expired_at, column("expired_amount", Integer))
                    .select_from(LOTS)
                    .order_by(LOTS.c.expires_at)
                )
            ).all()
            kinds = (await connection.execute(select(TRANSACTIONS.c.kind))).scalars().all()
        assert [tuple(lot) for lot in lots] == [
            (ids["expired_lot"], 0, EXPIRED_AT, 18),
            (ids["live_lot"], 30, None, None),
        ]
        assert sorted(kinds) == ["grant", "grant", "spend"]  # no expire row is left in the table
        await engine.dispose()

        litestar_cli("database", "downgrade", "0007", "--no-prompt", database_url=url)
        assert "expired_amount" not in await _columns(engine, "point_lots")
        async with engine.connect() as connection:
            expire_rows = (
                await connection.execute(
                    select(
                        TRANSACTIONS.c.user_id,
                        TRANSACTIONS.c.amount,
                        TRANSACTIONS.c.reason,
                        TRANSACTIONS.c.lot_id,
                        TRANSACTIONS.c.created_at,
                    ).where(TRANSACTIONS.c.kind == "expire")
                )
            ).all()
            total = (await connection.execute(select(TRANSACTIONS.c.amount))).scalars().all()
        assert [tuple(row) for row in expire_rows] == [(ids["user"], -18, "expired", ids["expired_lot"], EXPIRED_AT)]
        assert sum(total) == 30
    finally:
        await engine.dispose()
