"""The peer of the HTTP benchmarks: the same two endpoints written the common way in FastAPI.

An async SQLAlchemy ORM session per request (``Depends(get_session)``), a
``get_current_user`` dependency that decodes the bearer token (same checks as the
service) and loads the caller with ``session.get(User, id)``, pydantic response models
read from the ORM objects. Same tables, same queries in effect, same JSON as the service.

Needs the ``bench`` dependency group (``make install-bench``). Run by ``bench/http.py`` as
``uvicorn bench.peer_fastapi:create_app --factory``; reads ``DATABASE_URL``, ``JWT_SECRET``,
``JWT_ISSUER``, ``JWT_AUDIENCE`` and ``PEER_POOL_SIZE``.
"""

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated

import jwt
from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict
from sqlalchemy import DateTime, ForeignKey, String, Uuid, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    username: Mapped[str] = mapped_column(String(32))
    role: Mapped[str] = mapped_column(String(16))
    display_name: Mapped[str | None]
    bio: Mapped[str | None]
    is_active: Mapped[bool]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Task(Base):
    __tablename__ = "tasks"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    poster_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    taker_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    title: Mapped[str]
    description: Mapped[str]
    category: Mapped[str]
    reward_points: Mapped[int]
    held_points: Mapped[int]
    coupon_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    hold_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    deadline: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str]
    rating: Mapped[int | None]
    cancel_reason: Mapped[str | None]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    taken_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancel_consented_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def discount(self) -> int:
        return self.reward_points - self.held_points


class MyProfile(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    username: str
    role: str
    display_name: str | None
    bio: str | None
    created_at: datetime
    updated_at: datetime


class TaskOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    poster_id: uuid.UUID
    taker_id: uuid.UUID | None
    title: str
    description: str
    category: str
    reward_points: int
    held_points: int
    discount: int
    coupon_id: uuid.UUID | None
    deadline: datetime
    status: str
    rating: int | None
    cancel_reason: str | None
    created_at: datetime
    updated_at: datetime
    taken_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    cancel_consented_at: datetime | None


class TaskPage(BaseModel):
    items: list[TaskOut]
    total: int
    limit: int
    offset: int


def create_app() -> FastAPI:
    engine = create_async_engine(
        os.environ["DATABASE_URL"], pool_size=int(os.environ.get("PEER_POOL_SIZE", "10")), max_overflow=0
    )
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    secret = os.environ["JWT_SECRET"]
    issuer = os.environ.get("JWT_ISSUER", "taskmarket")
    audience = os.environ.get("JWT_AUDIENCE", "taskmarket-api")
    bearer = HTTPBearer()

    async def get_session() -> AsyncIterator[AsyncSession]:
        async with sessions() as session:
            yield session

    async def get_current_user(
        credentials: Annotated[HTTPAuthorizationCredentials, Depends(bearer)],
        session: Annotated[AsyncSession, Depends(get_session)],
    ) -> User:
        try:
            claims = jwt.decode(
                credentials.credentials,
                secret,
                algorithms=["HS256"],
                issuer=issuer,
                audience=audience,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
            user_id = uuid.UUID(claims["sub"])
        except (jwt.InvalidTokenError, ValueError):
            raise HTTPException(status_code=401, detail="invalid token") from None
        user = await session.get(User, user_id)
        if user is None or not user.is_active:
            raise HTTPException(status_code=401, detail="unknown user")
        return user

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    app = FastAPI(lifespan=lifespan)

    @app.get("/api/users/profile/me", response_model=MyProfile)
    async def profile(user: Annotated[User, Depends(get_current_user)]) -> User:
        return user

    @app.get("/api/tasks", response_model=TaskPage)
    async def list_tasks(
        user: Annotated[User, Depends(get_current_user)],
        session: Annotated[AsyncSession, Depends(get_session)],
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> TaskPage:
        page = await session.scalars(
            select(Task).order_by(Task.created_at.desc(), Task.id.desc()).limit(limit).offset(offset)
        )
        total = await session.scalar(select(func.count()).select_from(Task))
        return TaskPage(
            items=[TaskOut.model_validate(task) for task in page], total=total or 0, limit=limit, offset=offset
        )

    return app
