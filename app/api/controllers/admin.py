from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Controller, Request, patch
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.security.jwt import Token

from app.api.errors import problem_responses
from app.api.schemas import ChangeRoleRequest, MyProfile
from app.api.security import requires_role
from app.domain.users.model import Principal, Role, User
from app.domain.users.service import UserService


class AdminUsersController(Controller):
    path = "/api/admin/users"
    tags = ["admin"]
    guards = [requires_role(Role.ADMIN)]

    @patch(
        "/{user_id:uuid}/role",
        operation_id="changeUserRole",
        summary="Set a user's role (admins only)",
        responses=problem_responses(400, 401, 403, 404, 503),
    )
    async def change_role(
        self,
        request: Request[User, Token, Any],
        user_id: FromPath[UUID],
        data: JSONBody[ChangeRoleRequest],
        users: NamedDependency[UserService],
    ) -> MyProfile:
        return MyProfile.of(await users.change_role(Principal.of(request.user), user_id, data.role))
