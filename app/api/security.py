"""Authentication (Litestar's JWT middleware) and role guards that every controller reuses."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.spec import Components, SecurityScheme
from litestar.security.jwt import JWTAuth, Token
from litestar.types import Guard

from app.domain.users.model import Role, User

SECURITY_SCHEME = "BearerToken"
# Marks an operation as public in the OpenAPI document (overrides the global bearer requirement).
PUBLIC: list[dict[str, list[str]]] = [{}]
PUBLIC_OPT: dict[str, Any] = {"exclude_from_auth": True}

UserLoader = Callable[[uuid.UUID], Awaitable[User | None]]


class BearerJWTAuth(JWTAuth[User, Token]):
    """Litestar's JWT auth, with a standard HTTP bearer scheme in the OpenAPI document.

    Litestar also writes ``name`` into the scheme, which OpenAPI allows only for
    ``apiKey`` schemes; strict validators and client generators reject it.
    """

    @property
    def openapi_components(self) -> Components:
        return Components(
            security_schemes={
                self.openapi_security_scheme_name: SecurityScheme(
                    type="http", scheme="Bearer", bearer_format="JWT", description=self.description
                )
            }
        )


def build_jwt_auth(
    *, secret: str, issuer: str, audience: str, algorithm: str, required_claims: tuple[str, ...], load_user: UserLoader
) -> BearerJWTAuth:
    async def retrieve_user(token: Token, _connection: ASGIConnection[Any, Any, Any, Any]) -> User | None:
        try:
            user_id = uuid.UUID(token.sub)
        except ValueError:
            return None
        return await load_user(user_id)

    return BearerJWTAuth(
        token_secret=secret,
        algorithm=algorithm,
        retrieve_user_handler=retrieve_user,
        accepted_issuers=[issuer],
        accepted_audiences=[audience],
        require_claims=list(required_claims),
        openapi_security_scheme_name=SECURITY_SCHEME,
        description="Access token from `login` or `refreshToken`, sent as `Authorization: Bearer <token>`.",
        exclude_opt_key="exclude_from_auth",
        scopes={ScopeType.HTTP},
    )


def requires_role(*roles: Role) -> Guard:
    """A guard that lets through only callers with one of ``roles`` (403 otherwise)."""

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler) -> None:
        user = connection.user
        if not isinstance(user, User) or user.role not in roles:
            raise PermissionDeniedException("This operation needs the role: " + ", ".join(r.value for r in roles))

    return guard
