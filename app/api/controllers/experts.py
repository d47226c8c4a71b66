from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.security.jwt import Token

from app.api.errors import problem_responses
from app.api.expert_schemas import CreateExpertRequest, ExpertPage, ExpertResponse, UpdateExpertRequest
from app.api.security import PUBLIC, PUBLIC_OPT
from app.domain.experts.model import ExpertSort
from app.domain.experts.service import ExpertService
from app.domain.shared.paging import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from app.domain.users.model import User

Limit = Annotated[int, QueryParameter(ge=1, le=MAX_PAGE_SIZE)]
Offset = Annotated[int, QueryParameter(ge=0, le=1_000_000)]


class ExpertsController(Controller):
    path = "/api/experts"
    tags = ["experts"]

    @post(
        "/me",
        operation_id="createMyExpertProfile",
        summary="Create my expert profile",
        status_code=201,
        responses=problem_responses(400, 401, 409, 422, 503),
    )
    async def create(
        self,
        request: Request[User, Token, Any],
        data: JSONBody[CreateExpertRequest],
        experts: NamedDependency[ExpertService],
    ) -> ExpertResponse:
        """One per user: 409 `expert_profile_exists`; 422 `invalid_expert_profile` (every broken rule listed).
        Your role stays as it is (admins manage roles)."""
        return ExpertResponse.of(await experts.create(request.user.id, data.to_draft()))

    @patch(
        "/me",
        operation_id="updateMyExpertProfile",
        summary="Change my expert profile (only the fields given)",
        responses=problem_responses(400, 401, 404, 422, 503),
    )
    async def update(
        self,
        request: Request[User, Token, Any],
        data: JSONBody[UpdateExpertRequest],
        experts: NamedDependency[ExpertService],
    ) -> ExpertResponse:
        """404 `expert_not_found` when you have no profile yet; 422 `invalid_expert_profile`."""
        return ExpertResponse.of(await experts.update(request.user.id, data.to_draft()))

    @get(
        "/",
        operation_id="listExperts",
        summary="Experts, by rating or completed tasks",
        security=PUBLIC,
        opt=PUBLIC_OPT,
        responses=problem_responses(400, 503),
    )
    async def list_experts(
        self,
        experts: NamedDependency[ExpertService],
        limit: Limit = DEFAULT_PAGE_SIZE,
        offset: Offset = 0,
        category: Annotated[str | None, QueryParameter(max_length=60, description="Only experts in it")] = None,
        sort: Annotated[ExpertSort, QueryParameter(description="Sort key")] = ExpertSort.RATING,
    ) -> ExpertPage:
        """`rating`: best average first (unrated last), then most completed; `completed`: most completed tasks
        first, then best rating."""
        items, total = await experts.list_experts(
            sort, None if category is None else category.strip().lower(), limit, offset
        )
        return ExpertPage(items=[ExpertResponse.of(item) for item in items], total=total, limit=limit, offset=offset)

    @get(
        "/{expert_id:uuid}",
        operation_id="getExpert",
        summary="One expert's public profile",
        security=PUBLIC,
        opt=PUBLIC_OPT,
        responses=problem_responses(400, 404, 503),
    )
    async def get_expert(self, expert_id: FromPath[UUID], experts: NamedDependency[ExpertService]) -> ExpertResponse:
        """404 `expert_not_found`."""
        return ExpertResponse.of(await experts.get(expert_id))
