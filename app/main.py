"""The composition root: the one module that knows the domain, the adapters and the API.

Nothing is configured or connected at import time. ``create_app(settings)``
builds everything, so tests build apps with other settings; uvicorn and the
Litestar CLI call it as a factory (``app.main:create_app``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
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
from litestar.types import BeforeMessageSendHookHandler, ControllerRouterHandler, Message, Scope
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, close_all_sessions

from app import __version__
from app.api.controllers.activities import ActivitiesController
from app.api.controllers.admin import AdminUsersController
from app.api.controllers.auth import AuthController
from app.api.controllers.coupons import AdminCouponTemplatesController, CouponsController
from app.api.controllers.experts import ExpertsController
from app.api.controllers.health import HealthController, ReadinessChecks
from app.api.controllers.invitations import InvitationsController
from app.api.controllers.notifications import NotificationsController
from app.api.controllers.points import AdminPointsController, PointsController
from app.api.controllers.realtime import realtime_socket
from app.api.controllers.stats import UserStatsController
from app.api.controllers.support import AdminSupportController, SupportAgentsController, SupportChatsController
from app.api.controllers.tasks import TasksController
from app.api.controllers.testing import SlowDatabaseWork, TestRoutesController
from app.api.controllers.users import UsersController
from app.api.errors import EXCEPTION_HANDLERS, database_error_handler
from app.api.security import build_jwt_auth
from app.cli import UsersCLIPlugin
from app.composition import api_jobs
from app.config import Environment, Settings, load_settings
from app.domain.activities.service import ActivityService
from app.domain.coupons.service import CouponService
from app.domain.experts.service import ExpertService
from app.domain.invitations.model import InvitationPolicy
from app.domain.invitations.service import InvitationService
from app.domain.notifications.service import NotificationService
from app.domain.points.service import PointsPolicy, PointsService
from app.domain.shared.clock import SystemClock
from app.domain.shared.errors import FieldIssue, Unauthenticated, ValidationFailed
from app.domain.shared.events import EventPublisher, UserEvent
from app.domain.shared.ports import Clock, RateLimiter
from app.domain.stats.service import StatsService
from app.domain.support.model import SupportPolicy
from app.domain.support.service import SupportService
from app.domain.tasks.service import TaskService
from app.domain.users.model import Principal, User
from app.domain.users.service import AuthService, LoginLimits, UserService
from app.infra.db.activities import SqlActivityRepository
from app.infra.db.config import database_config, probe_timeout
from app.infra.db.coupons import SqlCouponRepository
from app.infra.db.errors import is_database_unavailable
from app.infra.db.experts import SqlExpertRepository
from app.infra.db.health import ping_database
from app.infra.db.invitations import SqlInvitationRepository
from app.infra.db.notifications import SqlNotifications
from app.infra.db.points import SqlPointsLedger
from app.infra.db.stats import SqlStatsRepository
from app.infra.db.support import SqlAgentRepository, SqlChatRepository
from app.infra.db.tasks import SqlTaskRepository
from app.infra.db.unit_of_work import SessionUnitOfWork
from app.infra.db.users import ActiveUserLoader, SqlRefreshTokenStore, SqlUserRepository
from app.infra.gc_tuning import freeze_startup_heap, set_collector_thresholds
from app.infra.lifecycle import LoopBridge, Runtime, RuntimePlugin, ShutdownPhase
from app.infra.observability.health_metrics import ComponentProbe, recording_probes
from app.infra.observability.http_metrics import HttpResponseMetrics
from app.infra.observability.logging import RequestLogging, configure_logging
from app.infra.observability.loop_metrics import LoopMonitor, count_event_loops
from app.infra.observability.metrics import mark_process_dead_if_multiprocess
from app.infra.ratelimit.memory import InMemoryRateLimiter
from app.infra.ratelimit.redis import RedisRateLimiter
from app.infra.realtime.after_commit import AfterCommitEvents
from app.infra.realtime.connections import ConnectionManager
from app.infra.realtime.fanout import LocalFanout, RedisFanout
from app.infra.realtime.server import PING, Command, RealtimeServer
from app.infra.security.passwords import Argon2PasswordHasher
from app.infra.security.tokens import ALGORITHM, REQUIRED_CLAIMS, JwtAccessTokenIssuer
from app.jobs_cli import JobsCLIPlugin


class MetricsController(PrometheusController):
    """``GET /metrics`` for Prometheus; an operator endpoint, left out of the client's OpenAPI document."""

    include_in_schema = False


# Paths the JWT middleware never looks at (each of their handlers is public anyway).
UNAUTHENTICATED_PATHS = ["^/schema", "^/metrics$", "^/health"]
# The route template whose answers ``taskmarket_registration_*`` count (UsersController.register).
REGISTRATION_ROUTE = "/api/users/register"
# ``taskmarket_component_up`` names the job heartbeats for what they are (readiness calls them by their role).
COMPONENT_METRIC_NAMES = {"job_scheduler": "scheduler_heartbeat", "job_workers": "worker_heartbeat"}


