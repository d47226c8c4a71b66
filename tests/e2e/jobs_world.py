"""Due work for every periodic job, seeded through the app's own use cases, and what the jobs must leave behind.

``seed_world`` runs the domain services (wired by ``app.composition.job_scope``, as the workers wire them)
with a clock the seeding moves back in time, so coupons, points, invitation codes, tasks, activities and
support chats are created the way users create them and are due by now. ``unmet`` reads the database and lists every
expected effect of the jobs that is not there (yet), including the "exactly once" ones; ``unmet_stats``
does the same for the user statistics.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from app.composition import job_scope
from app.domain.activities.model import ActivityDraft
from app.domain.activities.service import ActivityView
from app.domain.coupons.model import CouponKind, CouponValidity, TemplateDraft
from app.domain.experts.model import ExpertDraft
from app.domain.jobs.ports import JobServices
from app.domain.points.model import PointTransaction, TransactionFilter, TransactionKind
from app.domain.shared.events import DiscardEvents
from app.domain.support.model import AgentStatus
from app.domain.tasks.model import TaskDraft
from app.domain.users.model import Principal, Role
from app.infra.db.tables import UserRecord
from tests.support import make_settings, user_row

T = TypeVar("T")

ADMIN = Principal(id=uuid.uuid4(), username="root", role=Role.ADMIN)
POSTER_GRANT = 1000
EXPIRED_TASK_REWARD, DISCOUNT = 200, 30
OPEN_TASK_REWARD = 100
DONE_TASK_REWARD = 150
ACTIVITY_REWARD = 25
LAPSED_LOTS = (40, 15, 25)  # the points of each lot that is due by now (two users, three lots)
EXPERT_BIO = "I assemble furniture."
_UNSET = uuid.UUID(int=0)  # until seeded


class MovableClock:
    def __init__(self, now: datetime) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current


@dataclass
class World:
    """The ids of what was seeded; ``users`` maps every seeded user to a readable name."""

    poster: uuid.UUID
    taker: uuid.UUID
    creator: uuid.UUID
    agent: uuid.UUID
    chatter: uuid.UUID
    archived_user: uuid.UUID
    silent_user: uuid.UUID
    inviter: uuid.UUID
    participants: tuple[uuid.UUID, ...]
    lapsed: tuple[uuid.UUID, uuid.UUID]
    users: dict[uuid.UUID, str] = field(default_factory=dict)
    due_lots: dict[uuid.UUID, int] = field(default_factory=dict)  # lot -> the points it held
    due_template: uuid.UUID = _UNSET
    discount_template: uuid.UUID = _UNSET
    open_template: uuid.UUID = _UNSET
    due_coupon: uuid.UUID = _UNSET
    discount_coupon: uuid.UUID = _UNSET
    kept_coupon: uuid.UUID = _UNSET
    expired_task: uuid.UUID = _UNSET
    open_task: uuid.UUID = _UNSET
    done_task: uuid.UUID = _UNSET
    ended_activity: uuid.UUID = _UNSET
    running_activity: uuid.UUID = _UNSET
    due_code: uuid.UUID = _UNSET
    kept_code: uuid.UUID = _UNSET
    chat: uuid.UUID = _UNSET
    old_chat: uuid.UUID = _UNSET
    silent_chat: uuid.UUID = _UNSET


class _Seeder:
    def __init__(self, engine: AsyncEngine, database_url: str, clock: MovableClock) -> None:
        self.engine = engine
        self.clock = clock
        self._scope = job_scope(
            make_settings(database_url),
            async_sessionmaker(engine, expire_on_commit=False),
            clock,
            None,
            DiscardEvents(),
        )

    async def call(self, action: Callable[[JobServices], Awaitable[T]]) -> T:
        """One use case in its own unit of work (each commits what it did)."""
        async with self._scope() as services:
            return await action(services)

    async def users(self, names: dict[str, Role]) -> dict[str, uuid.UUID]:
        now = self.clock.now()
        rows = [user_row(f"{name}{uuid.uuid4().hex[:8]}", role, now) for name, role in names.items()]
        async with self.engine.begin() as connection:
            await connection.execute(insert(UserRecord), rows)
        return {name: row["id"] for name, row in zip(names, rows, strict=True)}


@asynccontextmanager
async def _engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url, pool_size=2, max_overflow=0)
    try:
        yield engine
    finally:
        await engine.dispose()


async def seed_world(database_url: str) -> World:
    """Due work for each of the nine jobs (and a not-yet-due twin of most of it, which must stay as it is)."""
    now = datetime.now(UTC)
    clock = MovableClock(now - timedelta(days=2))
    async with _engine(database_url) as engine:
        seed = _Seeder(engine, database_url, clock)
        names = {
            "poster": Role.USER,
            "taker": Role.USER,
            "creator": Role.EXPERT,
            "agent": Role.AGENT,
            "chatter": Role.USER,
            "archived": Role.USER,
            "silent": Role.USER,
            "inviter": Role.USER,
            "fan1": Role.USER,
            "fan2": Role.USER,
            "fan3": Role.USER,
            "lapsed1": Role.USER,
            "lapsed2": Role.USER,
        }
        ids = await seed.users(names)
        world = World(
            poster=ids["poster"],
            taker=ids["taker"],
            creator=ids["creator"],
            agent=ids["agent"],
            chatter=ids["chatter"],
            archived_user=ids["archived"],
            silent_user=ids["silent"],
            inviter=ids["inviter"],
            participants=(ids["fan1"], ids["fan2"], ids["fan3"]),
            lapsed=(ids["lapsed1"], ids["lapsed2"]),
            users={user_id: name for name, user_id in ids.items()},
        )

        # two days ago: points granted for one day (due since yesterday)
        for number, (owner, amount) in enumerate(zip((*world.lapsed, world.lapsed[0]), LAPSED_LOTS, strict=True)):
            await seed.call(partial(_grant_for_a_day, owner=owner, amount=amount, key=f"lapsed-{number}"))
        async with engine.connect() as connection:
            rows = await connection.execute(
                text("SELECT id, amount FROM point_lots WHERE user_id = ANY(:users)"), {"users": list(world.lapsed)}
            )
            world.due_lots = {row.id: row.amount for row in rows}
        assert sorted(world.due_lots.values()) == sorted(LAPSED_LOTS)

        clock.current = now - timedelta(hours=3)
        await _seed_coupons_and_tasks(seed, world, now)
        await _seed_activities_and_codes(seed, world, now)
        await _seed_chats(seed, world, now)
    return world


async def _seed_chats(seed: _Seeder, world: World, now: datetime) -> None:
    """A chat closed 100 days ago, one silent for ten days, and, now, an online agent and a waiting chat."""
    archived = Principal(world.archived_user, "archived", Role.USER)
    seed.clock.current = now - timedelta(days=100)
    old = await seed.call(lambda s: s.support.open_chat(archived, "Order", "Where is my order?"))
    await seed.call(lambda s: s.support.close_chat(archived, old.id))
    world.old_chat = old.id
    silent = Principal(world.silent_user, "silent", Role.USER)
    seed.clock.current = now - timedelta(days=10)
    world.silent_chat = (await seed.call(lambda s: s.support.open_chat(silent, "Hello", "Anyone there?"))).id

    seed.clock.current = now
    agent = Principal(world.agent, "agent", Role.AGENT)
    await seed.call(lambda s: s.support.set_agent_status(agent, AgentStatus.ONLINE))
    chatter = Principal(world.chatter, "chatter", Role.USER)
    world.chat = (await seed.call(lambda s: s.support.open_chat(chatter, "Points", "Where did my points go?"))).id


async def _grant_for_a_day(services: JobServices, *, owner: uuid.UUID, amount: int, key: str) -> PointTransaction:
    return await services.points.admin_grant(
        ADMIN, owner, amount, reason="promotion", idempotency_key=key, expires_in_days=1
    )


async def _join(services: JobServices, *, user_id: uuid.UUID, activity_id: uuid.UUID) -> ActivityView:
    return await services.activities.join(Principal(user_id, "fan", Role.USER), activity_id)


async def _ledger_page(
    services: JobServices, *, user_id: uuid.UUID, filters: TransactionFilter
) -> tuple[list[PointTransaction], int]:
    return await services.points.transactions(user_id, filters, 50, 0)


async def _seed_coupons_and_tasks(seed: _Seeder, world: World, now: datetime) -> None:
    """Three hours ago: coupons (one due by now), tasks (one past its deadline, with a discount coupon)."""
    then = seed.clock.now()
    poster = Principal(world.poster, "poster", Role.USER)
    await seed.call(
        lambda s: s.points.admin_grant(ADMIN, world.poster, POSTER_GRANT, reason="welcome", idempotency_key="poster")
    )

    def template(name: str, kind: CouponKind, value: int, until: datetime, validity: CouponValidity) -> TemplateDraft:
        return TemplateDraft(
            name=name,
            kind=kind,
            value=value,
            total_quantity=10,
            per_user_limit=1,
            valid_from=then - timedelta(days=1),
            valid_until=until,
            validity=validity,
            min_reward=100 if kind is CouponKind.TASK_DISCOUNT else None,
        )

    # claimable until two hours ago, each coupon valid until an hour ago
    due = template(
        "Spring bonus",
        CouponKind.POINTS_BONUS,
        20,
        then + timedelta(hours=1),
        CouponValidity(then + timedelta(hours=2)),
    )
    discount = template(
        "Task discount", CouponKind.TASK_DISCOUNT, DISCOUNT, now + timedelta(days=7), CouponValidity(days=30)
    )
    kept = template("Summer bonus", CouponKind.POINTS_BONUS, 10, now + timedelta(days=7), CouponValidity(days=30))
    world.due_template = (await seed.call(lambda s: s.coupons.create_template(ADMIN, due))).id
    world.discount_template = (await seed.call(lambda s: s.coupons.create_template(ADMIN, discount))).id
    world.open_template = (await seed.call(lambda s: s.coupons.create_template(ADMIN, kept))).id
    world.due_coupon = (await seed.call(lambda s: s.coupons.claim(world.poster, world.due_template))).id
    world.discount_coupon = (await seed.call(lambda s: s.coupons.claim(world.poster, world.discount_template))).id
    world.kept_coupon = (await seed.call(lambda s: s.coupons.claim(world.taker, world.open_template))).id

    def task(title: str, category: str, reward: int, deadline: datetime, coupon: uuid.UUID | None = None) -> TaskDraft:
        return TaskDraft(title, "Details follow.", category, reward, deadline, coupon)

    expired = task("Walk the dog", "errands", EXPIRED_TASK_REWARD, then + timedelta(minutes=30), world.discount_coupon)
    world.expired_task = (await seed.call(lambda s: s.tasks.post(world.poster, expired))).id
    still_open = task("Paint a fence", "garden", OPEN_TASK_REWARD, now + timedelta(days=2))
    world.open_task = (await seed.call(lambda s: s.tasks.post(world.poster, still_open))).id
    done = task("Assemble a bookshelf", "furniture", DONE_TASK_REWARD, now + timedelta(days=1))
    world.done_task = (await seed.call(lambda s: s.tasks.post(world.poster, done))).id
    taker = Principal(world.taker, "taker", Role.USER)
    await seed.call(lambda s: s.tasks.take(taker, world.done_task))
    await seed.call(lambda s: s.tasks.complete(poster, world.done_task, rating=5))
    profile = ExpertDraft(skills=("assembly",), categories=("furniture",), bio=EXPERT_BIO)
    await seed.call(lambda s: s.experts.create(world.taker, profile))


async def _seed_activities_and_codes(seed: _Seeder, world: World, now: datetime) -> None:
    """Three hours ago: an activity that ended two hours ago and one still running; invitation codes."""
    then = seed.clock.now()
    creator = Principal(world.creator, "creator", Role.EXPERT)

    def activity(title: str, ends_at: datetime) -> ActivityDraft:
        return ActivityDraft(title, "Bring gloves.", then + timedelta(minutes=10), ends_at, 10, ACTIVITY_REWARD)

    ended = activity("Park clean-up", then + timedelta(hours=1))
    world.ended_activity = (await seed.call(lambda s: s.activities.create(creator, ended))).activity.id
    running = activity("Beach clean-up", now + timedelta(hours=1))
    world.running_activity = (await seed.call(lambda s: s.activities.create(creator, running))).activity.id
    for user_id in world.participants:
        await seed.call(partial(_join, user_id=user_id, activity_id=world.ended_activity))
    await seed.call(partial(_join, user_id=world.participants[0], activity_id=world.running_activity))

    inviter = Principal(world.inviter, "inviter", Role.USER)
    due = await seed.call(lambda s: s.invitations.create(inviter, max_uses=3, expires_at=then + timedelta(hours=1)))
    kept = await seed.call(lambda s: s.invitations.create(inviter, max_uses=3, expires_at=None))
    world.due_code, world.kept_code = due.invitation.id, kept.invitation.id


# --- what the jobs must leave -----------------------------------------------------------------------------


async def unmet(database_url: str, world: World) -> list[str]:
    """Every expected effect of the jobs (but the statistics) that the database does not show."""
    problems: list[str] = []
    async with _engine(database_url) as engine, engine.connect() as db:

        async def one(sql: str, **params: Any) -> Any:
            return (await db.execute(text(sql), params)).one()

        async def scalar(sql: str, **params: Any) -> Any:
            return (await db.execute(text(sql), params)).scalar_one()

        def expect(what: str, actual: object, wanted: object) -> None:
            if actual != wanted:
                problems.append(f"{what}: {actual!r}, expected {wanted!r}")

        # expire-coupons: the due coupon expired and its template closed; the others untouched
        row = await one(
            "SELECT status, expired_at IS NOT NULL AS stamped FROM coupons WHERE id = :id", id=world.due_coupon
        )
        expect("due coupon", (row.status, row.stamped), ("expired", True))
        row = await one(
            "SELECT status, closed_at IS NOT NULL AS stamped FROM coupon_templates WHERE id = :id",
            id=world.due_template,
        )
        expect("template past valid_until", (row.status, row.stamped), ("closed", True))
        expect(
            "coupon not due", await scalar("SELECT status FROM coupons WHERE id = :id", id=world.kept_coupon), "claimed"
        )
        expect(
            "templates still open",
            await scalar(
                "SELECT count(*) FROM coupon_templates WHERE id IN (:a, :b) AND status = 'active'",
                a=world.discount_template,
                b=world.open_template,
            ),
            2,
        )

        # expire-points: each due lot emptied once, what it held recorded as its expire entry
        rows = (
            await db.execute(
                text("SELECT id, remaining, expired_amount, expired_at FROM point_lots WHERE id = ANY(:ids)"),
                {"ids": list(world.due_lots)},
            )
        ).all()
        for lot in rows:
            expect(
                f"due lot {lot.id}",
                (lot.remaining, lot.expired_amount, lot.expired_at is not None),
                (0, world.due_lots[lot.id], True),
            )
        expect(
            "expire rows in point_transactions",
            await scalar("SELECT count(*) FROM point_transactions WHERE kind = 'expire'"),
            0,
        )
        expect(
            "lots expired that were not due",
            await scalar(
                "SELECT count(*) FROM point_lots WHERE expired_at IS NOT NULL AND NOT (id = ANY(:ids))",
                ids=list(world.due_lots),
            ),
            0,
        )

        # expire-invitations
        row = await one(
            "SELECT status, closed_at IS NOT NULL AS stamped FROM invitation_codes WHERE id = :id", id=world.due_code
        )
        expect("due invitation code", (row.status, row.stamped), ("expired", True))
        expect(
            "code not due",
            await scalar("SELECT status FROM invitation_codes WHERE id = :id", id=world.kept_code),
            "active",
        )

        # cancel-expired-tasks: cancelled as expired, its hold released once, its coupon usable again,
        # the poster told once
        row = await one(
            "SELECT t.status, t.cancel_reason, t.cancelled_at IS NOT NULL AS stamped, h.status AS hold"
            " FROM tasks t JOIN point_holds h ON h.id = t.hold_id WHERE t.id = :id",
            id=world.expired_task,
        )
        expect(
            "task past its deadline",
            (row.status, row.cancel_reason, row.stamped, row.hold),
            ("cancelled", "expired", True, "released"),
        )
        released = (
            (
                await db.execute(
                    text(
                        "SELECT x.amount FROM point_transactions x JOIN tasks t ON t.hold_id = x.hold_id"
                        " WHERE t.id = :id AND x.kind = 'release'"
                    ),
                    {"id": world.expired_task},
                )
            )
            .scalars()
            .all()
        )
        expect("release entries of the expired task's hold", list(released), [EXPIRED_TASK_REWARD - DISCOUNT])
        row = await one("SELECT status, used_at, task_id FROM coupons WHERE id = :id", id=world.discount_coupon)
        expect("discount coupon of the expired task", (row.status, row.used_at, row.task_id), ("claimed", None, None))
        row = await one(
            "SELECT t.status, h.status AS hold FROM tasks t JOIN point_holds h ON h.id = t.hold_id WHERE t.id = :id",
            id=world.open_task,
        )
        expect("task not due", (row.status, row.hold), ("open", "held"))
        expect(
            "task_expired notifications of the poster",
            await scalar(
                "SELECT count(*) FROM notifications WHERE user_id = :u AND kind = 'task_expired'", u=world.poster
            ),
            1,
        )

        # end-activities: ended once, each participant credited once and told once; the running one untouched
        row = await one(
            "SELECT state, ended_at IS NOT NULL AS ended, rewards_paid_at IS NOT NULL AS paid"
            " FROM activities WHERE id = :id",
            id=world.ended_activity,
        )
        expect("ended activity", (row.state, row.ended, row.paid), ("ended", True, True))
        expect(
            "running activity",
            await scalar("SELECT state FROM activities WHERE id = :id", id=world.running_activity),
            "scheduled",
        )
        for user_id in world.participants:
            credits = (
                await db.execute(
                    text(
                        "SELECT kind, amount FROM point_transactions"
                        " WHERE user_id = :u AND idempotency_key LIKE 'activity-reward:%'"
                    ),
                    {"u": user_id},
                )
            ).all()
            expect(
                f"activity credits of {world.users[user_id]}",
                [tuple(credit) for credit in credits],
                [("earn", ACTIVITY_REWARD)],
            )
            expect(
                f"activity_ended notifications of {world.users[user_id]}",
                await scalar(
                    "SELECT count(*) FROM notifications WHERE user_id = :u AND kind = 'activity_ended'", u=user_id
                ),
                1,
            )
        expect(
            "unrewarded participants of the ended activity",
            await scalar(
                "SELECT count(*) FROM activity_participants WHERE activity_id = :a AND rewarded_at IS NULL",
                a=world.ended_activity,
            ),
            0,
        )

        # refresh-expert-bios: figures and auto bio from the completed task, the own bio untouched
        row = await one(
            "SELECT completed_count, average_rating, auto_bio, bio FROM experts WHERE user_id = :u", u=world.taker
        )
        expect(
            "expert profile",
            tuple(row),
            (1, 5.0, "1 task completed · average rating 5.0 · mostly furniture", EXPERT_BIO),
        )

        # support-assignment: the waiting chat went to the online agent
        row = await one(
            "SELECT status, agent_id, assigned_at IS NOT NULL AS stamped FROM support_chats WHERE id = :id",
            id=world.chat,
        )
        expect("waiting chat", (row.status, row.agent_id, row.stamped), ("assigned", world.agent, True))

        # cleanup-support-chats: the silent chat closed as inactive (with a system message), the one closed
        # past the retention period deleted with its messages
        row = await one(
            "SELECT c.status, c.close_reason, count(m.id) FILTER (WHERE m.sender_role = 'system') AS notes"
            " FROM support_chats c LEFT JOIN support_messages m ON m.chat_id = c.id WHERE c.id = :id"
            " GROUP BY c.status, c.close_reason",
            id=world.silent_chat,
        )
        expect("chat silent for ten days", tuple(row), ("closed", "inactive", 1))
        left = await one(
            "SELECT (SELECT count(*) FROM support_chats WHERE id = :id) AS chats,"
            " (SELECT count(*) FROM support_messages WHERE chat_id = :id) AS messages",
            id=world.old_chat,
        )
        expect("chat closed 100 days ago (rows left)", tuple(left), (0, 0))

    problems.extend(await _ledger_problems(database_url, world))
    return problems


async def _ledger_problems(database_url: str, world: World) -> list[str]:
    """The points as the app's own ledger reports them: one expire entry per due lot, balances after the jobs."""
    problems: list[str] = []
    async with _engine(database_url) as engine:
        seed = _Seeder(engine, database_url, MovableClock(datetime.now(UTC)))
        expire = TransactionFilter(kinds=frozenset({TransactionKind.EXPIRE}))
        entries: dict[uuid.UUID, list[int]] = {}
        for user_id in world.lapsed:
            listed, _total = await seed.call(partial(_ledger_page, user_id=user_id, filters=expire))
            for entry in listed:
                entries.setdefault(entry.id, []).append(entry.amount)
        wanted = {lot: [-amount] for lot, amount in world.due_lots.items()}
        if entries != wanted:
            problems.append(f"expire entries of the ledger: {entries!r}, expected {wanted!r}")
        balances = {name: await _balance(seed, user_id) for user_id, name in world.users.items()}
        expected = expected_balances(world)
        if balances != expected:
            problems.append(f"balances: {balances!r}, expected {expected!r}")
    return problems


