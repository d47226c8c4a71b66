"""AuthService and UserService against in-memory fakes of their ports (no database, no real hashing)."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from app.domain.shared.errors import Conflict, RateLimited, Unauthenticated, ValidationFailed
from app.domain.users.model import Credentials, NewUser, Principal, ProfileChanges, RefreshTokenRecord, Role, User
from app.domain.users.service import AuthService, LoginLimits, UserService, hash_refresh_token

START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
REFRESH_TTL = timedelta(days=30)
PASSWORD = "Pässwörd€2024"
LIMITS = LoginLimits(per_account=10, per_address=50, window_seconds=300)


# ---------------------------------------------------------------- fakes of the ports


class FakeClock:
    def __init__(self) -> None:
        self.current = START

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta


class FakeUnitOfWork:
    def __init__(self) -> None:
        self.commits = 0
        self.rollbacks = 0

    async def commit(self) -> None:
        self.commits += 1

    async def rollback(self) -> None:
        self.rollbacks += 1


class FakeUsers:
    def __init__(self) -> None:
        self.users: dict[UUID, User] = {}
        self.hashes: dict[UUID, str] = {}
        self.hash_updates: list[tuple[UUID, str]] = []

    async def add(self, new_user: NewUser) -> User:
        if any(u.email == new_user.email for u in self.users.values()):
            raise Conflict("Email is taken.", code="email_taken")
        if any(u.username == new_user.username for u in self.users.values()):
            raise Conflict("Username is taken.", code="username_taken")
        user = User(
            id=uuid.uuid4(),
            email=new_user.email,
            username=new_user.username,
            role=new_user.role,
            display_name=None,
            bio=None,
            is_active=True,
            created_at=START,
            updated_at=START,
        )
        self.users[user.id] = user
        self.hashes[user.id] = new_user.password_hash
        return user

    async def get(self, user_id: UUID) -> User | None:
        return self.users.get(user_id)

    async def get_credentials(self, user_id: UUID) -> Credentials | None:
        user = self.users.get(user_id)
        return None if user is None else Credentials(user=user, password_hash=self.hashes[user_id])

    async def get_credentials_by_email(self, email: str) -> Credentials | None:
        for user in self.users.values():
            if user.email == email:
                return Credentials(user=user, password_hash=self.hashes[user.id])
        return None

    async def update_profile(self, user_id: UUID, changes: ProfileChanges) -> User:
        user = self.users[user_id]
        updated = dataclasses.replace(
            user,
            display_name=changes.display_name if changes.display_name is not None else user.display_name,
            bio=changes.bio if changes.bio is not None else user.bio,
            username=changes.username if changes.username is not None else user.username,
        )
        self.users[user_id] = updated
        return updated

    async def set_password_hash(self, user_id: UUID, password_hash: str) -> None:
        self.hashes[user_id] = password_hash
        self.hash_updates.append((user_id, password_hash))

    async def set_role(self, user_id: UUID, role: Role) -> User | None:
        user = self.users.get(user_id)
        if user is None:
            return None
        self.users[user_id] = dataclasses.replace(user, role=role)
        return self.users[user_id]

    def deactivate(self, user_id: UUID) -> None:
        self.users[user_id] = dataclasses.replace(self.users[user_id], is_active=False)


class FakeHasher:
    """'<params>$<password>': readable, and a change of ``params`` asks for a rehash."""

    def __init__(self, params: str = "v2") -> None:
        self.params = params
        self.verified: list[str] = []
        self.burned: list[str] = []
        self.hashed: list[str] = []

    async def hash(self, password: str) -> str:
        self.hashed.append(password)
        return f"{self.params}${password}"

    async def verify(self, password_hash: str, password: str) -> bool:
        self.verified.append(password)
        return password_hash.partition("$")[2] == password

    def needs_rehash(self, password_hash: str) -> bool:
        return password_hash.partition("$")[0] != self.params

    async def burn_verify_time(self, password: str) -> None:
        self.burned.append(password)


class FakeAccessTokens:
    def issue(self, user: User, now: datetime) -> tuple[str, int]:
        return f"access:{user.id}:{now.isoformat()}", 900


class FakeRefreshTokens:
    def __init__(self) -> None:
        self.records: dict[str, RefreshTokenRecord] = {}

    async def create(self, user_id: UUID, family_id: UUID, token_hash: str, now: datetime) -> None:
        self.records[token_hash] = RefreshTokenRecord(
            user_id=user_id, family_id=family_id, expires_at=now + REFRESH_TTL, used_at=None, revoked_at=None
        )

    async def consume(self, token_hash: str, now: datetime) -> RefreshTokenRecord | None:
        record = self.records.get(token_hash)
        if record is None or record.used_at is not None or record.revoked_at is not None or record.expires_at <= now:
            return None
        self.records[token_hash] = dataclasses.replace(record, used_at=now)
        return self.records[token_hash]

    async def find(self, token_hash: str) -> RefreshTokenRecord | None:
        return self.records.get(token_hash)

    async def revoke_family(self, family_id: UUID, now: datetime) -> None:
        for token_hash, record in self.records.items():
            if record.family_id == family_id and record.revoked_at is None:
                self.records[token_hash] = dataclasses.replace(record, revoked_at=now)

    async def revoke_all_for_user(self, user_id: UUID, now: datetime) -> None:
        for token_hash, record in self.records.items():
            if record.user_id == user_id and record.revoked_at is None:
                self.records[token_hash] = dataclasses.replace(record, revoked_at=now)

    def family_of(self, token: str) -> UUID:
        return self.records[hash_refresh_token(token)].family_id


class FakeRateLimiter:
    def __init__(self) -> None:
        self.waits: dict[str, int] = {}
        self.hits: list[tuple[str, int, int]] = []

    async def hit(self, key: str, limit: int, window_seconds: int) -> int:
        self.hits.append((key, limit, window_seconds))
        return self.waits.get(key, 0)


class World:
    """One set of fakes shared by the two services, as one request's session would be."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.uow = FakeUnitOfWork()
        self.users = FakeUsers()
        self.hasher = FakeHasher()
        self.refresh_tokens = FakeRefreshTokens()
        self.limiter = FakeRateLimiter()
        self.auth = AuthService(
            self.users,
            self.hasher,
            FakeAccessTokens(),
            self.refresh_tokens,
            self.limiter,
            LIMITS,
            self.uow,
            self.clock,
        )
        self.accounts = UserService(self.users, self.hasher, self.refresh_tokens, self.uow, self.clock)

    async def register(self, email: str = "ada@example.com", username: str = "ada", password: str = PASSWORD) -> User:
        return await self.accounts.register(email=email, username=username, password=password)

    async def login(self, email: str = "ada@example.com", password: str = PASSWORD) -> str:
        pair = await self.auth.login(email=email, password=password, client_address="203.0.113.7")
        return pair.refresh_token


