"""End-to-end helpers: the real service under uvicorn as a subprocess, and a TCP proxy to cut its database.

Everything here talks to 127.0.0.1 only, and every wait is bounded in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import asyncpg
import httpx

from tests.support import BIN, ROOT, asyncpg_url, service_missing

HOST = "127.0.0.1"

# F3: none of these may appear in any service log, ever.
F3_FRAGMENTS = (
    "Event loop is closed",
    "Exception terminating connection",
    "no running event loop",
    "attached to a different loop",
)
# ...and in a run where nothing is expected to fail, no traceback either.
FORBIDDEN_LOG_FRAGMENTS = (*F3_FRAGMENTS, "Traceback")

_RECORD_START = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} ", re.MULTILINE)
# What uvicorn logs for each request task it cancels when the graceful timeout runs out.
_GRACEFUL_CANCELLATION = re.compile(
    r"Exception in ASGI application.*CancelledError: Task cancelled, timeout graceful shutdown exceeded\s*$", re.DOTALL
)

# The environment every e2e service gets (cheap hashing keeps registration and login fast).
BASE_ENV: dict[str, str] = {
    "ENVIRONMENT": "test",
    "LOG_LEVEL": "INFO",
    "ENABLE_TEST_ROUTES": "true",
    "ARGON2_TIME_COST": "1",
    "ARGON2_MEMORY_COST_KIB": "1024",
    "ARGON2_PARALLELISM": "1",
    # no periodic jobs in the API unless a test asks for them (tests/e2e/test_jobs_inprocess.py does)
    "JOBS_IN_PROCESS": "false",
}

# Variables of the developer's shell that would change the service under test.
_INHERITED_SETTINGS = re.compile(
    r"^(DATABASE_|REDIS_|JWT_|ARGON2_|LOGIN_RATE_|LOG_|ACCESS_TOKEN_|REFRESH_TOKEN_|HEALTH_CHECK_|SHUTDOWN_|"
    r"LOOP_BRIDGE_|JOBS_|WS_|SUPPORT_|ENVIRONMENT$|ENABLE_TEST_ROUTES$|ALLOW_SQLITE_|PROMETHEUS_MULTIPROC_DIR$|prometheus_multiproc_dir$)"
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def forbidden_lines(log: str, fragments: Sequence[str] = FORBIDDEN_LOG_FRAGMENTS) -> list[str]:
    return [line for line in log.splitlines() if any(fragment in line for fragment in fragments)]


def unexpected_tracebacks(log: str) -> list[str]:
    """Log records with a traceback, except uvicorn's report of a request cancelled at the graceful timeout."""
    starts = sorted({0, *(match.start() for match in _RECORD_START.finditer(log)), len(log)})
    records = [log[begin:end] for begin, end in itertools.pairwise(starts)]
    return [record for record in records if "Traceback" in record and not _GRACEFUL_CANCELLATION.search(record)]


def with_port(database_url: str, port: int) -> str:
    """The same database URL, reached through ``127.0.0.1:port`` (the proxy)."""
    return re.sub(r"@[^/@]+/", f"@{HOST}:{port}/", database_url, count=1)


def database_name(database_url: str) -> str:
    return database_url.rsplit("/", 1)[1]


async def admin_connection(database_url: str) -> asyncpg.Connection:
    """A direct connection to the test database (never through the proxy)."""
    return await asyncpg.connect(asyncpg_url(database_url), timeout=5)


async def app_backend_pids(admin: asyncpg.Connection, database_url: str, state: str | None = None) -> list[int]:
    """Backends of the service (its ``application_name``) on the test database."""
    rows = await admin.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = 'taskmarket'"
        " AND pid <> pg_backend_pid() AND ($2::text IS NULL OR state = $2)",
        database_name(database_url),
        state,
    )
    return [row["pid"] for row in rows]


