"""The one place where errors become HTTP responses (RFC 9457 problem details).

No body ever carries a stack trace, SQL or an internal name: unexpected errors
are logged with their traceback and answered with a generic 500.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.types import ExceptionHandlersMap

from app.api.schemas import ErrorItem, ProblemDetail
from app.domain.shared.errors import DomainError, ErrorKind, RateLimited

logger = logging.getLogger("app.errors")

PROBLEM_MEDIA_TYPE = "application/problem+json"
_FIELD_IN_MESSAGE = re.compile(r"field `([^`]+)`")

_KIND_STATUS = {
    ErrorKind.INVALID: 422,
    ErrorKind.UNAUTHENTICATED: 401,
    ErrorKind.FORBIDDEN: 403,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.CONFLICT: 409,
    ErrorKind.RATE_LIMITED: 429,
}

_STATUS_CODES = {
    400: "invalid_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


def problem(
    status: int,
    code: str,
    detail: str | None = None,
    errors: list[ErrorItem] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[ProblemDetail]:
    body = ProblemDetail(title=HTTPStatus(status).phrase, status=status, code=code, detail=detail, errors=errors or [])
    return Response(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def domain_error_handler(_request: Request[Any, Any, Any], exc: DomainError) -> Response[ProblemDetail]:
    status = _KIND_STATUS[exc.kind]
    errors = [ErrorItem(code=i.code, message=i.message, field=i.field) for i in exc.issues]
    headers = {"Retry-After": str(exc.retry_after_seconds)} if isinstance(exc, RateLimited) else None
    return problem(status, exc.code, exc.message, errors, headers)


def validation_error_handler(_request: Request[Any, Any, Any], exc: ValidationException) -> Response[ProblemDetail]:
    errors: list[ErrorItem] = []
    if isinstance(exc.extra, list):
        for item in exc.extra:
            if isinstance(item, dict):
                message = str(item.get("message", "Invalid value"))
                field = item.get("key")
                # A missing or unknown body field is reported against the whole body ("data");
                # msgspec names the field in the message, so name it in ``field`` too.
                named = _FIELD_IN_MESSAGE.search(message)
                if field in (None, "data") and named:
                    field = named.group(1)
                errors.append(
                    ErrorItem(code="invalid_field", message=message, field=str(field) if field is not None else None)
                )
    detail = exc.detail if errors else "The request body is not valid JSON of the expected shape."
    return problem(400, "invalid_request", detail, errors)


def http_error_handler(_request: Request[Any, Any, Any], exc: HTTPException) -> Response[ProblemDetail]:
    status = exc.status_code
    if status >= 500:
        # Litestar raises 5xx HTTPExceptions only for real faults: keep the traceback, hide the detail.
        logger.error("server error", exc_info=exc)
        return problem(status, _STATUS_CODES.get(status, "internal_error"), "An unexpected error occurred.")
    code = "unauthenticated" if isinstance(exc, NotAuthorizedException) else _STATUS_CODES.get(status, "error")
    detail = exc.detail if status != 401 else "Authentication is required, or the token is invalid or expired."
    return problem(status, code, detail, headers=exc.headers)


def unexpected_error_handler(_request: Request[Any, Any, Any], exc: Exception) -> Response[ProblemDetail]:
    logger.error("unhandled error", exc_info=exc)
    return problem(500, "internal_error", "An unexpected error occurred.")


def database_error_handler(
    is_unavailable: Callable[[BaseException], bool],
) -> Callable[[Request[Any, Any, Any], Exception], Response[ProblemDetail]]:
    """A handler for database errors: 503 while the database is unreachable, 500 for anything else."""

    def handle(request: Request[Any, Any, Any], exc: Exception) -> Response[ProblemDetail]:
        if is_unavailable(exc):
            logger.warning("database unavailable", extra={"error": type(exc).__name__})
            return problem(
                503, "database_unavailable", "The database is unavailable; retry shortly.", headers={"Retry-After": "1"}
            )
        return unexpected_error_handler(request, exc)

    return handle


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    DomainError: domain_error_handler,
    ValidationException: validation_error_handler,
    HTTPException: http_error_handler,
    Exception: unexpected_error_handler,
}


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI documentation of the error statuses an operation can return (500 is always possible)."""
    return {
        status: ResponseSpec(
            data_container=ProblemDetail,
            description=HTTPStatus(status).phrase,
            media_type=PROBLEM_MEDIA_TYPE,
            generate_examples=False,
        )
        for status in sorted({*statuses, 500})
    }


__all__ = ["EXCEPTION_HANDLERS", "database_error_handler", "problem", "problem_responses"]
