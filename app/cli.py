"""``litestar users ...`` commands. They run in their own short-lived process, outside the service."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import click
from litestar import Litestar
from litestar.plugins import CLIPlugin
from sqlalchemy.exc import SQLAlchemyError

from app.config import Settings
from app.domain.shared.clock import SystemClock
from app.domain.shared.errors import DomainError
from app.domain.users.model import Role, User
from app.domain.users.service import UserService
from app.infra.db.config import database_config
from app.infra.db.unit_of_work import SessionUnitOfWork
from app.infra.db.users import SqlRefreshTokenStore, SqlUserRepository
from app.infra.security.passwords import Argon2PasswordHasher


async def create_admin_account(settings: Settings, *, email: str, username: str, password: str) -> User:
    """Register an account with the admin role, through the same use case and password policy as the API."""
    config = database_config(settings)
    engine = config.get_engine()
    try:
        async with config.create_session_maker()() as session:
            service = UserService(
                SqlUserRepository(session),
                Argon2PasswordHasher(
                    settings.argon2_time_cost, settings.argon2_memory_cost_kib, settings.argon2_parallelism
                ),
                SqlRefreshTokenStore(session, timedelta(days=settings.refresh_token_ttl_days)),
                SessionUnitOfWork(session),
                SystemClock(),
            )
            return await service.register(email=email, username=username, password=password, role=Role.ADMIN)
    finally:
        await engine.dispose()


def _database_failure(error: SQLAlchemyError | OSError) -> click.ClickException:
    """A short operator-facing message. Never the SQLAlchemy text: it carries the statement's
    parameters, the new admin's password hash among them."""
    reason = getattr(error, "orig", None) or error
    return click.ClickException(
        f"Database error ({type(reason).__name__}): {reason}. "
        "Check DATABASE_URL and that the schema is migrated (litestar database upgrade)."
    )


class UsersCLIPlugin(CLIPlugin):
    def on_cli_init(self, cli: click.Group) -> None:
        @cli.group(name="users", help="Manage user accounts.")
        def users_group() -> None:
            pass

        @users_group.command(name="create-admin", help="Create an admin account (the password is prompted for).")
        @click.option("--email", required=True)
        @click.option("--username", required=True)
        @click.password_option("--password", help="Prompted for when omitted.")
        def create_admin(app: Litestar, email: str, username: str, password: str) -> None:
            settings = app.state["settings"]
            try:
                # A CLI process has no event loop of its own yet, so it starts one here.
                user = asyncio.run(create_admin_account(settings, email=email, username=username, password=password))
            except DomainError as error:
                details = "; ".join(f"{issue.field}: {issue.code}" for issue in error.issues)
                raise click.ClickException(f"{error.message} [{error.code}] {details}".strip()) from None
            except (SQLAlchemyError, OSError) as error:
                raise _database_failure(error) from None
            click.echo(f"created admin {user.username} ({user.id})")
