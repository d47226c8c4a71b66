"""Structured logging: a request id on every line, JSON in production, quiet expected 401s.

The request log never contains bodies, query strings or headers, so no password
or token can reach it.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

# 401s that clients produce in normal operation (an expired token probing the
# profile, a refresh with a stale token): logged at debug outside development so
# they cannot flood the log. Every other 401 stays visible.
EXPECTED_401_PATHS = frozenset({"/api/users/profile/me", "/api/secure-auth/refresh", "/api/secure-auth/refresh-token"})

_STANDARD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "request_id", "color_message"}  # uvicorn adds an ANSI-coloured copy of its message
)
_HANDLER_NAME = "taskmarket"
_REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {key: value for key, value in vars(record).items() if key not in _STANDARD_ATTRIBUTES}


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            payload["request_id"] = request_id
        payload.update(_extras(record))
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return msgspec.json.encode(payload, enc_hook=str).decode()


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        timestamp = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S.%f")[:-3]
        request_id = getattr(record, "request_id", None)
        line = f"{timestamp} {record.levelname:<7} {record.name}: {record.getMessage()}"
        extras = _extras(record)
        if extras:
            line += " " + " ".join(f"{key}={value}" for key, value in extras.items())
        if request_id:
            line += f" request_id={request_id}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(level: str, json_output: bool) -> None:
    """Route every logger (ours, uvicorn's, the libraries') through one formatted handler."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_output else TextFormatter())
    handler.addFilter(RequestIdFilter())
    handler.set_name(_HANDLER_NAME)
    root = logging.getLogger()
    # Replace only our own handler (an app built twice in one process must not log twice);
    # handlers others installed, such as a test's log capture, stay.
    root.handlers[:] = [h for h in root.handlers if h.get_name() != _HANDLER_NAME] + [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers[:] = []
        uvicorn_logger.propagate = True
    # Our request log replaces uvicorn's access log (it knows the route template and request id).
    logging.getLogger("uvicorn.access").disabled = True


class RequestLogging:
    """A request id on every request and one log line per response.

    Two hooks, because Litestar answers some requests outside the route middleware:
    ``middleware`` (outermost of the route middleware) sets the request id for every
    log line written while the request runs; ``before_send`` sees every response,
    including 404s of unknown paths and errors raised by the JWT middleware, adds the
    ``X-Request-ID`` header and writes the request's log line.
    """

    def __init__(self, *, enabled: bool, quiet_expected_401: bool) -> None:
        self._enabled = enabled
        self._quiet_expected_401 = quiet_expected_401
        self._logger = logging.getLogger("app.request")

    def middleware(self, app: ASGIApp) -> ASGIApp:
        async def set_request_id(scope: Scope, receive: Receive, send: Send) -> None:
            token = request_id_var.set(_request_id(scope))
            try:
                await app(scope, receive, send)
            finally:
                request_id_var.reset(token)

        return set_request_id

    async def before_send(self, message: Message, scope: Scope) -> None:
        self.on_send(message, scope)

    def on_send(self, message: Message, scope: Scope) -> None:
        """The hook's work, callable from another ``before_send`` (one coroutine per message, not one each)."""
        if message["type"] != "http.response.start" or scope["type"] != ScopeType.HTTP:
            return
        request_id = _request_id(scope)
        message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
        if self._enabled:
            self._log(scope, message["status"], request_id)

    def _log(self, scope: Scope, status: int, request_id: str) -> None:
        path = scope["path"]
        if status >= 500:
            level = logging.ERROR
        elif status == 401:
            level = logging.DEBUG if self._quiet_expected_401 and path in EXPECTED_401_PATHS else logging.WARNING
        else:
            level = logging.INFO
        if not self._logger.isEnabledFor(level):
            return
        started = _state(scope).get(_STARTED_KEY)
        token = request_id_var.set(request_id)
        try:
            self._logger.log(
                level,
                "request",
                extra={
                    "method": scope.get("method"),
                    "path": path,
                    "route": scope.get("path_template"),
                    "status": status,
                    "duration_ms": None if started is None else round((time.perf_counter() - started) * 1000, 2),
                },
            )
        finally:
            request_id_var.reset(token)


_REQUEST_ID_KEY = "taskmarket.request_id"
_STARTED_KEY = "taskmarket.started"


def _state(scope: Scope) -> dict[str, Any]:
    return scope.setdefault("state", {})


def _request_id(scope: Scope) -> str:
    """The request's id: assigned once, on first use, from a well-formed ``X-Request-ID`` or anew."""
    state = _state(scope)
    request_id = state.get(_REQUEST_ID_KEY)
    if request_id is None:
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID_PATTERN.match(incoming) else uuid.uuid4().hex
        state[_REQUEST_ID_KEY] = request_id
        state.setdefault(_STARTED_KEY, time.perf_counter())
    return str(request_id)
