"""Domain errors: each has a stable machine-readable ``code`` and a kind.

The API maps the kind to an HTTP status in one place; the domain never speaks
HTTP. Messages are safe to show to the client: no internals, no other user's data.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ErrorKind(StrEnum):
    INVALID = "invalid"  # well-formed request that breaks a business rule (422)
    UNAUTHENTICATED = "unauthenticated"  # 401
    FORBIDDEN = "forbidden"  # 403
    NOT_FOUND = "not_found"  # 404
    CONFLICT = "conflict"  # 409
    RATE_LIMITED = "rate_limited"  # 429


@dataclass(frozen=True, slots=True)
class FieldIssue:
    """One broken rule: ``code`` is stable, ``message`` is for people, ``field`` names the input."""

    code: str
    message: str
    field: str | None = None


class DomainError(Exception):
    """Base of every business error."""

    kind: ErrorKind = ErrorKind.INVALID
    code: str = "invalid"

    def __init__(self, message: str, *, code: str | None = None, issues: tuple[FieldIssue, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.issues = issues


class ValidationFailed(DomainError):
    kind = ErrorKind.INVALID
    code = "validation_failed"


class Unauthenticated(DomainError):
    kind = ErrorKind.UNAUTHENTICATED
    code = "unauthenticated"


class Forbidden(DomainError):
    kind = ErrorKind.FORBIDDEN
    code = "forbidden"


class NotFound(DomainError):
    kind = ErrorKind.NOT_FOUND
    code = "not_found"


class Conflict(DomainError):
    kind = ErrorKind.CONFLICT
    code = "conflict"


class RateLimited(DomainError):
    kind = ErrorKind.RATE_LIMITED
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = max(1, retry_after_seconds)
