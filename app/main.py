"""The composition root: the one module that knows the domain, the adapters and the API.

Nothing is configured or connected at import time. ``create_app(settings)``
builds everything, so tests build apps with other settings; uvicorn and the
Litestar CLI call it as a factory (``app.main:create_app``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from uuid import UUID

from advanced_alchemy.extensions.litestar import SQLAlchemyInitPlugin
from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin
from litestar.openapi.spec import Contact
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from litestar.types import ControllerRouterHandler
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, close_all_sessions

from app import __version__
from app.api.controllers.admin import AdminUsersController
from app.api.controllers.auth import AuthController
from app.api.controllers.coupons import AdminCouponTemplatesController, CouponsController
from app.api.controllers.experts import ExpertsController
from app.api.controllers.health import HealthController, ReadinessChecks
from app.api.controllers.invitations import InvitationsController
from app.api.controllers.notifications import NotificationsController
from app.api.controllers.points import AdminPointsController, PointsController
from app.api.controllers.tasks import TasksController
from app.api.controllers.testing import SlowDatabaseWork, TestRoutesController
from app.api.controllers.users import UsersController
from app.api.errors import EXCEPTION_HANDLERS, database_error_handler
from app.api.security import build_jwt_auth
from app.cli import UsersCLIPlugin
from app.config import Environment, Settings, load_settings
from app.domain.coupons.service import CouponService
from app.domain.experts.service import ExpertService
from app.domain.invitations.model import InvitationPolicy
from app.domain.invitations.service import InvitationService
from app.domain.notifications.service import NotificationService
from app.domain.points.service import PointsPolicy, PointsService
from app.domain.shared.clock import SystemClock
from app.domain.shared.ports import Clock, RateLimiter
from app.domain.tasks.service import TaskService
from app.domain.users.model import User
from app.domain.users.service import AuthService, LoginLimits, UserService
from app.infra.db.config import database_config
from app.infra.db.coupons import SqlCouponRepository
from app.infra.db.errors import is_database_unavailable
from app.infra.db.experts import SqlExpertRepository
from app.infra.db.health import ping_database
from app.infra.db.invitations import SqlInvitationRepository
from app.infra.db.notifications import SqlNotifications
from app.infra.db.points import SqlPointsLedger
from app.infra.db.tasks import SqlTaskRepository
from app.infra.db.unit_of_work import SessionUnitOfWork
from app.infra.db.users import SqlRefreshTokenStore, SqlUserRepository, load_active_user
from app.infra.lifecycle import LoopBridge, Runtime, RuntimePlugin, ShutdownPhase
from app.infra.observability.logging import RequestLogging, configure_logging
from app.infra.observability.metrics import mark_process_dead_if_multiprocess
from app.infra.ratelimit.memory import InMemoryRateLimiter
from app.infra.ratelimit.redis import RedisRateLimiter
from app.infra.security.passwords import Argon2PasswordHasher
from app.infra.security.tokens import ALGORITHM, REQUIRED_CLAIMS, JwtAccessTokenIssuer


class MetricsController(PrometheusController):
    """``GET /metrics`` for Prometheus; an operator endpoint, left out of the client's OpenAPI document."""

    include_in_schema = False


# Paths the JWT middleware never looks at (each of their handlers is public anyway).
UNAUTHENTICATED_PATHS = ["^/schema", "^/metrics$", "^/health"]


def _redis_client(settings: Settings) -> Redis | None:
    if settings.redis_url is None:
        return None
    return Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.redis_timeout_seconds,
        socket_connect_timeout=settings.redis_timeout_seconds,
        health_check_interval=30,
    )


def _readiness_checks(settings: Settings, engine: AsyncEngine, redis: Redis | None) -> ReadinessChecks:
    timeout = settings.health_check_timeout_seconds

    async def database() -> None:
        await ping_database(engine, timeout)

    async def redis_ping() -> None:
        assert redis is not None
        async with asyncio.timeout(timeout):
            await redis.ping()

    return {"database": database} | ({"redis": redis_ping} if redis is not None else {})


def _request_id_outermost(request_logging: RequestLogging) -> Any:
    """Put the request-id middleware outside the JWT middleware, so its 401s carry the id too."""

    def hook(app_config: AppConfig) -> AppConfig:
        app_config.middleware.insert(0, request_logging.middleware)
        return app_config

    return hook


