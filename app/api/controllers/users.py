from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Controller, Request, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.security.jwt import Token

from app.api.errors import problem_responses
from app.api.schemas import (
    ChangePasswordRequest,
    MyProfile,
    PublicProfile,
    RegisteredUser,
    RegisterRequest,
    UpdateProfileRequest,
)
from app.api.security import PUBLIC, PUBLIC_OPT
from app.domain.users.model import Principal, ProfileChanges, User
from app.domain.users.service import UserService


class UsersController(Controller):
    path = "/api/users"
    tags = ["users"]

    @post(
        "/register",
        operation_id="registerUser",
        summary="Create an account",
        status_code=201,
        security=PUBLIC,
        opt=PUBLIC_OPT,
        responses=problem_responses(400, 409, 422, 503),
    )
    async def register(self, data: JSONBody[RegisterRequest], users: NamedDependency[UserService]) -> RegisteredUser:
        """Register with email, username and password; a rejected password lists every broken rule."""
        user = await users.register(
            email=data.email, username=data.username, password=data.password, invitation_code=data.invitation_code
        )
        return RegisteredUser.of(user)

    @get(
        "/profile/me",
        operation_id="getMyProfile",
        summary="Read my profile",
        responses=problem_responses(401, 503),
    )
    async def get_my_profile(self, request: Request[User, Token, Any]) -> MyProfile:
        # The authentication middleware already read the caller's row: no second query.
        return MyProfile.of(request.user)

    @patch(
        "/profile/me",
        operation_id="updateMyProfile",
        summary="Change my profile",
        responses=problem_responses(400, 401, 409, 422, 503),
    )
    async def update_my_profile(
        self,
        request: Request[User, Token, Any],
        data: JSONBody[UpdateProfileRequest],
        users: NamedDependency[UserService],
    ) -> MyProfile:
        changes = ProfileChanges(display_name=data.display_name, bio=data.bio, username=data.username)
        return MyProfile.of(await users.update_profile(Principal.of(request.user), changes))

    @post(
        "/profile/me/password",
        operation_id="changeMyPassword",
        summary="Change my password (signs out every session)",
        status_code=204,
        responses=problem_responses(400, 401, 422, 503),
    )
    async def change_my_password(
        self,
        request: Request[User, Token, Any],
        data: JSONBody[ChangePasswordRequest],
        users: NamedDependency[UserService],
    ) -> None:
        await users.change_password(
            Principal.of(request.user), current_password=data.current_password, new_password=data.new_password
        )

    @get(
        "/{user_id:uuid}",
        operation_id="getUser",
        summary="Read a user's public profile",
        security=PUBLIC,
        opt=PUBLIC_OPT,
        responses=problem_responses(400, 404, 503),
    )
    async def get_user(self, user_id: FromPath[UUID], users: NamedDependency[UserService]) -> PublicProfile:
        return PublicProfile.of(await users.get_public_profile(user_id))
