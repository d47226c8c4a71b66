from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession


class SessionUnitOfWork:
    """A request's session is its unit of work: use cases commit what they decided to keep."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def commit(self) -> None:
        await self._session.commit()

    async def rollback(self) -> None:
        await self._session.rollback()
