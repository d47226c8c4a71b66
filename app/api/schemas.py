"""Request and response bodies. These shapes are a contract: the frontend's client is generated from them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from app.domain.invitations.model import InvitationStatus, InvitationView
from app.domain.points.model import PointsSummary, PointTransaction, TransactionKind
from app.domain.users.model import Role, TokenPair, User

# Generous bounds on raw input: the domain applies the real rules and reports every
# broken one; these only stop absurd payloads before any work is done.
Email = Annotated[str, msgspec.Meta(max_length=320, examples=["ada@example.com"])]
Username = Annotated[str, msgspec.Meta(max_length=64, examples=["ada"])]
Password = Annotated[str, msgspec.Meta(max_length=1024, examples=["Pässwörd€2024"])]
OpaqueToken = Annotated[str, msgspec.Meta(min_length=1, max_length=512)]


class ErrorItem(msgspec.Struct, kw_only=True):
    code: str
    message: str
    field: str | None = None


class ProblemDetail(msgspec.Struct, kw_only=True, omit_defaults=True):
    """RFC 9457 problem details with a stable machine-readable ``code``."""

    type: str = "about:blank"
    title: str
    status: int
    code: str
    detail: str | None = None
    errors: list[ErrorItem] = msgspec.field(default_factory=list)


class RegisterRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    email: Email
    username: Username
    password: Password
    invitation_code: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None


class LoginRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    email: Email
    password: Password


class RefreshRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    refresh_token: OpaqueToken


class ChangePasswordRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    current_password: Password
    new_password: Password


class UpdateProfileRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    username: Username | None = None
    display_name: Annotated[str, msgspec.Meta(max_length=256)] | None = None
    bio: Annotated[str, msgspec.Meta(max_length=8192)] | None = None


class ChangeRoleRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    role: Role


class RegisteredUser(msgspec.Struct, kw_only=True):
    id: UUID
    email: str
    username: str
    role: Role
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> RegisteredUser:
        return cls(id=user.id, email=user.email, username=user.username, role=user.role, created_at=user.created_at)


class MyProfile(msgspec.Struct, kw_only=True):
    id: UUID
    email: str
    username: str
    role: Role
    display_name: str | None
    bio: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, user: User) -> MyProfile:
        return cls(
            id=user.id,
            email=user.email,
            username=user.username,
            role=user.role,
            display_name=user.display_name,
            bio=user.bio,
            created_at=user.created_at,
            updated_at=user.updated_at,
        )


class PublicProfile(msgspec.Struct, kw_only=True):
    """What anyone may see of a user: no email."""

    id: UUID
    username: str
    role: Role
    display_name: str | None
    bio: str | None
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> PublicProfile:
        return cls(
            id=user.id,
            username=user.username,
            role=user.role,
            display_name=user.display_name,
            bio=user.bio,
            created_at=user.created_at,
        )


class TokenResponse(msgspec.Struct, kw_only=True):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"]
    expires_in: int

    @classmethod
    def of(cls, pair: TokenPair) -> TokenResponse:
        return cls(
            access_token=pair.access_token,
            refresh_token=pair.refresh_token,
            token_type="bearer",  # noqa: S106 - the OAuth token type, not a secret
            expires_in=pair.expires_in,
        )


class ComponentStatus(msgspec.Struct, kw_only=True, omit_defaults=True):
    status: Literal["up", "degraded", "down"]
    detail: str | None = None
    latency_ms: float | None = None


class LivenessStatus(msgspec.Struct, kw_only=True):
    status: Literal["ok"]


class ReadinessStatus(msgspec.Struct, kw_only=True):
    status: Literal["ready", "not_ready"]
    components: dict[str, ComponentStatus]


class PointsSummaryResponse(msgspec.Struct, kw_only=True):
    balance: int
    expiring_soon: int
    expiring_until: datetime

    @classmethod
    def of(cls, summary: PointsSummary) -> PointsSummaryResponse:
        return cls(balance=summary.balance, expiring_soon=summary.expiring_soon, expiring_until=summary.expiring_until)


class PointTransactionResponse(msgspec.Struct, kw_only=True):
    id: UUID
    user_id: UUID
    kind: TransactionKind
    amount: int
    reason: str | None
    reference: str | None
    created_at: datetime

    @classmethod
    def of(cls, transaction: PointTransaction) -> PointTransactionResponse:
        return cls(
            id=transaction.id,
            user_id=transaction.user_id,
            kind=transaction.kind,
            amount=transaction.amount,
            reason=transaction.reason,
            reference=transaction.reference,
            created_at=transaction.created_at,
        )


class PointTransactionPage(msgspec.Struct, kw_only=True):
    items: list[PointTransactionResponse]
    total: int
    limit: int
    offset: int


class GrantPointsRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    user_id: UUID
    amount: Annotated[int, msgspec.Meta(ge=1, le=1_000_000_000)]
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    idempotency_key: Annotated[str, msgspec.Meta(min_length=1, max_length=150)]
    expires_in_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] | None = None


class CreateInvitationRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    max_uses: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 1
    expires_at: datetime | None = None


class InvitationResponse(msgspec.Struct, kw_only=True):
    id: UUID
    code: str
    max_uses: int
    use_count: int
    expires_at: datetime
    status: InvitationStatus
    created_at: datetime

    @classmethod
    def of(cls, view: InvitationView) -> InvitationResponse:
        code = view.invitation
        return cls(
            id=code.id,
            code=code.code,
            max_uses=code.max_uses,
            use_count=code.use_count,
            expires_at=code.expires_at,
            status=view.status,
            created_at=code.created_at,
        )


class InvitationPage(msgspec.Struct, kw_only=True):
    items: list[InvitationResponse]
    total: int
    limit: int
    offset: int
