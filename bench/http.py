"""H1 and H2 of QUALITY.md: two authenticated reads over HTTP against a floor and a peer, alternated in one run.

    make install-bench          # once: the bench dependency group (FastAPI, pydantic, py-spy)
    apt-get install -y wrk      # the load generator (Debian's package), if missing
    .venv/bin/python bench/http.py    # --users 10000 --tasks 100000 --rounds 3 --duration 10 (the defaults)

H1 is ``GET /api/users/profile/me`` (JWT check + one indexed read), H2 ``GET /api/tasks?limit=20``
(JWT check + the caller's row + a page of tasks + their total). Three servers answer both,
on one fresh, migrated PostgreSQL database seeded with users and tasks across statuses:

- ``app``: the service itself (``app.main:create_app``), production settings;
- ``floor``: bare Litestar handlers doing the same checks and queries on raw asyncpg (``bench/floor_app.py``);
- ``peer``: the same endpoints written the common way in FastAPI + SQLAlchemy ORM (``bench/peer_fastapi.py``).

The service runs with production settings and Redis (``BENCH_REDIS_URL``), as deployed: its periodic
jobs then run in the job workers (not started here), not in the process under test.
Each server is one uvicorn worker pinned to core 0 (``taskset -c 0``, ``--no-access-log``, log level
warning) with a pool of 10 database connections; ``wrk`` runs pinned to core 1 with 32 connections.
After a warm-up of each server, every round loads app, floor and peer in turn, so that drift of
the shared machine spreads over all three; each load starts once the database has finished the
previous server's backlog. The payloads of the three are compared before timing.
"""

from __future__ import annotations

import sys
from pathlib import Path

# As a script, this file's folder comes first on sys.path, where its name hides the standard library's
# ``http`` (urllib and PyJWT import ``http.client``): look in the repository root instead.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.config import load_settings
from app.domain.users.model import Role, User
from app.infra.security.tokens import JwtAccessTokenIssuer
from bench.common import ROOT, fresh_database, seed_users, vacuum_analyze, verdict

BIN = Path(sys.executable).parent
JWT_SECRET = "bench-only-secret-0123456789-abcdefghijklmnop"  # a throwaway secret of the bench
POOL_SIZE = 10
# The service runs as deployed with Redis: its periodic jobs then run in the job workers (not started
# here). Without Redis it runs them itself, in the process under test, which the floor and peer do not.
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
SERVER_CORE = "0"
LOAD_CORE = "1"

TARGETS = {
    "app": "app.main:create_app",
    "floor": "bench.floor_app:create_app",
    "peer": "bench.peer_fastapi:create_app",
}
ENDPOINTS = {"H1": "/api/users/profile/me", "H2": "/api/tasks?limit=20"}

SEED_TASKS = """
INSERT INTO point_holds (id, user_id, amount, status, reference, allocations, created_at, settled_at)
SELECT md5('hold' || g)::uuid, poster.id, 100,
       (ARRAY['held', 'held', 'captured', 'released'])[g % 4 + 1], 'task', '[]',
       CAST(:now AS timestamptz) - g * interval '1 second', CASE WHEN g % 4 >= 2 THEN CAST(:now AS timestamptz) END
FROM generate_series(1, :tasks) AS g JOIN bench_users AS poster ON poster.n = g % :users;

INSERT INTO tasks (id, poster_id, taker_id, title, description, category, reward_points, held_points, hold_id,
                   deadline, status, rating, cancel_reason, taken_at, completed_at, cancelled_at,
                   created_at, updated_at)
SELECT gen_random_uuid(), poster.id, CASE WHEN g % 4 IN (1, 2) THEN taker.id END,
       'Task number ' || g, 'What task ' || g || ' is about, in a sentence or two.',
       (ARRAY['furniture', 'garden', 'moving', 'cleaning', 'tech'])[g % 5 + 1], 100 + g % 50, 100 + g % 50,
       md5('hold' || g)::uuid, CAST(:now AS timestamptz) + interval '7 days',
       (ARRAY['open', 'taken', 'completed', 'cancelled'])[g % 4 + 1],
       CASE WHEN g % 4 = 2 THEN g % 5 + 1 END, CASE WHEN g % 4 = 3 THEN 'poster' END,
       CASE WHEN g % 4 IN (1, 2) THEN CAST(:now AS timestamptz) - g * interval '1 second' + interval '1 minute' END,
       CASE WHEN g % 4 = 2 THEN CAST(:now AS timestamptz) - g * interval '1 second' + interval '2 minutes' END,
       CASE WHEN g % 4 = 3 THEN CAST(:now AS timestamptz) - g * interval '1 second' + interval '2 minutes' END,
       CAST(:now AS timestamptz) - g * interval '1 second', CAST(:now AS timestamptz) - g * interval '1 second'
FROM generate_series(1, :tasks) AS g
JOIN bench_users AS poster ON poster.n = g % :users
JOIN bench_users AS taker ON taker.n = (g + 1) % :users;
"""


