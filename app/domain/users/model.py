"""Users, roles and the tokens that authenticate them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID


class Role(StrEnum):
    USER = "user"
    EXPERT = "expert"
    AGENT = "agent"  # customer service
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class User:
    id: UUID
    email: str
    username: str
    role: Role
    display_name: str | None
    bio: str | None
    is_active: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is making a request: enough to authorise, loaded once per request."""

    id: UUID
    username: str
    role: Role

    def has_role(self, *roles: Role) -> bool:
        return self.role in roles

    @classmethod
    def of(cls, user: User) -> Principal:
        return cls(id=user.id, username=user.username, role=user.role)


@dataclass(frozen=True, slots=True)
class Credentials:
    user: User
    password_hash: str


@dataclass(frozen=True, slots=True)
class NewUser:
    email: str
    username: str
    password_hash: str
    role: Role = Role.USER


@dataclass(frozen=True, slots=True)
class ProfileChanges:
    """Fields a user may change on their own profile; ``None`` leaves a field as it is."""

    display_name: str | None = None
    bio: str | None = None
    username: str | None = None


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type, not a secret


@dataclass(frozen=True, slots=True)
class RefreshTokenRecord:
    user_id: UUID
    family_id: UUID
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None
