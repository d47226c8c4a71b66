"""Settings, read once from the environment and validated (12-factor).

Every setting is an environment variable of the same name in upper case. The
README's settings table is checked against ``SETTINGS_DOC`` by a test, so the
two cannot drift apart.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

DEFAULT_JWT_SECRET = "development-only-secret-change-me-0123456789"  # noqa: S105 - the documented default
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./data/taskmarket.sqlite3"


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class SettingsError(ValueError):
    """A setting is missing, malformed or unsafe; the message names the variable."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    environment: Environment = Environment.DEVELOPMENT
    database_url: str = DEFAULT_DATABASE_URL
    allow_sqlite_in_production: bool = False
    database_pool_size: int = 10
    database_max_overflow: int = 10
    database_pool_timeout_seconds: float = 2.0
    database_connect_timeout_seconds: float = 1.0
    database_command_timeout_seconds: float = 30.0
    database_echo: bool = False
    redis_url: str | None = None
    redis_timeout_seconds: float = 1.0
    jwt_secret: str = DEFAULT_JWT_SECRET
    jwt_issuer: str = "taskmarket"
    jwt_audience: str = "taskmarket-api"
    access_token_ttl_seconds: int = 900
    refresh_token_ttl_days: int = 30
    argon2_time_cost: int = 3
    argon2_memory_cost_kib: int = 65536
    argon2_parallelism: int = 4
    login_rate_limit_window_seconds: int = 300
    login_rate_limit_per_account: int = 10
    login_rate_limit_per_address: int = 50
    points_lifetime_days: int = 365
    invitation_max_active_per_user: int = 5
    invitation_lifetime_days: int = 30
    invitation_reward_inviter: int = 100
    invitation_reward_invitee: int = 50
    support_max_chats_per_agent: int = 5
    support_answer_timeout_seconds: int = 300
    support_idle_timeout_seconds: int = 900
    support_inactive_days: int = 7
    support_retention_days: int = 90
    log_level: str = "INFO"
    log_json: bool | None = None
    log_requests: bool = True
    health_check_timeout_seconds: float = 1.0
    health_probe_interval_seconds: float = 15.0
    gc_thresholds: str = "2000,10,100"
    shutdown_step_timeout_seconds: float = 5.0
    loop_bridge_timeout_seconds: float = 10.0
    enable_test_routes: bool = False
    ws_auth_timeout_seconds: float = 5.0
    ws_max_connections_per_user: int = 5
    ws_ping_interval_seconds: float = 20.0
    ws_idle_timeout_seconds: float = 60.0
    ws_send_queue_size: int = 256
    ws_send_timeout_seconds: float = 10.0
    ws_max_message_bytes: int = 16384
    jobs_in_process: bool = True
    jobs_timezone: str = "UTC"
    jobs_batch_size: int = 1000
    jobs_shutdown_timeout_seconds: float = 4.0
    jobs_send_timeout_seconds: float = 5.0
    jobs_heartbeat_interval_seconds: float = 10.0
    jobs_leader_retry_seconds: float = 15.0
    jobs_metrics_port: int = 9100
    jobs_every_seconds_override: int = 0
    jobs_timeout_seconds_override: float = 0.0

    @property
    def is_production(self) -> bool:
        return self.environment is Environment.PRODUCTION

    @property
    def collector_thresholds(self) -> tuple[int, int, int] | None:
        """``GC_THRESHOLDS`` parsed (validated at load); ``None`` when empty."""
        if not self.gc_thresholds.strip():
            return None
        first, second, third = (int(part) for part in self.gc_thresholds.split(","))
        return first, second, third

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def json_logs(self) -> bool:
        return self.is_production if self.log_json is None else self.log_json


