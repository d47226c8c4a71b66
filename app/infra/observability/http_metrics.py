"""HTTP responses the Prometheus middleware does not tell apart: 401s by route, registration outcomes.

Both are counted from the responses themselves (a ``before_send`` hook sees every
response, also the 401s the JWT middleware answers before the route's handler, which
litestar's Prometheus middleware never sees), so no controller or use case knows
about metrics.

* ``taskmarket_http_unauthorized_responses_total{route}``: ``route`` is the route
  template (``/api/tasks/{task_id}``), never the requested path; a request that
  matched no route is ``unmatched``.
* ``taskmarket_registration_attempts_total`` and
  ``taskmarket_registration_failures_total{reason}``: ``reason`` is the ``code`` of
  the problem the registration answered with (``validation_failed`` for every broken
  field rule, ``invalid_request``, ``email_taken``, ...), except that a refused
  invitation code is reported by its own code (``invitation_not_found``, ...), which
  the ``validation_failed`` problem lists as its error.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar.enums import ScopeType
from litestar.types import Message, Scope
from prometheus_client import Counter

UNMATCHED_ROUTE = "unmatched"
OTHER_REASON = "other"
# What the registration endpoint answers when it refuses; their series exist from the start (at 0).
REGISTRATION_FAILURE_REASONS = (
    "validation_failed",
    "invalid_request",
    "email_taken",
    "username_taken",
    "invitation_not_found",
    "invitation_revoked",
    "invitation_expired",
    "invitation_used_up",
    "invalid_invitation_code",
    "database_unavailable",
    "internal_error",
)

UNAUTHORIZED = Counter("taskmarket_http_unauthorized_responses", "401 responses, by route template", ["route"])
REGISTRATION_ATTEMPTS = Counter("taskmarket_registration_attempts", "Registration requests answered")
REGISTRATION_FAILURES = Counter(
    "taskmarket_registration_failures", "Registrations refused, by the error code answered", ["reason"]
)
for _reason in REGISTRATION_FAILURE_REASONS:
    REGISTRATION_FAILURES.labels(_reason)

_INVITATION_FIELD = "invitation_code"
_MAX_CODE_LENGTH = 48
_MAX_BODY_BYTES = 64 * 1024
_FAILED_REGISTRATION = "taskmarket.failed_registration"


def _is_code(value: object) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= _MAX_CODE_LENGTH
        and value.isascii()
        and value.replace("_", "").isalnum()
    )


def failure_reason(body: bytes, status: int) -> str:
    """The stable code of a refused registration, read from its problem-details body."""
    try:
        problem = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return f"http_{status}"
    if not isinstance(problem, dict):
        return f"http_{status}"
    code = problem.get("code")
    errors = problem.get("errors")
    if code == "validation_failed" and isinstance(errors, list):
        for error in errors:
            if isinstance(error, dict) and error.get("field") == _INVITATION_FIELD:
                code = error.get("code")
                break
    if code is None:
        return f"http_{status}"
    return code if _is_code(code) else OTHER_REASON


class HttpResponseMetrics:
    """A ``before_send`` hook counting 401s by route and the registration endpoint's outcomes."""

    def __init__(self, registration_route: str) -> None:
        self._registration_route = registration_route

    async def before_send(self, message: Message, scope: Scope) -> None:
        self.on_send(message, scope)

    def on_send(self, message: Message, scope: Scope) -> None:
        """The hook's work, callable from another ``before_send`` (one coroutine per message, not one each)."""
        if message["type"] == "http.response.start":
            if scope["type"] == ScopeType.HTTP:
                self._response_started(message["status"], scope)
        elif message["type"] == "http.response.body":
            self._body(message, scope)

    def _response_started(self, status: int, scope: Scope) -> None:
        route: str | None = scope.get("path_template")
        if status == 401:
            UNAUTHORIZED.labels(route or UNMATCHED_ROUTE).inc()
        if route == self._registration_route and scope.get("method") == "POST":
            REGISTRATION_ATTEMPTS.inc()
            if status >= 400:
                # the reason is in the body, which comes next
                _state(scope)[_FAILED_REGISTRATION] = (status, bytearray())

    def _body(self, message: Message, scope: Scope) -> None:
        state = scope.get("state")
        pending = state.get(_FAILED_REGISTRATION) if state else None
        if pending is None:
            return
        status, body = pending
        if len(body) < _MAX_BODY_BYTES:
            body += message.get("body", b"")
        if not message.get("more_body", False):
            del state[_FAILED_REGISTRATION]
            REGISTRATION_FAILURES.labels(failure_reason(bytes(body), status)).inc()


def _state(scope: Scope) -> dict[str, Any]:
    return scope.setdefault("state", {})
