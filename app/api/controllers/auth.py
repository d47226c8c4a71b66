from __future__ import annotations

from typing import Any

from litestar import Controller, Request, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from app.api.errors import problem_responses
from app.api.schemas import LoginRequest, RefreshRequest, TokenResponse
from app.api.security import PUBLIC, PUBLIC_OPT
from app.domain.users.service import AuthService


class AuthController(Controller):
    path = "/api/secure-auth"
    tags = ["auth"]
    security = PUBLIC
    opt = PUBLIC_OPT

    @post(
        "/login",
        operation_id="login",
        summary="Log in with email and password",
        status_code=200,
        responses=problem_responses(400, 401, 429, 503),
    )
    async def login(
        self, request: Request[Any, Any, Any], data: JSONBody[LoginRequest], auth: NamedDependency[AuthService]
    ) -> TokenResponse:
        """Unknown email and wrong password give the same 401. Rate-limited per account and per client address."""
        client_address = request.client.host if request.client else "unknown"
        pair = await auth.login(email=data.email, password=data.password, client_address=client_address)
        return TokenResponse.of(pair)

    @post(
        "/refresh",
        operation_id="refreshToken",
        summary="Rotate a refresh token",
        status_code=200,
        responses=problem_responses(400, 401, 503),
    )
    async def refresh(self, data: JSONBody[RefreshRequest], auth: NamedDependency[AuthService]) -> TokenResponse:
        """The presented token stops working. Presenting an already-rotated token revokes its whole family."""
        return TokenResponse.of(await auth.refresh(data.refresh_token))

    @post(
        "/refresh-token",
        operation_id="refreshTokenLegacy",
        summary="Rotate a refresh token (alias of refreshToken for old clients)",
        status_code=200,
        deprecated=True,
        responses=problem_responses(400, 401, 503),
    )
    async def refresh_legacy(self, data: JSONBody[RefreshRequest], auth: NamedDependency[AuthService]) -> TokenResponse:
        return TokenResponse.of(await auth.refresh(data.refresh_token))

    @post(
        "/logout",
        operation_id="logout",
        summary="Log out: revoke the refresh token's family",
        status_code=204,
        responses=problem_responses(400, 503),
    )
    async def logout(self, data: JSONBody[RefreshRequest], auth: NamedDependency[AuthService]) -> None:
        await auth.logout(data.refresh_token)