# (variable, meaning) for every setting; the README table is generated from this.
SETTINGS_DOC: dict[str, str] = {
    "environment": "`development`, `test` or `production`. Production refuses the default JWT secret, "
    "SQLite (unless allowed) and test routes, and logs JSON.",
    "database_url": "SQLAlchemy URL: `sqlite+aiosqlite:///path` or `postgresql+asyncpg://user:pass@host/db`.",
    "allow_sqlite_in_production": "Let production run on SQLite (single-process deployments only).",
    "database_pool_size": "Connections kept in the pool per process (PostgreSQL).",
    "database_max_overflow": "Extra connections allowed above the pool size (PostgreSQL).",
    "database_pool_timeout_seconds": "How long a request waits for a pooled connection before failing with 503.",
    "database_connect_timeout_seconds": "Connect timeout; while the database is down requests fail within it.",
    "database_command_timeout_seconds": "Longest a single SQL statement may run (PostgreSQL); past it the request "
    "gets 503 instead of hanging on a database that stopped answering.",
    "database_echo": "Log every SQL statement (development aid).",
    "redis_url": "Redis URL (`redis://host:6379/0`). Unset: rate limits and jobs run in-process.",
    "redis_timeout_seconds": "Socket timeout of every Redis call.",
    "jwt_secret": "HMAC key of access tokens (at least 32 characters; required in production).",
    "jwt_issuer": "`iss` claim issued and required.",
    "jwt_audience": "`aud` claim issued and required.",
    "access_token_ttl_seconds": "Lifetime of an access token.",
    "refresh_token_ttl_days": "Lifetime of a refresh token.",
    "argon2_time_cost": "Argon2id iterations; changing it rehashes passwords at their next login.",
    "argon2_memory_cost_kib": "Argon2id memory in KiB; changing it rehashes at next login.",
    "argon2_parallelism": "Argon2id lanes; changing it rehashes at next login.",
    "login_rate_limit_window_seconds": "Window of the login rate limits.",
    "login_rate_limit_per_account": "Login attempts per account (email) per window.",
    "login_rate_limit_per_address": "Login attempts per client address per window.",
    "points_lifetime_days": "How long earned or granted points stay valid (a grant may set its own).",
    "invitation_max_active_per_user": "Usable invitation codes a user may have at once.",
    "invitation_lifetime_days": "Validity of a new invitation code when the request names no `expires_at`.",
    "invitation_reward_inviter": "Points the inviter gets for each registration with their code (0: none).",
    "invitation_reward_invitee": "Points a new account gets for registering with a code (0: none).",
    "support_max_chats_per_agent": "Concurrent chats an agent is given at most (an admin may set an agent's own).",
    "support_answer_timeout_seconds": "An assigned chat whose user has waited this long for the agent goes back "
    "to the queue, at its original place.",
    "support_idle_timeout_seconds": "An assigned chat whose agent has waited this long for the user closes.",
    "support_inactive_days": "An open chat without a message for this many days closes (daily cleanup).",
    "support_retention_days": "A closed chat is deleted, with its messages, this many days after closing.",
    "log_level": "Root log level (`DEBUG`, `INFO`, `WARNING`, ...).",
    "log_json": "Force JSON logs on or off; default: JSON in production only.",
    "log_requests": "Log one line per HTTP request (method, route, status, duration; never bodies).",
    "health_check_timeout_seconds": "Timeout of each readiness probe (database, Redis).",
    "health_probe_interval_seconds": "How often each API process runs the readiness probes in the background, "
    "so `taskmarket_component_up` stays current (0: only when `/health/ready` is called).",
    "gc_thresholds": "Garbage-collector thresholds of an API process (three positive integers, as "
    "`gc.set_threshold`); empty: Python's defaults (700,10,10), which pause broadcasts to many WebSockets.",
    "shutdown_step_timeout_seconds": "Upper bound of each ordered-shutdown step.",
    "loop_bridge_timeout_seconds": "Default timeout of a coroutine submitted from a thread to the event loop.",
    "enable_test_routes": "Mount `/api/_test/*` routes used by end-to-end tests. Refused in production.",
    "ws_auth_timeout_seconds": "A WebSocket must send its `auth` message within this time, else it closes (4401).",
    "ws_max_connections_per_user": "Open WebSockets per user; a new one beyond it closes the oldest with 4429.",
    "ws_ping_interval_seconds": "The server sends a `ping` message to a WebSocket silent for this long.",
    "ws_idle_timeout_seconds": "A WebSocket that sends nothing (not even `pong`) for this long is closed with 4408.",
    "ws_send_queue_size": "Events queued per WebSocket; a client that falls further behind is dropped (4503).",
    "ws_send_timeout_seconds": "Longest a single send to a WebSocket may take before the client is dropped (4503).",
    "ws_max_message_bytes": "Largest message a client may send over the WebSocket (larger: closed with 1009).",
    "jobs_in_process": "Without `REDIS_URL`, run the periodic jobs inside the API (one elected process). `false`: "
    "no jobs run at all (for tests, or when another deployment runs them).",
    "jobs_timezone": "IANA time zone of the daily jobs' times (02:00 chat cleanup, 03:00 expert bios).",
    "jobs_batch_size": "Rows a job changes per transaction; a job works off a backlog batch after batch.",
    "jobs_shutdown_timeout_seconds": "In-process jobs: how long shutdown waits for running jobs before cancelling "
    "them (below `SHUTDOWN_STEP_TIMEOUT_SECONDS`).",
    "jobs_send_timeout_seconds": "Scheduler: longest an enqueue may take; a failed or late one is counted and logged.",
    "jobs_heartbeat_interval_seconds": "Scheduler and workers write a heartbeat this often; three missed = stale.",
    "jobs_leader_retry_seconds": "In-process jobs: how often a standby API process tries to take over the jobs "
    "(and the leader checks it still holds the lock).",
    "jobs_metrics_port": "Port of the `/metrics` endpoint of a scheduler or worker process (the N-th child of "
    "`taskiq worker --workers` adds N; 0: off).",
    "jobs_every_seconds_override": "Tests and local runs: every job runs every N seconds instead of its cadence "
    "(0: the catalogue's cadences). Refused in production.",
    "jobs_timeout_seconds_override": "Tests and local runs: every job's time limit in seconds (0: the catalogue's "
    "limits). Refused in production.",
}

