"""Helpers of the job tests: taskiq scheduler and worker processes, seeded due rows, metrics scraping."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

import asyncpg
import httpx

from tests.e2e.helpers import _INHERITED_SETTINGS, BASE_ENV, HOST, free_port
from tests.support import BIN, ROOT, asyncpg_url

# Processes import the whole app: on a busy 2-core machine that alone can take 15 s.
START_LIMIT_SECONDS = 60.0
WAIT_TASKS_SECONDS = 5
SHUTDOWN_SECONDS = 10


@dataclass
class JobProcess:
    """A ``taskiq scheduler`` or ``taskiq worker`` process with its output in a file."""

    process: subprocess.Popen[bytes]
    log_path: Path
    metrics_port: int
    _log_file: IO[bytes] = field(repr=False)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def send_signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def kill_group(self) -> None:
        """SIGKILL the process and its children (a worker's main process and its worker process)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    async def wait_exit(self, limit_seconds: float) -> int | None:
        deadline = time.monotonic() + limit_seconds
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                return code
            await asyncio.sleep(0.05)
        return self.process.poll()

    async def wait_log(self, fragment: str, limit_seconds: float = START_LIMIT_SECONDS, count: int = 1) -> None:
        deadline = time.monotonic() + limit_seconds
        while time.monotonic() < deadline:
            if self.log().count(fragment) >= count:
                return
            if self.process.poll() is not None:
                raise AssertionError(f"exited with {self.process.returncode} before {fragment!r}:\n{self.log()}")
            await asyncio.sleep(0.2)
        raise AssertionError(f"{fragment!r} not logged within {limit_seconds} s:\n{self.log()[-5000:]}")

    async def metrics(self) -> str:
        async with httpx.AsyncClient(timeout=5) as client:
            return (await client.get(f"http://{HOST}:{self.metrics_port}/metrics")).text

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self._log_file.close()


def job_env(database_url: str, redis_url: str | None, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not _INHERITED_SETTINGS.match(key)}
    env = {key: value for key, value in env.items() if not key.startswith("JOBS_")}
    env.update(BASE_ENV)
    env["DATABASE_URL"] = database_url
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    env.update({"JOBS_HEARTBEAT_INTERVAL_SECONDS": "1", **extra})
    return env


def _start(command: list[str], env: Mapping[str, str], log_path: Path) -> JobProcess:
    port = free_port()
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**env, "JOBS_METRICS_PORT": str(port)},
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the test can signal a worker with its children
    )
    return JobProcess(process, log_path, port, log_file)


def start_scheduler(env: Mapping[str, str], log_path: Path) -> JobProcess:
    command = [str(BIN / "taskiq"), "scheduler", "app.composition:job_scheduler", "--no-configure-logging"]
    return _start(command, env, log_path)


def start_worker(env: Mapping[str, str], log_path: Path) -> JobProcess:
    command = [
        str(BIN / "taskiq"),
        "worker",
        "app.composition:worker_broker",
        "--workers",
        "1",
        "--no-configure-logging",
        "--wait-tasks-timeout",
        str(WAIT_TASKS_SECONDS),
        "--shutdown-timeout",
        str(SHUTDOWN_SECONDS),
    ]
    return _start(command, env, log_path)


async def scrape(processes: Sequence[JobProcess]) -> str:
    """The metrics of ``processes`` as one text (``counter`` then sums a counter over them).

    A process whose endpoint does not answer right now (a worker's child being restarted) adds nothing.
    """
    texts = []
    for process in processes:
        with contextlib.suppress(httpx.TransportError):
            texts.append(await process.metrics())
    return "\n".join(texts)


async def eventually(
    problems: Callable[[], Awaitable[list[str]]],
    limit_seconds: float,
    *,
    alive: Sequence[JobProcess] = (),
    interval: float = 0.5,
) -> None:
    """Wait until ``problems()`` comes back empty; fail with what is left after ``limit_seconds``, or as soon as
    one of ``alive`` exits."""
    deadline = time.monotonic() + limit_seconds
    while True:
        found = await problems()
        if not found:
            return
        for process in alive:
            if process.process.poll() is not None:
                raise AssertionError(f"exited with {process.process.returncode}:\n{process.log()[-5000:]}")
        if time.monotonic() >= deadline:
            raise AssertionError(f"still not so after {limit_seconds} s:\n" + "\n".join(found))
        await asyncio.sleep(interval)


def counter(metrics_text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in metrics_text.splitlines():
        match = re.match(rf"^{re.escape(name)}\{{(.*)\}} ([0-9.e+-]+)$", line)
        if not match:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
        if all(found.get(key) == value for key, value in labels.items()):
            total += float(match.group(2))
    return total


async def seed_due_point_lots(database_url: str, users: int, lots_per_user: int, amount: int = 10) -> list[uuid.UUID]:
    """Users with lots that expired a minute ago (each still holding ``amount`` points)."""
    connection = await asyncpg.connect(asyncpg_url(database_url))
    now = datetime.now(UTC)
    try:
        user_ids = [uuid.uuid4() for _ in range(users)]
        await connection.executemany(
            "INSERT INTO users (id, email, username, username_key, password_hash, role, is_active,"
            " created_at, updated_at)"
            " VALUES ($1, $2, $3, $3, 'x', 'user', true, $4, $4)",
            [(uid, f"{uid.hex}@example.com", uid.hex[:20], now) for uid in user_ids],
        )
        await connection.copy_records_to_table(
            "point_lots",
            columns=["id", "user_id", "amount", "remaining", "expires_at", "created_at"],
            records=[
                (uuid.uuid4(), uid, amount, amount, now - timedelta(minutes=1), now - timedelta(days=30))
                for uid in user_ids
                for _ in range(lots_per_user)
            ],
        )
        return user_ids
    finally:
        await connection.close()


async def point_lot_state(database_url: str) -> tuple[int, int, int]:
    """(lots still holding points, lots expired, points expired) over the whole table."""
    connection = await asyncpg.connect(asyncpg_url(database_url))
    try:
        row = await connection.fetchrow(
            "SELECT count(*) FILTER (WHERE remaining > 0) AS live, count(expired_at) AS expired,"
            " coalesce(sum(expired_amount), 0) AS points FROM point_lots"
        )
        assert row is not None
        return int(row["live"]), int(row["expired"]), int(row["points"])
    finally:
        await connection.close()