@pytest.fixture
async def world() -> World:
    return World()


@pytest.fixture
async def ada(world: World) -> User:
    return await world.register()


# ---------------------------------------------------------------- login


async def test_login_returns_a_token_pair_and_stores_only_the_refresh_token_hash(world: World, ada: User) -> None:
    commits_before = world.uow.commits
    pair = await world.auth.login(email="ada@example.com", password=PASSWORD, client_address="203.0.113.7")

    assert pair.access_token.startswith(f"access:{ada.id}:")
    assert pair.expires_in == 900
    assert pair.token_type == "bearer"
    assert pair.refresh_token not in world.refresh_tokens.records
    assert hash_refresh_token(pair.refresh_token) in world.refresh_tokens.records
    assert world.uow.commits == commits_before + 1


async def test_login_normalises_email_and_password(world: World, ada: User) -> None:
    full_width_password = PASSWORD.replace("2024", "\uff12\uff10\uff12\uff14")  # same after NFKC
    pair = await world.auth.login(
        email="  ADA@Example.COM ", password=full_width_password, client_address="203.0.113.7"
    )
    assert pair.refresh_token
    assert world.hasher.verified[-1] == PASSWORD


async def test_unknown_email_and_wrong_password_give_the_same_error(world: World, ada: User) -> None:
    with pytest.raises(Unauthenticated) as unknown:
        await world.login(email="nobody@example.com")
    assert world.hasher.burned == [PASSWORD]  # timing parity: the unknown path still spends a verify
    assert world.hasher.verified == []

    with pytest.raises(Unauthenticated) as wrong:
        await world.login(password="Wrong€Password99")
    assert world.hasher.burned == [PASSWORD]
    assert world.hasher.verified == ["Wrong€Password99"]

    assert unknown.value.code == wrong.value.code == "invalid_credentials"
    assert unknown.value.message == wrong.value.message
    assert world.refresh_tokens.records == {}


async def test_inactive_user_with_the_right_password_gets_invalid_credentials(world: World, ada: User) -> None:
    world.users.deactivate(ada.id)
    with pytest.raises(Unauthenticated) as excinfo:
        await world.login()
    assert excinfo.value.code == "invalid_credentials"
    assert world.refresh_tokens.records == {}