_LOG_LEVELS = {"CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"}


def _convert(name: str, raw: str, annotation: Any) -> Any:
    """Turn one environment string into the field's type, or say what is wrong."""
    env_name = name.upper()
    text = raw.strip()
    optional = annotation in (bool | None, str | None)
    if optional and text == "":
        return None
    if annotation in (bool, bool | None):
        lowered = text.lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise SettingsError(f"{env_name} must be a boolean (true/false), got {raw!r}")
    if annotation is int:
        try:
            return int(text)
        except ValueError:
            raise SettingsError(f"{env_name} must be an integer, got {raw!r}") from None
    if annotation is float:
        try:
            number = float(text)
        except ValueError:
            raise SettingsError(f"{env_name} must be a number, got {raw!r}") from None
        # float() accepts "nan" and "inf": a NaN timeout fires at once, an infinite one never.
        if not math.isfinite(number):
            raise SettingsError(f"{env_name} must be a finite number, got {raw!r}")
        return number
    if annotation is Environment:
        try:
            return Environment(text.lower())
        except ValueError:
            allowed = ", ".join(e.value for e in Environment)
            raise SettingsError(f"{env_name} must be one of {allowed}, got {raw!r}") from None
    return text


def _validate(settings: Settings) -> None:
    positive = (
        "database_pool_size",
        "database_pool_timeout_seconds",
        "database_connect_timeout_seconds",
        "database_command_timeout_seconds",
        "redis_timeout_seconds",
        "access_token_ttl_seconds",
        "refresh_token_ttl_days",
        "argon2_time_cost",
        "argon2_memory_cost_kib",
        "argon2_parallelism",
        "login_rate_limit_window_seconds",
        "points_lifetime_days",
        "invitation_max_active_per_user",
        "invitation_lifetime_days",
        "support_max_chats_per_agent",
        "support_answer_timeout_seconds",
        "support_idle_timeout_seconds",
        "support_inactive_days",
        "support_retention_days",
        "login_rate_limit_per_account",
        "login_rate_limit_per_address",
        "health_check_timeout_seconds",
        "shutdown_step_timeout_seconds",
        "loop_bridge_timeout_seconds",
        "ws_auth_timeout_seconds",
        "ws_max_connections_per_user",
        "ws_ping_interval_seconds",
        "ws_idle_timeout_seconds",
        "ws_send_queue_size",
        "ws_send_timeout_seconds",
        "ws_max_message_bytes",
        "jobs_batch_size",
        "jobs_shutdown_timeout_seconds",
        "jobs_send_timeout_seconds",
        "jobs_heartbeat_interval_seconds",
        "jobs_leader_retry_seconds",
    )
    for name in positive:
        value = getattr(settings, name)
        if not math.isfinite(value) or value <= 0:
            raise SettingsError(f"{name.upper()} must be a finite number greater than zero")
    for name in (
        "database_max_overflow",
        "health_probe_interval_seconds",
        "invitation_reward_inviter",
        "invitation_reward_invitee",
        "jobs_metrics_port",
        "jobs_every_seconds_override",
        "jobs_timeout_seconds_override",
    ):
        if getattr(settings, name) < 0:
            raise SettingsError(f"{name.upper()} must not be negative")
    if settings.argon2_memory_cost_kib < 8 * settings.argon2_parallelism:
        raise SettingsError("ARGON2_MEMORY_COST_KIB must be at least 8 x ARGON2_PARALLELISM")
    if not settings.database_url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        raise SettingsError("DATABASE_URL must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
    if settings.redis_url is not None and not settings.redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError("REDIS_URL must start with redis://, rediss:// or unix://")
    if settings.ws_idle_timeout_seconds <= settings.ws_ping_interval_seconds:
        raise SettingsError("WS_IDLE_TIMEOUT_SECONDS must be greater than WS_PING_INTERVAL_SECONDS")
    _validate_jobs(settings)
    _validate_gc_thresholds(settings.gc_thresholds)
    if settings.log_level.upper() not in _LOG_LEVELS:
        raise SettingsError(f"LOG_LEVEL must be one of {', '.join(sorted(_LOG_LEVELS))}")
    if len(settings.jwt_secret) < 32:
        raise SettingsError("JWT_SECRET must be at least 32 characters long")
    if settings.is_production:
        _validate_production(settings)


def _validate_gc_thresholds(raw: str) -> None:
    if not raw.strip():
        return
    parts = raw.split(",")
    if len(parts) != 3 or not all(part.strip().isdigit() and int(part) > 0 for part in parts):
        raise SettingsError(f"GC_THRESHOLDS must be three positive integers such as 2000,10,100, got {raw!r}")


def _validate_jobs(settings: Settings) -> None:
    try:
        ZoneInfo(settings.jobs_timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(
            f"JOBS_TIMEZONE must be an IANA time zone such as Europe/Paris, got {settings.jobs_timezone!r}"
        ) from None
    if settings.jobs_shutdown_timeout_seconds >= settings.shutdown_step_timeout_seconds:
        raise SettingsError("JOBS_SHUTDOWN_TIMEOUT_SECONDS must be below SHUTDOWN_STEP_TIMEOUT_SECONDS")
    if settings.jobs_metrics_port > 65535:
        raise SettingsError("JOBS_METRICS_PORT must be a TCP port (0 to 65535)")
    if settings.is_production and (settings.jobs_every_seconds_override or settings.jobs_timeout_seconds_override):
        raise SettingsError(
            "JOBS_EVERY_SECONDS_OVERRIDE and JOBS_TIMEOUT_SECONDS_OVERRIDE are for tests, not production"
        )


def _validate_production(settings: Settings) -> None:
    if settings.jwt_secret == DEFAULT_JWT_SECRET:
        raise SettingsError("JWT_SECRET must be set to a secret of your own in production")
    if settings.is_sqlite and not settings.allow_sqlite_in_production:
        raise SettingsError(
            "DATABASE_URL points at SQLite in production; use PostgreSQL or set ALLOW_SQLITE_IN_PRODUCTION=true"
        )
    if settings.enable_test_routes:
        raise SettingsError("ENABLE_TEST_ROUTES must not be enabled in production")


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read settings from ``environ`` (default: the process environment), apply overrides, validate.

    Raises:
        SettingsError: naming the offending variable.
    """
    source = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for field in msgspec.structs.fields(Settings):
        raw = source.get(field.name.upper())
        if raw is not None:
            values[field.name] = _convert(field.name, raw, field.type)
    values.update(overrides)
    try:
        settings = msgspec.convert(values, Settings)
    except msgspec.ValidationError as exc:
        raise SettingsError(str(exc)) from None
    _validate(settings)
    return settings