def _notification_service_provider(clock: Clock) -> Callable[[AsyncSession], NotificationService]:
    def provide_notification_service(db_session: NamedDependency[AsyncSession]) -> NotificationService:
        return NotificationService(SqlNotifications(db_session, clock), SessionUnitOfWork(db_session), clock)

    return provide_notification_service


def _expert_service_provider(clock: Clock) -> Callable[[AsyncSession], ExpertService]:
    def provide_expert_service(db_session: NamedDependency[AsyncSession]) -> ExpertService:
        return ExpertService(SqlExpertRepository(db_session), SessionUnitOfWork(db_session), clock)

    return provide_expert_service


def create_app(settings: Settings | None = None) -> Litestar:
    """Build the service from ``settings`` (default: read from the environment)."""
    settings = settings or load_settings()
    configure_logging(settings.log_level, settings.json_logs)

    db_config = database_config(settings)
    engine = db_config.get_engine()
    redis = _redis_client(settings)
    runtime = Runtime(LoopBridge(settings.loop_bridge_timeout_seconds), settings.shutdown_step_timeout_seconds)
    runtime.on_shutdown(ShutdownPhase.CLOSE_SESSIONS, "close database sessions", close_all_sessions)
    runtime.on_shutdown(ShutdownPhase.DISPOSE_DATABASE, "dispose database pool", engine.dispose)
    if redis is not None:
        runtime.on_shutdown(ShutdownPhase.CLOSE_REDIS, "close redis", redis.aclose)
    runtime.on_shutdown(ShutdownPhase.FLUSH_METRICS, "mark metrics process dead", mark_process_dead_if_multiprocess)

    clock = SystemClock()
    hasher = Argon2PasswordHasher(
        settings.argon2_time_cost, settings.argon2_memory_cost_kib, settings.argon2_parallelism
    )
    access_tokens = JwtAccessTokenIssuer(
        settings.jwt_secret, settings.jwt_issuer, settings.jwt_audience, settings.access_token_ttl_seconds
    )
    rate_limiter: RateLimiter = RedisRateLimiter(redis) if redis is not None else InMemoryRateLimiter()
    login_limits = LoginLimits(
        per_account=settings.login_rate_limit_per_account,
        per_address=settings.login_rate_limit_per_address,
        window_seconds=settings.login_rate_limit_window_seconds,
    )
    refresh_ttl = timedelta(days=settings.refresh_token_ttl_days)
    points_policy = PointsPolicy(lot_lifetime=timedelta(days=settings.points_lifetime_days))
    invitation_policy = InvitationPolicy(
        max_active_per_user=settings.invitation_max_active_per_user,
        reward_inviter=settings.invitation_reward_inviter,
        reward_invitee=settings.invitation_reward_invitee,
        default_lifetime_days=settings.invitation_lifetime_days,
    )

    def invitation_service(db_session: AsyncSession) -> InvitationService:
        points = PointsService(SqlPointsLedger(db_session), SessionUnitOfWork(db_session), clock, points_policy)
        return InvitationService(
            SqlInvitationRepository(db_session), points, SessionUnitOfWork(db_session), clock, invitation_policy
        )

    def provide_user_service(db_session: NamedDependency[AsyncSession]) -> UserService:
        return UserService(
            SqlUserRepository(db_session),
            hasher,
            SqlRefreshTokenStore(db_session, refresh_ttl),
            SessionUnitOfWork(db_session),
            clock,
            # registration redeems an invitation code in its own transaction
            invitations=invitation_service(db_session).redeem_for_new_user,
        )

    def provide_invitation_service(db_session: NamedDependency[AsyncSession]) -> InvitationService:
        return invitation_service(db_session)

    def provide_auth_service(db_session: NamedDependency[AsyncSession]) -> AuthService:
        return AuthService(
            SqlUserRepository(db_session),
            hasher,
            access_tokens,
            SqlRefreshTokenStore(db_session, refresh_ttl),
            rate_limiter,
            login_limits,
            SessionUnitOfWork(db_session),
            clock,
        )

    def provide_points_service(db_session: NamedDependency[AsyncSession]) -> PointsService:
        return PointsService(SqlPointsLedger(db_session), SessionUnitOfWork(db_session), clock, points_policy)

    def provide_coupon_service(db_session: NamedDependency[AsyncSession]) -> CouponService:
        uow = SessionUnitOfWork(db_session)
        points = PointsService(SqlPointsLedger(db_session), uow, clock, points_policy)
        return CouponService(SqlCouponRepository(db_session), points, uow, clock)

    def provide_task_service(db_session: NamedDependency[AsyncSession]) -> TaskService:
        uow = SessionUnitOfWork(db_session)
        points = PointsService(SqlPointsLedger(db_session), uow, clock, points_policy)
        coupons = CouponService(SqlCouponRepository(db_session), points, uow, clock)
        return TaskService(
            SqlTaskRepository(db_session), points, coupons, SqlNotifications(db_session, clock), uow, clock
        )

    def provide_slow_database_work(db_session: NamedDependency[AsyncSession]) -> SlowDatabaseWork:
        async def work(seconds: float) -> None:
            await db_session.execute(text("SELECT 1"))
            await asyncio.sleep(seconds)
            await db_session.execute(text("SELECT 1"))

        return work

    async def load_user(user_id: UUID) -> User | None:
        async with engine.connect() as connection:
            return await load_active_user(connection, user_id)

    readiness_checks = _readiness_checks(settings, engine, redis)
    request_logging = RequestLogging(
        enabled=settings.log_requests, quiet_expected_401=settings.environment is not Environment.DEVELOPMENT
    )

    jwt_auth = build_jwt_auth(
        secret=settings.jwt_secret,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        algorithm=ALGORITHM,
        required_claims=REQUIRED_CLAIMS,
        load_user=load_user,
    )
    jwt_auth.exclude = UNAUTHENTICATED_PATHS
    prometheus = PrometheusConfig(app_name="taskmarket", group_path=True, exclude=["/metrics"])

    route_handlers: list[ControllerRouterHandler] = [
        UsersController,
        AuthController,
        AdminUsersController,
        PointsController,
        AdminPointsController,
        CouponsController,
        AdminCouponTemplatesController,
        InvitationsController,
        TasksController,
        NotificationsController,
        ExpertsController,
        HealthController,
        MetricsController,
    ]
    dependencies = {
        "users": Provide(provide_user_service, sync_to_thread=False),
        "auth": Provide(provide_auth_service, sync_to_thread=False),
        "points": Provide(provide_points_service, sync_to_thread=False),
        "coupons": Provide(provide_coupon_service, sync_to_thread=False),
        "invitations": Provide(provide_invitation_service, sync_to_thread=False),
        "tasks": Provide(provide_task_service, sync_to_thread=False),
        "notifications": Provide(_notification_service_provider(clock), sync_to_thread=False),
        "experts": Provide(_expert_service_provider(clock), sync_to_thread=False),
        "readiness_checks": Provide(lambda: readiness_checks, sync_to_thread=False, use_cache=True),
    }
    if settings.enable_test_routes:
        route_handlers.append(TestRoutesController)
        dependencies["slow_database_work"] = Provide(provide_slow_database_work, sync_to_thread=False)

    return Litestar(
        route_handlers=route_handlers,
        # Order matters: lifespans exit in reverse, so the runtime's ordered shutdown
        # (which disposes the engine itself) runs before the database plugin's exit.
        plugins=[SQLAlchemyInitPlugin(db_config), RuntimePlugin(runtime), UsersCLIPlugin()],
        on_app_init=[jwt_auth.on_app_init, _request_id_outermost(request_logging)],
        before_send=[request_logging.before_send],
        middleware=[prometheus.middleware],
        dependencies=dependencies,
        exception_handlers={
            **EXCEPTION_HANDLERS,
            SQLAlchemyError: database_error_handler(is_database_unavailable),
            # asyncpg's statement timeout surfaces as a bare TimeoutError
            TimeoutError: database_error_handler(is_database_unavailable),
        },
        openapi_config=OpenAPIConfig(
            title="Taskmarket API",
            version=__version__,
            description="Task marketplace: accounts, tasks, experts, activities, rewards and customer service.",
            contact=Contact(name="Taskmarket"),
            path="/schema",
            render_plugins=[ScalarRenderPlugin()],
            use_handler_docstrings=True,
            create_examples=False,
        ),
        logging_config=None,
        debug=False,
        state=State({"settings": settings, "runtime": runtime, "redis": redis}),
    )
