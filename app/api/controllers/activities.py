from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.security.jwt import Token

from app.api.activity_schemas import ActivityPage, ActivityResponse, CreateActivityRequest
from app.api.errors import problem_responses
from app.api.security import requires_role
from app.domain.activities.model import ActivityFilter, ActivityState
from app.domain.activities.service import ActivityService
from app.domain.shared.paging import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from app.domain.users.model import Principal, Role, User

Limit = Annotated[int, QueryParameter(ge=1, le=MAX_PAGE_SIZE)]
Offset = Annotated[int, QueryParameter(ge=0, le=1_000_000)]


class ActivitiesController(Controller):
    path = "/api/activities"
    tags = ["activities"]

    @post(
        "/",
        operation_id="createActivity",
        summary="Create an activity (experts and admins)",
        status_code=201,
        guards=[requires_role(Role.EXPERT, Role.ADMIN)],
        responses=problem_responses(400, 401, 403, 422, 503),
    )
    async def create(
        self,
        request: Request[User, Token, Any],
        data: JSONBody[CreateActivityRequest],
        activities: NamedDependency[ActivityService],
    ) -> ActivityResponse:
        """403 for other roles; 422 `invalid_activity` lists every broken rule (`starts_in_past`,
        `ends_before_start`, `invalid_length`, `out_of_range`, ...)."""
        return ActivityResponse.of(await activities.create(Principal.of(request.user), data.to_draft()))

    @get(
        "/",
        operation_id="listActivities",
        summary="Activities by start time, filtered by state",
        responses=problem_responses(400, 401, 503),
    )
    async def list_activities(
        self,
        activities: NamedDependency[ActivityService],
        limit: Limit = DEFAULT_PAGE_SIZE,
        offset: Offset = 0,
        states: Annotated[
            list[ActivityState] | None, QueryParameter(name="state", description="Only these (shown) states")
        ] = None,
        creator_id: Annotated[UUID | None, QueryParameter(description="Only activities this user created")] = None,
    ) -> ActivityPage:
        """Earliest start first. `state` filters on the state as shown now (`active` between `starts_at` and
        `ends_at`), so a filtered item always carries one of the asked states."""
        filters = ActivityFilter(states=frozenset(states or ()), creator_id=creator_id)
        items, total = await activities.list_activities(filters, limit, offset)
        return ActivityPage(
            items=[ActivityResponse.of(item) for item in items], total=total, limit=limit, offset=offset
        )

    @get(
        "/{activity_id:uuid}",
        operation_id="getActivity",
        summary="One activity",
        responses=problem_responses(400, 401, 404, 503),
    )
    async def get_activity(
        self, activity_id: FromPath[UUID], activities: NamedDependency[ActivityService]
    ) -> ActivityResponse:
        return ActivityResponse.of(await activities.get(activity_id))

    @post(
        "/{activity_id:uuid}/join",
        operation_id="joinActivity",
        summary="Join a scheduled or active activity",
        status_code=200,
        responses=problem_responses(400, 401, 404, 409, 503),
    )
    async def join(
        self,
        request: Request[User, Token, Any],
        activity_id: FromPath[UUID],
        activities: NamedDependency[ActivityService],
    ) -> ActivityResponse:
        """Never above capacity, also under simultaneous joins. 409 `full`, 409 `already_joined`, 409
        `invalid_transition` (ended or cancelled)."""
        return ActivityResponse.of(await activities.join(Principal.of(request.user), activity_id))

    @post(
        "/{activity_id:uuid}/leave",
        operation_id="leaveActivity",
        summary="Leave an activity you joined, while it is scheduled or active",
        status_code=200,
        responses=problem_responses(400, 401, 404, 409, 503),
    )
    async def leave(
        self,
        request: Request[User, Token, Any],
        activity_id: FromPath[UUID],
        activities: NamedDependency[ActivityService],
    ) -> ActivityResponse:
        """The place goes back. 409 `not_joined`, 409 `invalid_transition` (ended or cancelled: no reward is
        given up by leaving late)."""
        return ActivityResponse.of(await activities.leave(Principal.of(request.user), activity_id))

    @post(
        "/{activity_id:uuid}/cancel",
        operation_id="cancelActivity",
        summary="Cancel a scheduled or active activity (its creator or an admin)",
        status_code=200,
        responses=problem_responses(400, 401, 403, 404, 409, 503),
    )
    async def cancel(
        self,
        request: Request[User, Token, Any],
        activity_id: FromPath[UUID],
        activities: NamedDependency[ActivityService],
    ) -> ActivityResponse:
        """Every participant is released and notified (`activity_cancelled`); nobody is rewarded. 403
        `not_creator`, 409 `invalid_transition` (ended or cancelled already)."""
        return ActivityResponse.of(await activities.cancel(Principal.of(request.user), activity_id))