def _redis_client(settings: Settings) -> Redis | None:
    if settings.redis_url is None:
        return None
    return Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.redis_timeout_seconds,
        socket_connect_timeout=settings.redis_timeout_seconds,
        health_check_interval=30,
    )


def _runtime(settings: Settings, engine: AsyncEngine, redis: Redis | None) -> Runtime:
    """The lifecycle owner, with the shutdown steps of the shared resources (SPEC 6.2 order)."""
    runtime = Runtime(LoopBridge(settings.loop_bridge_timeout_seconds), settings.shutdown_step_timeout_seconds)
    # event-loop count, lag and errors, process memory: from the first startup step to the background tasks' end
    loop_monitor = LoopMonitor()
    runtime.on_startup("start event-loop monitor", loop_monitor.start)
    runtime.on_shutdown(ShutdownPhase.CANCEL_BACKGROUND_TASKS, "stop event-loop monitor", loop_monitor.stop)
    runtime.on_shutdown(ShutdownPhase.CLOSE_SESSIONS, "close database sessions", close_all_sessions)
    runtime.on_shutdown(ShutdownPhase.DISPOSE_DATABASE, "dispose database pool", engine.dispose)
    if redis is not None:
        runtime.on_shutdown(ShutdownPhase.CLOSE_REDIS, "close redis", redis.aclose)
    runtime.on_shutdown(ShutdownPhase.FLUSH_METRICS, "mark metrics process dead", mark_process_dead_if_multiprocess)
    return runtime


def _readiness_checks(settings: Settings, engine: AsyncEngine, redis: Redis | None) -> ReadinessChecks:
    timeout = settings.health_check_timeout_seconds

    async def database() -> None:
        await ping_database(engine, timeout)

    async def redis_ping() -> None:
        assert redis is not None
        async with asyncio.timeout(timeout):
            await redis.ping()

    return {"database": database} | ({"redis": redis_ping} if redis is not None else {})


def _observed_readiness(settings: Settings, runtime: Runtime, checks: ReadinessChecks) -> ReadinessChecks:
    """Readiness probes that also set ``taskmarket_component_up``, run in the background too (kept current)."""
    recorded = recording_probes(checks, COMPONENT_METRIC_NAMES)
    if settings.health_probe_interval_seconds > 0:
        probe = ComponentProbe(recorded, settings.health_probe_interval_seconds)

        async def start_probe() -> None:
            runtime.spawn(probe.run(), "component health probe")

        runtime.on_startup("start component health probe", start_probe)
    return recorded


def _before_send(
    request_logging: RequestLogging, response_metrics: HttpResponseMetrics
) -> BeforeMessageSendHookHandler:
    """Both response hooks in one: each message of every response passes here (one coroutine, not two)."""

    async def before_send(message: Message, scope: Scope) -> None:
        request_logging.on_send(message, scope)
        response_metrics.on_send(message, scope)

    return before_send


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


def _support_policy(settings: Settings) -> SupportPolicy:
    return SupportPolicy(
        max_chats_per_agent=settings.support_max_chats_per_agent,
        answer_timeout=timedelta(seconds=settings.support_answer_timeout_seconds),
        idle_timeout=timedelta(seconds=settings.support_idle_timeout_seconds),
        inactive_after=timedelta(days=settings.support_inactive_days),
        retention=timedelta(days=settings.support_retention_days),
    )


def _support_service_provider(
    clock: Clock, settings: Settings, events: EventPublisher
) -> Callable[[AsyncSession], SupportService]:
    """Chat events (``chat.message``, ``chat.assigned``, ...) go to the users' WebSockets through ``events``."""
    policy = _support_policy(settings)

    def provide_support_service(db_session: NamedDependency[AsyncSession]) -> SupportService:
        return SupportService(
            SqlChatRepository(db_session),
            SqlAgentRepository(db_session),
            SessionUnitOfWork(db_session),
            clock,
            events,
            policy,
        )

    return provide_support_service


def _activity_service_provider(
    clock: Clock, points_policy: PointsPolicy, live: AfterCommitEvents
) -> Callable[[AsyncSession], ActivityService]:
    def provide_activity_service(db_session: NamedDependency[AsyncSession]) -> ActivityService:
        uow = SessionUnitOfWork(db_session)
        points = PointsService(SqlPointsLedger(db_session), uow, clock, points_policy)
        notifier = SqlNotifications(db_session, clock, live)
        return ActivityService(SqlActivityRepository(db_session), points, notifier, uow, clock)

    return provide_activity_service