async def test_login_rehashes_when_the_hash_parameters_changed(world: World, ada: User) -> None:
    world.users.hashes[ada.id] = f"v1${PASSWORD}"  # hashed under the old parameters

    await world.login()

    assert world.users.hash_updates == [(ada.id, f"v2${PASSWORD}")]
    assert world.users.hashes[ada.id] == f"v2${PASSWORD}"


async def test_login_does_not_rehash_a_current_hash(world: World, ada: User) -> None:
    await world.login()
    assert world.users.hash_updates == []


async def test_wrong_password_never_rehashes(world: World, ada: User) -> None:
    world.users.hashes[ada.id] = f"v1${PASSWORD}"
    with pytest.raises(Unauthenticated):
        await world.login(password="Wrong€Password99")
    assert world.users.hash_updates == []


# ---------------------------------------------------------------- rate limits


async def test_login_is_rate_limited_per_account_and_per_address(world: World, ada: User) -> None:
    await world.login(email="ADA@example.com")
    assert world.limiter.hits == [
        ("login:addr:203.0.113.7", LIMITS.per_address, LIMITS.window_seconds),
        ("login:acct:ada@example.com", LIMITS.per_account, LIMITS.window_seconds),
    ]


@pytest.mark.parametrize(
    ("waits", "expected"),
    [
        ({"login:acct:ada@example.com": 42}, 42),
        ({"login:addr:203.0.113.7": 7}, 7),
        ({"login:acct:ada@example.com": 42, "login:addr:203.0.113.7": 120}, 120),
    ],
)
async def test_rate_limited_login_says_when_to_retry(
    world: World, ada: User, waits: dict[str, int], expected: int
) -> None:
    world.limiter.waits = waits
    with pytest.raises(RateLimited) as excinfo:
        await world.login()
    assert excinfo.value.retry_after_seconds == expected
    assert excinfo.value.code == "rate_limited"
    # Refused before any password work.
    assert world.hasher.verified == []
    assert world.hasher.burned == []


# ---------------------------------------------------------------- refresh, reuse detection, logout


async def test_refresh_rotates_the_token_within_its_family(world: World, ada: User) -> None:
    first = await world.login()
    pair = await world.auth.refresh(first)

    assert pair.refresh_token != first
    assert pair.access_token.startswith(f"access:{ada.id}:")
    assert world.refresh_tokens.family_of(pair.refresh_token) == world.refresh_tokens.family_of(first)
    # The new one works in turn.
    third = await world.auth.refresh(pair.refresh_token)
    assert third.refresh_token not in {first, pair.refresh_token}


async def test_each_login_starts_its_own_family(world: World, ada: User) -> None:
    phone = await world.login()
    laptop = await world.login()
    assert world.refresh_tokens.family_of(phone) != world.refresh_tokens.family_of(laptop)


async def test_reusing_a_rotated_token_revokes_the_family_and_the_newer_token_fails(world: World, ada: User) -> None:
    stolen = await world.login()
    other_session = await world.login()
    newer = (await world.auth.refresh(stolen)).refresh_token
    commits = world.uow.commits

    with pytest.raises(Unauthenticated) as reused:
        await world.auth.refresh(stolen)
    assert reused.value.code == "token_reused"
    assert world.uow.commits == commits + 1  # the revocation is kept although the call fails

    with pytest.raises(Unauthenticated) as after:
        await world.auth.refresh(newer)
    assert after.value.code == "invalid_refresh_token"

    # Presenting the stolen token again is just invalid now: the family is already revoked.
    with pytest.raises(Unauthenticated) as again:
        await world.auth.refresh(stolen)
    assert again.value.code == "invalid_refresh_token"

    # Another session of the same user (another family) is untouched.
    assert (await world.auth.refresh(other_session)).refresh_token


async def test_unknown_refresh_token_is_invalid(world: World, ada: User) -> None:
    with pytest.raises(Unauthenticated) as excinfo:
        await world.auth.refresh("not-a-token")
    assert excinfo.value.code == "invalid_refresh_token"


async def test_expired_refresh_token_is_invalid(world: World, ada: User) -> None:
    token = await world.login()
    world.clock.advance(REFRESH_TTL + timedelta(seconds=1))
    with pytest.raises(Unauthenticated) as excinfo:
        await world.auth.refresh(token)
    assert excinfo.value.code == "invalid_refresh_token"


async def test_refresh_of_a_deactivated_user_fails_and_revokes_the_family(world: World, ada: User) -> None:
    token = await world.login()
    world.users.deactivate(ada.id)
    with pytest.raises(Unauthenticated) as excinfo:
        await world.auth.refresh(token)
    assert excinfo.value.code == "invalid_refresh_token"
    assert all(r.revoked_at is not None for r in world.refresh_tokens.records.values())


