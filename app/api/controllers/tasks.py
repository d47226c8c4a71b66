from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.security.jwt import Token

from app.api.errors import problem_responses
from app.api.task_schemas import CompleteTaskRequest, CreateTaskRequest, TaskPage, TaskResponse
from app.domain.shared.paging import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from app.domain.tasks.model import SortOrder, TaskFilter, TaskSort, TaskStatus
from app.domain.tasks.service import TaskService
from app.domain.users.model import Principal, User

Limit = Annotated[int, QueryParameter(ge=1, le=MAX_PAGE_SIZE)]
Offset = Annotated[int, QueryParameter(ge=0, le=1_000_000)]


class TasksController(Controller):
    path = "/api/tasks"
    tags = ["tasks"]

    @post(
        "/",
        operation_id="createTask",
        summary="Post a task; its reward is held from your points",
        status_code=201,
        responses=problem_responses(400, 401, 404, 409, 422, 503),
    )
    async def create(
        self, request: Request[User, Token, Any], data: JSONBody[CreateTaskRequest], tasks: NamedDependency[TaskService]
    ) -> TaskResponse:
        """The hold, the coupon's use and the task stand or fall together. Refusals: 422 `invalid_task` (every
        broken rule listed), 409 `insufficient_points`, the coupon's `already_used`, `expired`, `wrong_kind`
        (409), `min_reward_not_met` (422), 404 `coupon_not_found`."""
        return TaskResponse.of(await tasks.post(request.user.id, data.to_draft()))

    @get(
        "/",
        operation_id="listTasks",
        summary="Tasks, filtered and sorted",
        responses=problem_responses(400, 401, 503),
    )
    async def list_tasks(
        self,
        tasks: NamedDependency[TaskService],
        limit: Limit = DEFAULT_PAGE_SIZE,
        offset: Offset = 0,
        status: Annotated[list[TaskStatus] | None, QueryParameter(description="Only these statuses")] = None,
        category: Annotated[str | None, QueryParameter(max_length=60)] = None,
        poster_id: Annotated[UUID | None, QueryParameter(description="Only tasks this user posted")] = None,
        taker_id: Annotated[UUID | None, QueryParameter(description="Only tasks this user took")] = None,
        sort: Annotated[TaskSort, QueryParameter(description="Sort key")] = TaskSort.CREATED,
        order: Annotated[SortOrder, QueryParameter(description="Sort direction")] = SortOrder.DESC,
    ) -> TaskPage:
        """Newest first unless `sort` (`created`, `deadline`, `reward`) and `order` say otherwise."""
        filters = TaskFilter(
            statuses=frozenset(status or ()),
            category=None if category is None else category.strip().lower(),
            poster_id=poster_id,
            taker_id=taker_id,
        )
        items, total = await tasks.list_tasks(filters, sort, order, limit, offset)
        return TaskPage(items=[TaskResponse.of(item) for item in items], total=total, limit=limit, offset=offset)

    @get(
        "/{task_id:uuid}",
        operation_id="getTask",
        summary="One task",
        responses=problem_responses(400, 401, 404, 503),
    )
    async def get_task(self, task_id: FromPath[UUID], tasks: NamedDependency[TaskService]) -> TaskResponse:
        return TaskResponse.of(await tasks.get(task_id))

    @post(
        "/{task_id:uuid}/take",
        operation_id="takeTask",
        summary="Take an open task (not your own)",
        status_code=200,
        responses=problem_responses(400, 401, 403, 404, 409, 503),
    )
    async def take(
        self, request: Request[User, Token, Any], task_id: FromPath[UUID], tasks: NamedDependency[TaskService]
    ) -> TaskResponse:
        """One taker: of simultaneous takes exactly one wins; the others get 409 `invalid_transition`. 403
        `own_task`; 409 `deadline_passed`."""
        return TaskResponse.of(await tasks.take(Principal.of(request.user), task_id))

    @post(
        "/{task_id:uuid}/complete",
        operation_id="completeTask",
        summary="Confirm a taken task (its poster); the held reward goes to the taker",
        status_code=200,
        responses=problem_responses(400, 401, 403, 404, 409, 422, 503),
    )
    async def complete(
        self,
        request: Request[User, Token, Any],
        task_id: FromPath[UUID],
        tasks: NamedDependency[TaskService],
        data: JSONBody[CompleteTaskRequest | None] = None,
    ) -> TaskResponse:
        """The taker is paid once, also under simultaneous completes (the others get 409 `invalid_transition`).
        403 `not_poster`."""
        rating = None if data is None else data.rating
        return TaskResponse.of(await tasks.complete(Principal.of(request.user), task_id, rating))

    @post(
        "/{task_id:uuid}/cancel",
        operation_id="cancelTask",
        summary="Cancel a task: its poster while open or once the taker consented, an admin while open or taken",
        status_code=200,
        responses=problem_responses(400, 401, 403, 404, 409, 503),
    )
    async def cancel(
        self, request: Request[User, Token, Any], task_id: FromPath[UUID], tasks: NamedDependency[TaskService]
    ) -> TaskResponse:
        """The held points and a coupon used come back to the poster; a taker is notified. 403 `not_poster`, 403
        `taker_consent_required` (a taken task its taker has not consented to cancel), 409 `invalid_transition`."""
        return TaskResponse.of(await tasks.cancel(Principal.of(request.user), task_id))

    @post(
        "/{task_id:uuid}/cancel/consent",
        operation_id="consentToTaskCancellation",
        summary="Let the poster cancel the task you took",
        status_code=200,
        responses=problem_responses(400, 401, 403, 404, 409, 503),
    )
    async def consent_to_cancel(
        self, request: Request[User, Token, Any], task_id: FromPath[UUID], tasks: NamedDependency[TaskService]
    ) -> TaskResponse:
        """Only the taker; the poster is notified and may then cancel (the held points go back to the poster).
        Consenting again changes nothing. 403 `not_taker`, 409 `invalid_transition` (not taken)."""
        return TaskResponse.of(await tasks.consent_to_cancel(Principal.of(request.user), task_id))
