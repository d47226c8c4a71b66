"""``litestar jobs ...`` commands: list the catalogue, run one job now in this process.

A manual run goes through the same runner as the scheduled ones (overlap guard,
time limit, logs), against the configured database; with Redis configured it
takes the same per-job lock as the workers, so it never overlaps a scheduled run.
"""

from __future__ import annotations

import asyncio

import click
from litestar import Litestar
from litestar.plugins import CLIPlugin
from sqlalchemy.exc import SQLAlchemyError

from app.composition import job_catalogue, run_job_once
from app.config import Settings
from app.domain.jobs.catalogue import UnknownJob, job_named
from app.domain.jobs.model import JobOutcome, describe


class JobsCLIPlugin(CLIPlugin):
    def on_cli_init(self, cli: click.Group) -> None:
        @cli.group(name="jobs", help="Periodic jobs: list them, run one by hand.")
        def jobs_group() -> None:
            pass

        @jobs_group.command(name="list", help="List the jobs with their cadence, time limit and use case.")
        def list_jobs(app: Litestar) -> None:
            settings: Settings = app.state["settings"]
            for job in job_catalogue(settings):
                click.echo(f"{job.name:<24} {describe(job.cadence):<14} {job.timeout_seconds:>6.0f} s  {job.calls}")
            click.echo(f"(daily times in {settings.jobs_timezone})")

        @jobs_group.command(name="run", help="Run one job now, in this process, until its work is done.")
        @click.argument("name")
        def run_job(app: Litestar, name: str) -> None:
            settings: Settings = app.state["settings"]
            try:
                job_named(name, job_catalogue(settings))
            except UnknownJob as error:
                raise click.BadParameter(str(error), param_hint="NAME") from None
            try:
                # A CLI process has no event loop of its own yet, so it starts one here.
                outcome = asyncio.run(run_job_once(settings, name))
            except (SQLAlchemyError, OSError) as error:
                reason = getattr(error, "orig", None) or error
                raise click.ClickException(f"Database error ({type(reason).__name__}): {reason}") from None
            click.echo(f"{name}: {outcome.value}")
            if outcome is not JobOutcome.SUCCESS:
                raise click.exceptions.Exit(1)
