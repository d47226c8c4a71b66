"""Access tokens: short-lived HS256 JWTs that Litestar's JWT middleware verifies."""

from __future__ import annotations

import uuid
from datetime import datetime

import jwt

from app.domain.users.model import User

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud", "sub")


class JwtAccessTokenIssuer:
    def __init__(self, secret: str, issuer: str, audience: str, ttl_seconds: int) -> None:
        self._secret = secret
        self._issuer = issuer
        self._audience = audience
        self._ttl_seconds = ttl_seconds

    def issue(self, user: User, now: datetime) -> tuple[str, int]:
        issued_at = int(now.timestamp())
        claims = {
            "sub": str(user.id),
            "iat": issued_at,
            "exp": issued_at + self._ttl_seconds,
            "iss": self._issuer,
            "aud": self._audience,
            "jti": uuid.uuid4().hex,
            "role": user.role.value,
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM), self._ttl_seconds

    def verify(self, token: str) -> uuid.UUID | None:
        """The user id of a valid access token (signature, expiry, issuer, audience, claims), else ``None``.

        The HTTP API verifies tokens in Litestar's JWT middleware; this is for the
        WebSocket, whose token arrives in its first message.
        """
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                issuer=self._issuer,
                audience=self._audience,
                options={"require": list(REQUIRED_CLAIMS)},
            )
            return uuid.UUID(str(claims["sub"]))
        except (jwt.PyJWTError, ValueError):
            return None