def _stats_service_provider(clock: Clock) -> Callable[[AsyncSession], StatsService]:
    def provide_stats_service(db_session: NamedDependency[AsyncSession]) -> StatsService:
        return StatsService(SqlStatsRepository(db_session), SessionUnitOfWork(db_session), clock)

    return provide_stats_service


@dataclass(frozen=True, slots=True)
class _RealtimeWiring:
    server: RealtimeServer
    publisher: EventPublisher
    live: AfterCommitEvents
    readiness: ReadinessChecks


def _chat_commands(
    settings: Settings,
    engine: AsyncEngine,
    clock: Clock,
    events: EventPublisher,
    load_user: Callable[[UUID], Awaitable[User | None]],
) -> dict[str, Command]:
    """``chat.send``, ``chat.typing`` and ``chat.read`` over the WebSocket: the same use cases as REST.

    Each message gets a session of its own (a socket lives for hours; it must not hold a
    connection), and the caller's account is read again, so a role change or a
    deactivation applies to an open socket at once.
    """
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    policy = _support_policy(settings)

    async def principal(user_id: UUID) -> Principal:
        user = await load_user(user_id)
        if user is None:
            raise Unauthenticated("The account is no longer active.", code="account_inactive")
        return Principal.of(user)

    def chat_id_of(message: Mapping[str, Any]) -> UUID:
        try:
            return UUID(str(message.get("chat_id")))
        except ValueError:
            issue = FieldIssue(code="invalid_uuid", message="Must be a chat id (UUID).", field="chat_id")
            raise ValidationFailed("The command is not valid.", code="invalid_command", issues=(issue,)) from None

    @asynccontextmanager
    async def support() -> AsyncIterator[SupportService]:
        async with sessions() as session:
            yield SupportService(
                SqlChatRepository(session),
                SqlAgentRepository(session),
                SessionUnitOfWork(session),
                clock,
                events,
                policy,
            )

    async def send(user_id: UUID, message: Mapping[str, Any]) -> Mapping[str, Any] | None:
        chat_id, body = chat_id_of(message), message.get("body")
        if not isinstance(body, str):
            issue = FieldIssue(code="required", message="A text `body` is required.", field="body")
            raise ValidationFailed("The message is not valid.", code="invalid_message", issues=(issue,))
        async with support() as service:
            sent = await service.send_message(chat_id, await principal(user_id), body)
        return {"type": "chat.sent", "chat_id": str(chat_id), "message_id": str(sent.id), "seq": sent.seq}

    async def typing(user_id: UUID, message: Mapping[str, Any]) -> Mapping[str, Any] | None:
        async with support() as service:
            await service.notify_typing(chat_id_of(message), await principal(user_id))
        return None

    async def read(user_id: UUID, message: Mapping[str, Any]) -> Mapping[str, Any] | None:
        up_to = message.get("up_to_seq")
        async with support() as service:
            await service.mark_read(
                await principal(user_id), chat_id_of(message), up_to if isinstance(up_to, int) else None
            )
        return None

    return {"chat.send": send, "chat.typing": typing, "chat.read": read}


def _realtime_wiring(
    settings: Settings,
    runtime: Runtime,
    redis: Redis | None,
    access_tokens: JwtAccessTokenIssuer,
    load_user: Callable[[UUID], Awaitable[User | None]],
    engine: AsyncEngine,
    clock: Clock,
) -> _RealtimeWiring:
    """WebSockets: the connection manager, the fan-out (Redis when configured) and their lifecycle."""
    manager = ConnectionManager(
        max_per_user=settings.ws_max_connections_per_user,
        queue_size=settings.ws_send_queue_size,
        send_timeout=settings.ws_send_timeout_seconds,
        ping_interval=settings.ws_ping_interval_seconds,
        idle_timeout=settings.ws_idle_timeout_seconds,
    )

    async def authenticate(token: str) -> UUID | None:
        user_id = access_tokens.verify(token)
        return user_id if user_id is not None and await load_user(user_id) is not None else None

    server = RealtimeServer(
        manager,
        authenticate,
        auth_timeout=settings.ws_auth_timeout_seconds,
        max_message_bytes=settings.ws_max_message_bytes,
    )
    publisher: EventPublisher
    readiness: ReadinessChecks = {}
    if redis is not None and settings.redis_url is not None:
        fanout = RedisFanout(manager, settings.redis_url, redis, timeout=settings.redis_timeout_seconds)
        publisher = fanout

        async def subscribed() -> None:
            if not fanout.listening.is_set():
                raise ConnectionError("the fan-out subscription is not established")

        readiness = {"websocket_fanout": subscribed}

        async def listen() -> None:
            runtime.spawn(fanout.run(), "websocket fan-out subscription")
            # Start serving subscribed when Redis answers; if it does not, the subscription
            # keeps retrying in the background and readiness says so.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(settings.redis_timeout_seconds):
                    await fanout.listening.wait()

        runtime.on_startup("subscribe to websocket fan-out", listen)
    else:
        publisher = LocalFanout(manager)

    async def ping() -> None:
        runtime.spawn(manager.run_pinger(PING), "websocket pinger")

    async def close_sockets() -> None:
        await manager.close_all(wait_seconds=settings.shutdown_step_timeout_seconds / 2)

    for message_type, command in _chat_commands(settings, engine, clock, publisher, load_user).items():
        server.add_command(message_type, command)
    runtime.on_startup("start websocket pinger", ping)
    runtime.on_shutdown(ShutdownPhase.CLOSE_WEBSOCKETS, "close websockets", close_sockets)
    return _RealtimeWiring(server, publisher, AfterCommitEvents(publisher, runtime.spawn), readiness)


