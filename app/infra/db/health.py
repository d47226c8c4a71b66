from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


async def ping_database(engine: AsyncEngine, limit_seconds: float) -> None:
    """Run ``SELECT 1``; raise on failure or when it takes longer than ``limit_seconds``."""
    async with asyncio.timeout(limit_seconds):
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
