from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.security.jwt import Token

from app.api.errors import problem_responses
from app.api.schemas import CreateInvitationRequest, InvitationPage, InvitationResponse
from app.domain.invitations.model import InvitationStatus
from app.domain.invitations.service import InvitationService
from app.domain.shared.paging import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from app.domain.users.model import Principal, User


class InvitationsController(Controller):
    path = "/api/invitations"
    tags = ["invitations"]

    @post(
        "",
        operation_id="createInvitation",
        summary="Create an invitation code",
        status_code=201,
        responses=problem_responses(400, 401, 409, 422, 503),
    )
    async def create(
        self,
        request: Request[User, Token, Any],
        data: JSONBody[CreateInvitationRequest],
        invitations: NamedDependency[InvitationService],
    ) -> InvitationResponse:
        """Registering with the code rewards both the inviter and the new account. A user has a limited number
        of usable codes at a time (409 `invitation_limit_reached`)."""
        view = await invitations.create(Principal.of(request.user), max_uses=data.max_uses, expires_at=data.expires_at)
        return InvitationResponse.of(view)

    @get(
        "/me",
        operation_id="listMyInvitations",
        summary="My invitation codes, newest first",
        responses=problem_responses(400, 401, 503),
    )
    async def list_mine(
        self,
        request: Request[User, Token, Any],
        invitations: NamedDependency[InvitationService],
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
        offset: Annotated[int, QueryParameter(ge=0, le=1_000_000)] = 0,
        status: Annotated[InvitationStatus | None, QueryParameter(description="Only codes in this state")] = None,
    ) -> InvitationPage:
        views, total = await invitations.list_mine(Principal.of(request.user), status, limit, offset)
        return InvitationPage(
            items=[InvitationResponse.of(view) for view in views], total=total, limit=limit, offset=offset
        )

    @delete(
        "/{invitation_id:uuid}",
        operation_id="revokeInvitation",
        summary="Revoke one of my invitation codes",
        status_code=204,
        responses=problem_responses(400, 401, 404, 503),
    )
    async def revoke(
        self,
        request: Request[User, Token, Any],
        invitation_id: FromPath[UUID],
        invitations: NamedDependency[InvitationService],
    ) -> None:
        await invitations.revoke(Principal.of(request.user), invitation_id)
