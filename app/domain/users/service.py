"""Use cases of the users context: accounts, profiles, roles and authentication."""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from uuid import UUID

from app.domain.shared.errors import FieldIssue, Forbidden, NotFound, RateLimited, Unauthenticated, ValidationFailed
from app.domain.shared.ports import Clock, RateLimiter, UnitOfWork
from app.domain.users.model import NewUser, Principal, ProfileChanges, Role, TokenPair, User
from app.domain.users.password_policy import check_password, normalize_password
from app.domain.users.ports import AccessTokenIssuer, PasswordHasher, RefreshTokenStore, UserRepository

USERNAME_PATTERN = re.compile(r"^[\w.\-]{3,32}$")
EMAIL_PATTERN = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
MAX_EMAIL_LENGTH = 254
MAX_DISPLAY_NAME_LENGTH = 64
MAX_BIO_LENGTH = 2000

# Redeems an invitation code for a just-created account inside the registration's
# transaction. Supplied by the promotions context; raises a DomainError to refuse.
InvitationRedeemer = Callable[[str, User], Awaitable[None]]


def normalize_email(email: str) -> str:
    return unicodedata.normalize("NFKC", email).strip().lower()


def normalize_username(username: str) -> str:
    return unicodedata.normalize("NFKC", username).strip()


def _email_issues(email: str) -> list[FieldIssue]:
    if len(email) > MAX_EMAIL_LENGTH or not EMAIL_PATTERN.match(email):
        return [FieldIssue(code="invalid_email", message="Email address is not valid.", field="email")]
    return []


def _username_issues(username: str) -> list[FieldIssue]:
    if not USERNAME_PATTERN.match(username):
        return [
            FieldIssue(
                code="invalid_username",
                message="Username must be 3 to 32 letters, digits, '_', '-' or '.'.",
                field="username",
            )
        ]
    return []


def _raise_if_any(issues: list[FieldIssue]) -> None:
    if issues:
        raise ValidationFailed("The request breaks one or more rules.", issues=tuple(issues))


def hash_refresh_token(token: str) -> str:
    """Refresh tokens are stored only as their SHA-256: a database leak gives no usable token."""
    return hashlib.sha256(token.encode()).hexdigest()


class UserService:
    """Accounts and profiles."""

    def __init__(
        self,
        users: UserRepository,
        hasher: PasswordHasher,
        refresh_tokens: RefreshTokenStore,
        uow: UnitOfWork,
        clock: Clock,
        invitations: InvitationRedeemer | None = None,
    ) -> None:
        self._users = users
        self._hasher = hasher
        self._refresh = refresh_tokens
        self._uow = uow
        self._clock = clock
        self._invitations = invitations

    async def register(
        self, *, email: str, username: str, password: str, invitation_code: str | None = None, role: Role = Role.USER
    ) -> User:
        """Create an account; every broken rule of every field is reported at once.

        Raises:
            ValidationFailed: a field breaks a rule (``errors`` lists them all).
            Conflict: the email or username is taken.
        """
        email = normalize_email(email)
        username = normalize_username(username)
        issues = _email_issues(email) + _username_issues(username)
        issues += check_password(password, username=username, email=email)
        if invitation_code is not None and self._invitations is None:
            issues.append(
                FieldIssue(
                    code="invalid_invitation_code", message="Invitation code is not valid.", field="invitation_code"
                )
            )
        _raise_if_any(issues)
        password_hash = await self._hasher.hash(normalize_password(password))
        user = await self._users.add(NewUser(email=email, username=username, password_hash=password_hash, role=role))
        if invitation_code is not None and self._invitations is not None:
            await self._invitations(invitation_code, user)
        await self._uow.commit()
        return user

    async def get_profile(self, user_id: UUID) -> User:
        """The caller's own full profile."""
        user = await self._users.get(user_id)
        if user is None or not user.is_active:
            raise NotFound("User not found.", code="user_not_found")
        return user

    async def get_public_profile(self, user_id: UUID) -> User:
        """Any active user's profile; the API exposes only its public fields."""
        return await self.get_profile(user_id)

    async def update_profile(self, actor: Principal, changes: ProfileChanges) -> User:
        """Change the caller's own display name, bio or username."""
        issues: list[FieldIssue] = []
        if changes.username is not None:
            changes = ProfileChanges(
                display_name=changes.display_name, bio=changes.bio, username=normalize_username(changes.username)
            )
            issues += _username_issues(changes.username or "")
        if changes.display_name is not None and len(changes.display_name) > MAX_DISPLAY_NAME_LENGTH:
            issues.append(
                FieldIssue(
                    code="too_long",
                    message=f"Display name must be at most {MAX_DISPLAY_NAME_LENGTH} characters.",
                    field="display_name",
                )
            )
        if changes.bio is not None and len(changes.bio) > MAX_BIO_LENGTH:
            issues.append(
                FieldIssue(code="too_long", message=f"Bio must be at most {MAX_BIO_LENGTH} characters.", field="bio")
            )
        _raise_if_any(issues)
        user = await self._users.update_profile(actor.id, changes)
        await self._uow.commit()
        return user

    async def change_password(self, actor: Principal, *, current_password: str, new_password: str) -> None:
        """Replace the caller's password after checking the current one; signs out every session."""
        credentials = await self._users.get_credentials(actor.id)
        if credentials is None or not await self._hasher.verify(
            credentials.password_hash, normalize_password(current_password)
        ):
            raise ValidationFailed(
                "Current password is wrong.",
                code="validation_failed",
                issues=(
                    FieldIssue(code="wrong_password", message="Current password is wrong.", field="current_password"),
                ),
            )
        user = credentials.user
        issues = check_password(new_password, username=user.username, email=user.email)
        _raise_if_any([FieldIssue(code=i.code, message=i.message, field="new_password") for i in issues])
        await self._users.set_password_hash(user.id, await self._hasher.hash(normalize_password(new_password)))
        await self._refresh.revoke_all_for_user(user.id, self._clock.now())
        await self._uow.commit()

    async def change_role(self, actor: Principal, user_id: UUID, role: Role) -> User:
        """Admins set any other user's role."""
        if not actor.has_role(Role.ADMIN):
            raise Forbidden("Only admins change roles.")
        if actor.id == user_id:
            raise Forbidden("Admins cannot change their own role.", code="cannot_change_own_role")
        user = await self._users.set_role(user_id, role)
        if user is None:
            raise NotFound("User not found.", code="user_not_found")
        await self._uow.commit()
        return user


