from __future__ import annotations

from uuid import UUID

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromPath

from app.api.errors import problem_responses
from app.api.stats_schemas import UserStatsResponse
from app.domain.stats.service import StatsService


class UserStatsController(Controller):
    path = "/api/users"
    tags = ["users"]

    @get(
        "/{user_id:uuid}/stats",
        operation_id="getUserStats",
        summary="A user's public statistics",
        responses=problem_responses(400, 401, 404, 503),
    )
    async def get_user_stats(self, user_id: FromPath[UUID], stats: NamedDependency[StatsService]) -> UserStatsResponse:
        """Any signed-in user reads any active user's figures. 404 `user_not_found`."""
        return UserStatsResponse.of(await stats.get(user_id))
