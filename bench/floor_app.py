"""The floor of the HTTP benchmarks: bare Litestar handlers doing the endpoints' work on raw asyncpg.

No middleware, no dependency injection, no ORM: each handler verifies the bearer token
with the same checks as the service (HS256 signature, ``exp``, ``iss``, ``aud``, the same
required claims), reads the active caller by primary key and, for the list, runs the same
page and count statements the service runs, on one connection from an asyncpg pool (default
pool settings: a released connection is reset, one round trip). Same JSON as the service.

Run by ``bench/http.py`` as ``uvicorn bench.floor_app:create_app --factory``; reads
``DATABASE_URL``, ``JWT_SECRET``, ``JWT_ISSUER``, ``JWT_AUDIENCE`` and ``FLOOR_POOL_SIZE``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import jwt
from litestar import Litestar, Request, get
from litestar.exceptions import NotAuthorizedException

REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub"]
USER_SQL = (
    "SELECT id, email, username, role, display_name, bio, is_active, created_at, updated_at "
    "FROM users WHERE id = $1 AND is_active IS true"
)
TASK_COLUMNS = (
    "id, poster_id, taker_id, title, description, category, reward_points, held_points, coupon_id, hold_id, "
    "deadline, status, rating, cancel_reason, created_at, updated_at, taken_at, completed_at, cancelled_at, "
    "cancel_consented_at"
)
# The service's page statement for the default list (every status, newest first): the newest rows of
# each status from the (status, created_at) index, merged; then the total of a full page.
_NEWEST_OF = f"(SELECT {TASK_COLUMNS} FROM tasks WHERE status = '{{}}' ORDER BY created_at DESC, id DESC LIMIT $3)"
PAGE_SQL = (
    f"SELECT * FROM ({' UNION ALL '.join(_NEWEST_OF.format(s) for s in ('cancelled', 'completed', 'open', 'taken'))})"
    " AS newest ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2"
)
COUNT_SQL = "SELECT count(*) FROM tasks"


def create_app() -> Litestar:
    dsn = os.environ["DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://")
    secret = os.environ["JWT_SECRET"]
    issuer = os.environ.get("JWT_ISSUER", "taskmarket")
    audience = os.environ.get("JWT_AUDIENCE", "taskmarket-api")
    pool_size = int(os.environ.get("FLOOR_POOL_SIZE", "10"))
    pools: dict[str, asyncpg.Pool] = {}

    @asynccontextmanager
    async def lifespan(_app: Litestar) -> AsyncIterator[None]:
        pools["db"] = await asyncpg.create_pool(dsn, min_size=pool_size, max_size=pool_size)
        try:
            yield
        finally:
            await pools["db"].close()

    def user_id_of(request: Request[Any, Any, Any]) -> uuid.UUID:
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            raise NotAuthorizedException()
        try:
            claims = jwt.decode(
                header[7:],
                secret,
                algorithms=["HS256"],
                issuer=issuer,
                audience=audience,
                options={"require": REQUIRED_CLAIMS},
            )
            return uuid.UUID(claims["sub"])
        except (jwt.InvalidTokenError, ValueError):
            raise NotAuthorizedException() from None

    @get("/api/users/profile/me")
    async def profile(request: Request[Any, Any, Any]) -> dict[str, Any]:
        user_id = user_id_of(request)
        async with pools["db"].acquire() as connection:
            row = await connection.fetchrow(USER_SQL, user_id)
        if row is None:
            raise NotAuthorizedException()
        return {
            "id": row["id"],
            "email": row["email"],
            "username": row["username"],
            "role": row["role"],
            "display_name": row["display_name"],
            "bio": row["bio"],
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
        }

    @get("/api/tasks")
    async def tasks(request: Request[Any, Any, Any], limit: int = 20, offset: int = 0) -> dict[str, Any]:
        user_id = user_id_of(request)
        async with pools["db"].acquire() as connection:
            if await connection.fetchrow(USER_SQL, user_id) is None:
                raise NotAuthorizedException()
            rows = await connection.fetch(PAGE_SQL, limit, offset, offset + limit)
            total = await connection.fetchval(COUNT_SQL)
        items = []
        for row in rows:
            item = dict(row)
            del item["hold_id"]  # read (the service reads it too) but not part of the response
            item["discount"] = row["reward_points"] - row["held_points"]
            items.append(item)
        return {"items": items, "total": total, "limit": limit, "offset": offset}

    return Litestar(route_handlers=[profile, tasks], lifespan=[lifespan], debug=False)