@dataclass
class Service:
    """One ``uvicorn app.main:create_app --factory`` process with its output captured to a file."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    _log_file: IO[bytes] = field(repr=False)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def send_signal(self, signum: int = signal.SIGTERM) -> None:
        self.process.send_signal(signum)

    async def wait_exit(self, limit_seconds: float) -> int | None:
        """The exit code, or None if the process still runs after ``limit_seconds`` (polled, never blocking)."""
        deadline = time.monotonic() + limit_seconds
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                return code
            await asyncio.sleep(0.05)
        return self.process.poll()

    async def wait_ready(self, limit_seconds: float = 30.0) -> None:
        """Wait until ``GET /health`` answers 200 (the app's lifespan has started)."""
        deadline = time.monotonic() + limit_seconds
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise AssertionError(f"the service exited with {self.process.returncode}:\n{self.log()}")
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/health")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise AssertionError(f"the service did not become ready within {limit_seconds} s:\n{self.log()}")

    def stop(self) -> None:
        """Make sure the process is gone (SIGTERM, then SIGKILL); used by fixtures' cleanup."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._log_file.close()


# start(database_url, **options of start_service) -> Service; the fixture stops what it started.
ServiceFactory = Callable[..., Service]


def start_service(
    database_url: str,
    log_path: Path,
    *,
    graceful_timeout: float = 10.0,
    workers: int = 1,
    extra_env: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
) -> Service:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not _INHERITED_SETTINGS.match(key)}
    env.update(BASE_ENV)
    env["DATABASE_URL"] = database_url
    env.update(extra_env or {})
    command = [
        str(BIN / "uvicorn"),
        "app.main:create_app",
        "--factory",
        "--host",
        HOST,
        "--port",
        str(port),
        "--timeout-graceful-shutdown",
        str(int(graceful_timeout)),
        "--no-access-log",
        *(["--workers", str(workers)] if workers > 1 else []),
        *extra_args,
    ]
    log_file = log_path.open("wb")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    return Service(process=process, port=port, log_path=log_path, _log_file=log_file)


class TcpProxy:
    """A TCP relay on ``127.0.0.1:port`` -> ``upstream``, running on the test's event loop.

    ``stop()`` closes the listener *and* every relayed connection, so for the
    service the database is gone; ``start()`` listens again on the same port.
    ``freeze()`` keeps every connection open (and accepts new ones) but relays
    nothing, like a database that stopped answering; ``thaw()`` relays again.
    """

    def __init__(self, upstream_host: str, upstream_port: int, port: int | None = None) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = port or free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Task[None]] = set()
        self._thawed = asyncio.Event()
        self._thawed.set()
        self.accepted = 0

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        assert self._server is None, "the proxy already runs"
        # reuse_address (the default on Unix) lets the port be bound again right after stop()
        self._server = await asyncio.start_server(self._handle, HOST, self.port, reuse_address=True)

    def freeze(self) -> None:
        self._thawed.clear()

    def thaw(self) -> None:
        self._thawed.set()

    async def stop(self) -> None:
        self._thawed.set()
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()  # an RST, like a dead server; no graceful FIN handshake to wait for
        self._writers.clear()
        pipes = list(self._pipes)
        for task in pipes:
            task.cancel()
        if pipes:
            await asyncio.wait(pipes, timeout=2)
        if server is not None:
            await asyncio.wait_for(server.wait_closed(), timeout=2)

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.add(client_writer)
        try:
            upstream_reader, upstream_writer = await asyncio.wait_for(asyncio.open_connection(*self.upstream), 3)
        except (OSError, TimeoutError):
            client_writer.transport.abort()
            self._writers.discard(client_writer)
            return
        self._writers.add(upstream_writer)
        for source, target in ((client_reader, upstream_writer), (upstream_reader, client_writer)):
            task = asyncio.get_running_loop().create_task(self._pipe(source, target))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self._thawed.wait()
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.transport.abort()
            self._writers.discard(writer)


def problem_code(response: httpx.Response) -> Any:
    try:
        return response.json().get("code")
    except ValueError:
        return None


class PrivateRedis:
    """A ``redis-server`` of the test's own, on a free port, that the test may stop and start again."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self._workdir = workdir
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            service_missing("redis-server", FileNotFoundError("redis-server is not on PATH"))
        assert binary is not None
        command = [binary, "--port", str(self.port), "--bind", HOST, "--save", "", "--appendonly", "no"]
        self._process = subprocess.Popen(
            [*command, "--dir", str(self._workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), timeout=1):
                return
            time.sleep(0.05)
        raise AssertionError("the private redis-server did not start")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=10)
        self._process = None