@dataclass
class Measure:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    cpu_ms: float  # CPU time of the server process per request (user + system)


@dataclass(frozen=True)
class Server:
    name: str
    port: int
    pid: int


@dataclass
class Series:
    runs: list[Measure] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return statistics.mean(m.requests_per_second for m in self.runs)

    @property
    def p50(self) -> float:
        return statistics.median(m.p50_ms for m in self.runs)

    @property
    def p99(self) -> float:
        return statistics.median(m.p99_ms for m in self.runs)

    @property
    def cpu(self) -> float:
        return statistics.median(m.cpu_ms for m in self.runs)


def require_tools() -> None:
    missing = []
    if shutil.which("wrk") is None:
        missing.append("wrk, the load generator: install Debian's package with `apt-get install -y wrk`")
    if shutil.which("taskset") is None:
        missing.append("taskset (util-linux): `apt-get install -y util-linux`")
    try:
        import fastapi  # noqa: F401, PLC0415 - only the bench needs it
    except ImportError:
        missing.append("FastAPI for the peer app: the bench dependency group, `make install-bench`")
    host, _, port = REDIS_URL.split("://", 1)[1].split("/", 1)[0].partition(":")
    try:
        socket.create_connection((host, int(port or 6379)), timeout=2).close()
    except OSError:
        missing.append(f"Redis at {REDIS_URL} (BENCH_REDIS_URL), so that the jobs run outside the measured process")
    if (os.cpu_count() or 1) < 2:
        missing.append("a second CPU core: the server and the load generator run on separate cores")
    if missing:
        sys.exit("bench/http.py cannot run, missing:\n  - " + "\n  - ".join(missing))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def server_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "JWT_", "LOG_"))}
    env.update(
        {
            "ENVIRONMENT": "production",
            "DATABASE_URL": database_url,
            "DATABASE_POOL_SIZE": str(POOL_SIZE),
            "DATABASE_MAX_OVERFLOW": "0",
            # wait for a pooled connection as long as the others do (SQLAlchemy's default, asyncpg's pool has none):
            # the service's 2 s is a fail-fast bound for outages, and a saturated database is not one
            "DATABASE_POOL_TIMEOUT_SECONDS": "30",
            "FLOOR_POOL_SIZE": str(POOL_SIZE),
            "PEER_POOL_SIZE": str(POOL_SIZE),
            "JWT_SECRET": JWT_SECRET,
            "LOG_LEVEL": "WARNING",
            "REDIS_URL": REDIS_URL,
        }
    )
    return env


