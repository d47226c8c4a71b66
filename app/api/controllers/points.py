from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter
from litestar.security.jwt import Token

from app.api.errors import problem_responses
from app.api.schemas import (
    GrantPointsRequest,
    PointsSummaryResponse,
    PointTransactionPage,
    PointTransactionResponse,
)
from app.api.security import requires_role
from app.domain.points.model import TransactionFilter, TransactionKind
from app.domain.points.service import PointsService
from app.domain.shared.paging import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from app.domain.users.model import Principal, Role, User

Limit = Annotated[int, QueryParameter(ge=1, le=MAX_PAGE_SIZE)]
Offset = Annotated[int, QueryParameter(ge=0, le=1_000_000)]


class PointsController(Controller):
    path = "/api/points"
    tags = ["points"]

    @get(
        "/me",
        operation_id="getMyPoints",
        summary="My balance and what expires in the next 30 days",
        responses=problem_responses(401, 503),
    )
    async def my_points(
        self, request: Request[User, Token, Any], points: NamedDependency[PointsService]
    ) -> PointsSummaryResponse:
        return PointsSummaryResponse.of(await points.summary(request.user.id))

    @get(
        "/me/transactions",
        operation_id="listMyPointTransactions",
        summary="My points ledger, newest first",
        responses=problem_responses(400, 401, 503),
    )
    async def my_transactions(
        self,
        request: Request[User, Token, Any],
        points: NamedDependency[PointsService],
        limit: Limit = DEFAULT_PAGE_SIZE,
        offset: Offset = 0,
        kind: Annotated[list[TransactionKind] | None, QueryParameter(description="Only these kinds")] = None,
        since: Annotated[datetime | None, QueryParameter(description="Created at or after")] = None,
        until: Annotated[datetime | None, QueryParameter(description="Created before")] = None,
    ) -> PointTransactionPage:
        filters = TransactionFilter(kinds=frozenset(kind or ()), since=since, until=until)
        items, total = await points.transactions(request.user.id, filters, limit, offset)
        return PointTransactionPage(
            items=[PointTransactionResponse.of(item) for item in items], total=total, limit=limit, offset=offset
        )


class AdminPointsController(Controller):
    path = "/api/admin/points"
    tags = ["admin"]
    guards = [requires_role(Role.ADMIN)]

    @post(
        "/grant",
        operation_id="grantPoints",
        summary="Grant points to a user (admins only; idempotent by key)",
        status_code=200,
        responses=problem_responses(400, 401, 403, 404, 409, 422, 503),
    )
    async def grant(
        self,
        request: Request[User, Token, Any],
        data: JSONBody[GrantPointsRequest],
        points: NamedDependency[PointsService],
    ) -> PointTransactionResponse:
        """The same `idempotency_key` with the same request applies once and answers the same; with a different
        request it is refused (409 `idempotency_key_reused`)."""
        transaction = await points.admin_grant(
            Principal.of(request.user),
            data.user_id,
            data.amount,
            reason=data.reason,
            idempotency_key=data.idempotency_key,
            expires_in_days=data.expires_in_days,
        )
        return PointTransactionResponse.of(transaction)