async def test_logout_revokes_the_family(world: World, ada: User) -> None:
    first = await world.login()
    current = (await world.auth.refresh(first)).refresh_token

    await world.auth.logout(current)

    for token in (first, current):
        with pytest.raises(Unauthenticated) as excinfo:
            await world.auth.refresh(token)
        assert excinfo.value.code == "invalid_refresh_token"
    assert all(r.revoked_at == START for r in world.refresh_tokens.records.values())


async def test_logout_is_idempotent_and_silent_about_unknown_tokens(world: World, ada: User) -> None:
    token = await world.login()
    await world.auth.logout(token)
    await world.auth.logout(token)
    await world.auth.logout("never-issued")


# ---------------------------------------------------------------- registration and passwords


async def test_register_normalises_and_hashes_the_nfkc_password(world: World) -> None:
    user = await world.accounts.register(
        email="  Grace@Example.COM ", username="grace", password=PASSWORD.replace("2", "\uff12")
    )
    assert user.email == "grace@example.com"
    assert user.role is Role.USER
    assert world.users.hashes[user.id] == f"v2${PASSWORD}"
    assert world.uow.commits == 1


async def test_register_reports_every_broken_rule_of_every_field_at_once(world: World) -> None:
    with pytest.raises(ValidationFailed) as excinfo:
        await world.accounts.register(email="not-an-email", username="x", password="abc")

    issues = {(issue.field, issue.code) for issue in excinfo.value.issues}
    assert issues == {
        ("email", "invalid_email"),
        ("username", "invalid_username"),
        ("password", "too_short"),
        ("password", "missing_digit"),
        ("password", "missing_special"),
    }
    assert excinfo.value.code == "validation_failed"
    assert world.users.users == {}
    assert world.uow.commits == 0


async def test_register_refuses_a_password_containing_the_username_or_email(world: World) -> None:
    with pytest.raises(ValidationFailed) as excinfo:
        await world.accounts.register(email="kowalski@example.com", username="maria_k", password="MARIA_K-kowalski7")
    assert {issue.code for issue in excinfo.value.issues} == {"contains_username", "contains_email"}


async def test_register_with_an_invitation_code_but_no_redeemer_is_refused(world: World) -> None:
    with pytest.raises(ValidationFailed) as excinfo:
        await world.accounts.register(
            email="ada@example.com", username="ada", password=PASSWORD, invitation_code="WELCOME-2025"
        )
    assert [(i.field, i.code) for i in excinfo.value.issues] == [("invitation_code", "invalid_invitation_code")]
    assert world.users.users == {}


async def test_register_redeems_the_invitation_code_in_the_same_transaction(world: World) -> None:
    redeemed: list[tuple[str, UUID, int]] = []

    async def redeem(code: str, user: User) -> None:
        redeemed.append((code, user.id, world.uow.commits))

    accounts = UserService(world.users, world.hasher, world.refresh_tokens, world.uow, world.clock, redeem)
    user = await accounts.register(email="ada@example.com", username="ada", password=PASSWORD, invitation_code="WELC")
    assert redeemed == [("WELC", user.id, 0)]  # before the commit
    assert world.uow.commits == 1


async def test_register_duplicate_email_is_a_conflict(world: World, ada: User) -> None:
    with pytest.raises(Conflict) as excinfo:
        await world.register(email="ADA@example.com", username="ada2")
    assert excinfo.value.code == "email_taken"


async def test_change_password_applies_the_policy_and_signs_out_every_session(world: World, ada: User) -> None:
    token = await world.login()
    actor = Principal.of(ada)

    with pytest.raises(ValidationFailed) as weak:
        await world.accounts.change_password(actor, current_password=PASSWORD, new_password="abc")
    assert {i.field for i in weak.value.issues} == {"new_password"}
    assert {i.code for i in weak.value.issues} == {"too_short", "missing_digit", "missing_special"}

    with pytest.raises(ValidationFailed) as wrong:
        await world.accounts.change_password(actor, current_password="Wrong€Password99", new_password="yen¥Secret99")
    assert [i.code for i in wrong.value.issues] == ["wrong_password"]

    await world.accounts.change_password(actor, current_password=PASSWORD, new_password="yen¥Secret99")
    assert world.users.hashes[ada.id] == "v2$yen¥Secret99"
    with pytest.raises(Unauthenticated):
        await world.auth.refresh(token)
    assert await world.login(password="yen¥Secret99")
