"""What the users context needs from the outside world."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol
from uuid import UUID

from app.domain.users.model import Credentials, NewUser, ProfileChanges, RefreshTokenRecord, Role, User


class UserRepository(Protocol):
    async def add(self, new_user: NewUser) -> User:
        """Insert a user; raises ``Conflict`` (code ``email_taken``/``username_taken``) on a duplicate."""
        ...

    async def get(self, user_id: UUID) -> User | None: ...

    async def get_credentials(self, user_id: UUID) -> Credentials | None: ...

    async def get_credentials_by_email(self, email: str) -> Credentials | None: ...

    async def update_profile(self, user_id: UUID, changes: ProfileChanges) -> User:
        """Apply the non-``None`` changes; raises ``Conflict`` on a taken username."""
        ...

    async def set_password_hash(self, user_id: UUID, password_hash: str) -> None: ...

    async def set_role(self, user_id: UUID, role: Role) -> User | None: ...


class PasswordHasher(Protocol):
    async def hash(self, password: str) -> str: ...

    async def verify(self, password_hash: str, password: str) -> bool:
        """Constant-time check; False for a wrong password or an unreadable hash."""
        ...

    def needs_rehash(self, password_hash: str) -> bool: ...

    async def burn_verify_time(self, password: str) -> None:
        """Spend as long as a real verification, for unknown accounts (timing parity)."""
        ...


class AccessTokenIssuer(Protocol):
    def issue(self, user: User, now: datetime) -> tuple[str, int]:
        """A signed access token and its lifetime in seconds."""
        ...


class RefreshTokenStore(Protocol):
    async def create(self, user_id: UUID, family_id: UUID, token_hash: str, now: datetime) -> None: ...

    async def consume(self, token_hash: str, now: datetime) -> RefreshTokenRecord | None:
        """Atomically mark an unused, unrevoked, unexpired token used and return it.

        Returns ``None`` when no token was consumed; of concurrent callers with the
        same token at most one gets a record.
        """
        ...

    async def find(self, token_hash: str) -> RefreshTokenRecord | None: ...

    async def revoke_family(self, family_id: UUID, now: datetime) -> None: ...

    async def revoke_all_for_user(self, user_id: UUID, now: datetime) -> None: ...