@contextlib.contextmanager
def servers(targets: dict[str, str], database_url: str, log_dir: Path) -> Iterator[dict[str, Server]]:
    """Each target as one uvicorn worker (a single process) on the server core."""
    processes: list[subprocess.Popen[bytes]] = []
    ports: dict[str, int] = {}
    try:
        for name, factory in targets.items():
            port = free_port()
            command = [
                "taskset", "-c", SERVER_CORE, str(BIN / "uvicorn"), factory, "--factory",
                "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                "--no-access-log", "--log-level", "warning",
            ]  # fmt: skip
            log = (log_dir / f"{name}.log").open("wb")
            processes.append(
                subprocess.Popen(command, cwd=ROOT, env=server_env(database_url), stdout=log, stderr=subprocess.STDOUT)
            )
            ports[name] = port
        for (name, port), process in zip(ports.items(), processes, strict=True):
            wait_listening(name, port, process, log_dir)
        yield {
            name: Server(name, port, process.pid)
            for (name, port), process in zip(ports.items(), processes, strict=True)
        }
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def wait_listening(name: str, port: int, process: subprocess.Popen[bytes], log_dir: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.1)
    sys.exit(f"{name} did not start:\n{(log_dir / f'{name}.log').read_text()}")


def get_json(port: int, path: str, token: str) -> Any:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        sys.exit(f"GET {path} on port {port}: {error.code} {error.read()[:500]!r}")


def check_same_payloads(servers: dict[str, Server], token: str) -> None:
    for bar, path in ENDPOINTS.items():
        bodies = {name: get_json(server.port, path, token) for name, server in servers.items()}
        reference = bodies["app"]
        for name, body in bodies.items():
            if body != reference:
                sys.exit(f"{bar}: {name} answers {path} unlike app:\n{str(body)[:2000]}\nvs\n{str(reference)[:2000]}")
        size = len(json.dumps(reference))
        print(f"{bar}: app, floor and peer return the same JSON for {path} ({size} bytes)")


_LATENCY = re.compile(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(server: Server, path: str, token: str, seconds: int, connections: int) -> Measure:
    port = server.port
    cpu_before = cpu_seconds(server.pid)
    command = [
        "taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
        "-H", f"Authorization: Bearer {token}", f"http://127.0.0.1:{port}{path}",
    ]  # fmt: skip
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(server.pid) - cpu_before
    if "Non-2xx" in output:
        sys.exit(f"wrk saw failed requests:\n{output}")
    if "Socket errors" in output:  # wrk's 2 s timeout on an overloaded machine: say so, keep the figure
        print(f"  ({server.name}, {path}: {output.strip().splitlines()[-3].strip()}: requests over 2 s)")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    latency = {int(p): float(v) * _UNITS[unit] for p, v, unit in _LATENCY.findall(output)}
    total = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    return Measure(rps, latency[50], latency[99], 1000 * cpu / max(total, 1))


async def drained(database_url: str) -> None:
    """Wait until no statement runs in the bench database: a server's backlog (requests wrk gave up on
    still running their queries) must not load the next server's run."""
    connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        for _ in range(300):
            busy = await connection.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' "
                "AND pid <> pg_backend_pid()"
            )
            if busy == 0:
                return
            await asyncio.sleep(0.1)
    finally:
        await connection.close()