@dataclass(frozen=True, slots=True)
class LoginLimits:
    per_account: int
    per_address: int
    window_seconds: int


class AuthService:
    """Login, refresh-token rotation with reuse detection, logout."""

    def __init__(
        self,
        users: UserRepository,
        hasher: PasswordHasher,
        access_tokens: AccessTokenIssuer,
        refresh_tokens: RefreshTokenStore,
        rate_limiter: RateLimiter,
        limits: LoginLimits,
        uow: UnitOfWork,
        clock: Clock,
    ) -> None:
        self._users = users
        self._hasher = hasher
        self._access = access_tokens
        self._refresh = refresh_tokens
        self._limiter = rate_limiter
        self._limits = limits
        self._uow = uow
        self._clock = clock

    async def _check_login_rate(self, email: str, client_address: str) -> None:
        wait_address = await self._limiter.hit(
            f"login:addr:{client_address}", self._limits.per_address, self._limits.window_seconds
        )
        wait_account = await self._limiter.hit(
            f"login:acct:{email}", self._limits.per_account, self._limits.window_seconds
        )
        wait = max(wait_address, wait_account)
        if wait > 0:
            raise RateLimited("Too many login attempts; try again later.", retry_after_seconds=wait)

    async def login(self, *, email: str, password: str, client_address: str) -> TokenPair:
        """Exchange email and password for a token pair.

        An unknown email and a wrong password take comparable time and give the
        same error, so the answer does not reveal which accounts exist.
        """
        email = normalize_email(email)
        await self._check_login_rate(email, client_address)
        normalized = normalize_password(password)
        credentials = await self._users.get_credentials_by_email(email)
        if credentials is None:
            await self._hasher.burn_verify_time(normalized)
            raise Unauthenticated("Email or password is wrong.", code="invalid_credentials")
        if not await self._hasher.verify(credentials.password_hash, normalized) or not credentials.user.is_active:
            raise Unauthenticated("Email or password is wrong.", code="invalid_credentials")
        if self._hasher.needs_rehash(credentials.password_hash):
            await self._users.set_password_hash(credentials.user.id, await self._hasher.hash(normalized))
        pair = await self._issue_pair(credentials.user, family_id=uuid.uuid4())
        await self._uow.commit()
        return pair

    async def refresh(self, refresh_token: str) -> TokenPair:
        """Rotate a refresh token. Presenting one that was already rotated revokes its whole family."""
        now = self._clock.now()
        token_hash = hash_refresh_token(refresh_token)
        record = await self._refresh.consume(token_hash, now)
        if record is None:
            known = await self._refresh.find(token_hash)
            if known is not None and known.used_at is not None and known.revoked_at is None:
                # Theft detection: a rotated token came back, so someone holds a copy.
                await self._refresh.revoke_family(known.family_id, now)
                await self._uow.commit()
                raise Unauthenticated("Refresh token was already used; its session is revoked.", code="token_reused")
            raise Unauthenticated("Refresh token is invalid or expired.", code="invalid_refresh_token")
        user = await self._users.get(record.user_id)
        if user is None or not user.is_active:
            await self._refresh.revoke_family(record.family_id, now)
            await self._uow.commit()
            raise Unauthenticated("Refresh token is invalid or expired.", code="invalid_refresh_token")
        pair = await self._issue_pair(user, family_id=record.family_id)
        await self._uow.commit()
        return pair

    async def logout(self, refresh_token: str) -> None:
        """Revoke the refresh token's family; idempotent, and silent about unknown tokens."""
        known = await self._refresh.find(hash_refresh_token(refresh_token))
        if known is not None and known.revoked_at is None:
            await self._refresh.revoke_family(known.family_id, self._clock.now())
            await self._uow.commit()

    async def _issue_pair(self, user: User, family_id: UUID) -> TokenPair:
        now = self._clock.now()
        refresh_token = secrets.token_urlsafe(32)
        await self._refresh.create(user.id, family_id, hash_refresh_token(refresh_token), now)
        access_token, expires_in = self._access.issue(user, now)
        return TokenPair(access_token=access_token, refresh_token=refresh_token, expires_in=expires_in)