async def _balance(seed: _Seeder, user_id: uuid.UUID) -> int:
    return (await seed.call(lambda s: s.points.summary(user_id))).balance


def expected_balances(world: World) -> dict[str, int]:
    """Every seeded user's balance once the jobs ran."""
    balances = dict.fromkeys(world.users.values(), 0)
    # the expired task's hold came back; the open task's is still held; the done task's went to the taker
    balances["poster"] = POSTER_GRANT - OPEN_TASK_REWARD - DONE_TASK_REWARD
    balances["taker"] = DONE_TASK_REWARD
    for user_id in world.participants:
        balances[world.users[user_id]] = ACTIVITY_REWARD
    return balances


async def stats_computed_after(database_url: str, moment: datetime) -> bool:
    """Whether every user's statistics row was computed after ``moment``."""
    async with _engine(database_url) as engine, engine.connect() as db:
        row = (
            await db.execute(
                text(
                    "SELECT (SELECT count(*) FROM users) AS users,"
                    " (SELECT count(*) FROM user_stats WHERE computed_at > :moment) AS fresh"
                ),
                {"moment": moment},
            )
        ).one()
    return bool(row.users == row.fresh)


async def unmet_stats(database_url: str, world: World) -> list[str]:
    """The stored statistics of the seeded users that differ from what they must be after every other job."""
    balances = expected_balances(world)
    expected: dict[str, tuple[object, ...]] = {
        # posted, taken, completed, completion rate, ratings, average rating, activities joined, balance
        name: (0, 0, 0, None, 0, None, 0, balances[name])
        for name in world.users.values()
    }
    expected["poster"] = (3, 0, 0, None, 0, None, 0, balances["poster"])
    expected["taker"] = (0, 1, 1, 1.0, 1, 5.0, 0, balances["taker"])
    for number, user_id in enumerate(world.participants):
        expected[world.users[user_id]] = (0, 0, 0, None, 0, None, 2 if number == 0 else 1, ACTIVITY_REWARD)
    async with _engine(database_url) as engine, engine.connect() as db:
        rows = await db.execute(
            text(
                "SELECT user_id, tasks_posted, tasks_taken, tasks_completed, completion_rate, ratings_count,"
                " average_rating, activities_joined, points_balance FROM user_stats"
            )
        )
        stored = {world.users.get(row.user_id, str(row.user_id)): tuple(row)[1:] for row in rows}
    return [
        f"statistics of {name}: {stored.get(name)!r}, expected {figures!r}"
        for name, figures in expected.items()
        if stored.get(name) != figures
    ]