async def prepare(database_url: str, users: int, tasks: int) -> str:
    """Seed users and tasks; an access token of one user, minted with the service's own issuer and settings."""
    now = datetime.now(UTC)
    engine = create_async_engine(database_url)
    try:
        await seed_users(engine, users, now)
        async with engine.begin() as connection:
            await connection.execute(
                text("CREATE TEMP TABLE bench_users AS SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM users")
            )
            for statement in SEED_TASKS.split(";"):
                if statement.strip():
                    await connection.execute(text(statement), {"now": now, "tasks": tasks, "users": users})
            row = (
                await connection.execute(
                    text(
                        "UPDATE users SET display_name = 'Bench User', bio = 'Reads a lot.' "
                        "WHERE username = 'bench1' RETURNING id, email, username, created_at, updated_at"
                    )
                )
            ).one()
        await vacuum_analyze(engine)
    finally:
        await engine.dispose()
    settings = load_settings(server_env(database_url))
    user = User(
        id=row.id,
        email=row.email,
        username=row.username,
        role=Role.USER,
        display_name="Bench User",
        bio="Reads a lot.",
        is_active=True,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
    issuer = JwtAccessTokenIssuer(
        settings.jwt_secret,
        settings.jwt_issuer,
        settings.jwt_audience,
        # long enough for the whole run (the service's default is 15 minutes)
        ttl_seconds=3600,
    )
    token, _ = issuer.issue(user, now)
    return token


def report(bar: str, results: dict[str, Series]) -> None:
    app, floor, peer = results["app"], results["floor"], results["peer"]
    for name, series in results.items():
        per_round = ", ".join(f"{m.requests_per_second:,.0f}" for m in series.runs)
        print(
            f"{bar} {name:>5}: {series.rps:8,.0f} req/s (rounds: {per_round}); "
            f"p50 {series.p50:6.2f} ms, p99 {series.p99:6.2f} ms; server CPU {series.cpu:.3f} ms/request"
        )
    to_floor = app.rps / floor.rps
    to_peer = app.rps / peer.rps
    p99_ratio = app.p99 / floor.p99
    if bar == "H1":
        print(
            f"H1 bars: throughput {to_floor:.2f}x floor (>= 0.6 {verdict(to_floor >= 0.6)}), "
            f"{to_peer:.2f}x peer (>= 2 {verdict(to_peer >= 2)}), "
            f"p99 {p99_ratio:.2f}x floor's (<= 2 {verdict(p99_ratio <= 2)})"
        )
    else:
        print(
            f"H2 bars: throughput {to_floor:.2f}x floor (>= 0.6 {verdict(to_floor >= 0.6)}); "
            f"for information: {to_peer:.2f}x peer, p99 {p99_ratio:.2f}x floor's; "
            "query count: tests/integration/test_query_counts.py"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds of each timed load")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of untimed load per server and endpoint")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--bars", nargs="+", choices=sorted(ENDPOINTS), default=sorted(ENDPOINTS))
    parser.add_argument("--targets", nargs="+", choices=list(TARGETS), default=list(TARGETS))
    args = parser.parse_args()
    require_tools()
    targets = {name: TARGETS[name] for name in args.targets}
    compare = set(targets) == set(TARGETS)

    async with fresh_database() as database_url:
        print(f"seeding {args.users:,} users and {args.tasks:,} tasks ...", flush=True)
        token = await prepare(database_url, args.users, args.tasks)
        log_dir = ROOT / "data" / "bench_http_logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        with servers(targets, database_url, log_dir) as running:
            if compare:
                check_same_payloads(running, token)
            results: dict[str, dict[str, Series]] = {bar: {name: Series() for name in running} for bar in args.bars}
            for bar in args.bars:
                for server in running.values():
                    wrk(server, ENDPOINTS[bar], token, args.warmup, args.connections)
                    await drained(database_url)
            print(
                f"{args.rounds} rounds x {args.duration} s per server and endpoint, "
                f"wrk -t1 -c{args.connections} on core {LOAD_CORE}, servers on core {SERVER_CORE} ...",
                flush=True,
            )
            for _ in range(args.rounds):
                for bar in args.bars:
                    for name, server in running.items():
                        results[bar][name].runs.append(
                            wrk(server, ENDPOINTS[bar], token, args.duration, args.connections)
                        )
                        await drained(database_url)
        for bar in args.bars:
            if compare:
                report(bar, results[bar])
            else:
                for name, series in results[bar].items():
                    print(
                        f"{bar} {name}: {series.rps:,.0f} req/s; p50 {series.p50:.2f} ms, p99 {series.p99:.2f} ms; "
                        f"server CPU {series.cpu:.3f} ms/request"
                    )


if __name__ == "__main__":
    asyncio.run(main())