def _jobs(
    settings: Settings, runtime: Runtime, engine: AsyncEngine, redis: Redis | None, realtime: _RealtimeWiring
) -> ReadinessChecks:
    """Periodic jobs: run in-process without Redis; with Redis, the taskiq processes' heartbeats join readiness."""
    return api_jobs(settings, runtime, engine, redis, realtime.live, realtime.publisher)


def _test_route_dependencies(publisher: EventPublisher) -> dict[str, Provide]:
    """What the ``/api/_test`` routes need (mounted only with ``ENABLE_TEST_ROUTES``)."""

    def provide_slow_database_work(db_session: NamedDependency[AsyncSession]) -> SlowDatabaseWork:
        async def work(seconds: float) -> None:
            await db_session.execute(text("SELECT 1"))
            await asyncio.sleep(seconds)
            await db_session.execute(text("SELECT 1"))

        return work

    async def publish_test_events(user_id: UUID, count: int, size: int) -> None:
        for n in range(count):
            await publisher.publish((user_id,), UserEvent("test", {"n": n, "padding": "x" * size}))

    return {
        "slow_database_work": Provide(provide_slow_database_work, sync_to_thread=False),
        "publish_test_events": Provide(lambda: publish_test_events, sync_to_thread=False),
    }


def create_app(settings: Settings | None = None) -> Litestar:
    """Build the service from ``settings`` (default: read from the environment)."""
    settings = settings or load_settings()
    configure_logging(settings.log_level, settings.json_logs)
    set_collector_thresholds(settings.collector_thresholds)
    count_event_loops()  # from now on a stray asyncio.run() or new_event_loop() in this process shows

    db_config = database_config(settings)
    engine = db_config.get_engine()
    redis = _redis_client(settings)
    runtime = _runtime(settings, engine, redis)

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
            SqlTaskRepository(db_session),
            points,
            coupons,
            SqlNotifications(db_session, clock, realtime.live),
            uow,
            clock,
        )

    load_user = ActiveUserLoader(engine, probe_timeout(settings))

    realtime = _realtime_wiring(settings, runtime, redis, access_tokens, load_user, engine, clock)
    readiness_checks = _observed_readiness(
        settings,
        runtime,
        {
            **_readiness_checks(settings, engine, redis),
            **realtime.readiness,
            **_jobs(settings, runtime, engine, redis, realtime),
        },
    )
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
        ActivitiesController,
        UserStatsController,
        SupportChatsController,
        SupportAgentsController,
        AdminSupportController,
        HealthController,
        MetricsController,
        realtime_socket,
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
        "support": Provide(_support_service_provider(clock, settings, realtime.publisher), sync_to_thread=False),
        "activities": Provide(_activity_service_provider(clock, points_policy, realtime.live), sync_to_thread=False),
        "stats": Provide(_stats_service_provider(clock), sync_to_thread=False),
        "readiness_checks": Provide(lambda: readiness_checks, sync_to_thread=False, use_cache=True),
        "serve_socket": Provide(lambda: realtime.server.serve, sync_to_thread=False, use_cache=True),
    }
    if settings.enable_test_routes:
        route_handlers.append(TestRoutesController)
        dependencies.update(_test_route_dependencies(realtime.publisher))
    if settings.collector_thresholds is not None:
        # the last start-up step: everything built so far stays out of later collections (app/infra/gc_tuning.py)
        runtime.on_startup("freeze the start-up heap", freeze_startup_heap)

    return Litestar(
        route_handlers=route_handlers,
        # Order matters: lifespans exit in reverse, so the runtime's ordered shutdown
        # (which disposes the engine itself) runs before the database plugin's exit.
        plugins=[SQLAlchemyInitPlugin(db_config), RuntimePlugin(runtime), UsersCLIPlugin(), JobsCLIPlugin()],
        on_app_init=[jwt_auth.on_app_init, _request_id_outermost(request_logging)],
        before_send=[_before_send(request_logging, HttpResponseMetrics(REGISTRATION_ROUTE))],
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
