"""W1 and W2 of QUALITY.md: idle authenticated WebSockets held by one process, and broadcast latency.

Run from the repository root (PostgreSQL at ``BENCH_POSTGRES_URL``; the client raises its own open-files
limit up to the hard limit, which must allow the connections):

    .venv/bin/python bench/ws.py                       # 10,000 idle; broadcasts at 1,000 and 5,000
    .venv/bin/python bench/ws.py --idle 2000 --sizes 500,1000 --broadcasts 20   # a quick look

For each target, the service (one uvicorn worker on a fresh migrated database) and the floor (a bare
``websockets`` broadcast server, ``bench/ws_floor.py``), the server runs pinned to core 0 and this client
to core 1. The client opens sockets in steps (1,000, 5,000, then up to ``--idle``), each authenticated
(the ``ready`` answer received). At each broadcast size it triggers ``--broadcasts`` events one after the
other and measures, for each, the time from the trigger to the *last* socket receiving it; p50/p99 of that
are the figures. After the last step it reads the server's RSS: (RSS with N sockets - RSS with one) / N is
the memory per connection. All sockets of the service belong to one user (the per-user limit is lifted for
the run), so the service's "event to a user" is exactly a broadcast to all of them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# the repository root instead of bench/ (whose http.py would shadow the standard library module)
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import httpx
from sqlalchemy.ext.asyncio import create_async_engine
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from app.config import load_settings
from app.domain.users.model import Role, User
from app.infra.security.tokens import JwtAccessTokenIssuer
from bench.common import ROOT, fresh_database, percentile, seed_users, verdict

HOST = "127.0.0.1"
SETTINGS = load_settings({})


@dataclass
class Target:
    name: str
    port: int
    command: list[str]
    env: dict[str, str]
    trigger: Callable[[httpx.AsyncClient], Awaitable[None]] = field(repr=False)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["taskset", "-c", "0", *self.command],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def rss_kib(self) -> int:
        assert self.process is not None
        # taskset execs the server in place: the pid is the server's
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")


class Client:
    """One authenticated socket that timestamps every ``test`` event it receives."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.received: list[float] = []  # receipt time of each ``test`` event, in order
        self.arrived = asyncio.Event()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self._read_until_closed()

    async def _read_until_closed(self) -> None:
        async for raw in self.ws:
            message = json.loads(raw)
            if message.get("type") == "test":
                self.received.append(time.perf_counter())
                self.arrived.set()


async def open_client(port: int, token: str) -> Client:
    ws = await connect(f"ws://{HOST}:{port}/ws", ping_interval=None, open_timeout=30, max_queue=4)
    await ws.send(json.dumps({"type": "auth", "token": token}))
    while json.loads(await asyncio.wait_for(ws.recv(), 30)).get("type") != "ready":
        pass
    return Client(ws)


async def open_many(port: int, token: str, count: int) -> list[Client]:
    gate = asyncio.Semaphore(16)  # below the service's database pool: authentication reads the user

    async def one() -> Client:
        async with gate:
            return await open_client(port, token)

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def wait_ready(port: int) -> None:
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient(timeout=2) as http:
        while time.monotonic() < deadline:
            try:
                if (await http.get(f"http://{HOST}:{port}/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"server on {port} did not start")


async def broadcast_latencies(target: Target, clients: list[Client], count: int) -> list[float]:
    """Trigger ``count`` events one at a time; for each, ms from the trigger to the last receipt."""
    latencies = []
    before = [len(c.received) for c in clients]
    # The client's own garbage collections would stamp receipts late (a full collection over thousands of
    # sockets takes hundreds of ms): keep what exists now out of them, and collect young objects rarely.
    gc.collect()
    gc.freeze()
    async with httpx.AsyncClient(timeout=30) as http:
        for k in range(count):
            began = time.perf_counter()
            await target.trigger(http)
            deadline = time.monotonic() + 30
            while any(len(c.received) <= seen + k for c, seen in zip(clients, before, strict=True)):
                if time.monotonic() > deadline:
                    raise AssertionError(f"{target.name}: event {k} did not reach every socket")
                await asyncio.sleep(0.001)
            last = max(c.received[seen + k] for c, seen in zip(clients, before, strict=True))
            latencies.append((last - began) * 1000)
    return latencies


async def measure(target: Target, token: str, sizes: list[int], idle: int, broadcasts: int) -> dict[str, Any]:
    target.start()
    clients: list[Client] = []
    try:
        await wait_ready(target.port)
        clients = await open_many(target.port, token, 1)
        await broadcast_latencies(target, clients, 3)  # warm-up
        await asyncio.sleep(0.5)
        base_rss = target.rss_kib()
        results: dict[str, Any] = {"name": target.name, "broadcast": {}}
        for size in sizes:
            clients += await open_many(target.port, token, size - len(clients))
            await asyncio.sleep(0.5)
            latencies = sorted(await broadcast_latencies(target, clients, broadcasts))
            results["broadcast"][size] = (percentile(latencies, 0.5), percentile(latencies, 0.99))
        clients += await open_many(target.port, token, idle - len(clients))
        await asyncio.sleep(2)
        results["idle"] = len(clients)
        results["rss_per_connection_kib"] = (target.rss_kib() - base_rss) / max(1, len(clients) - 1)
        return results
    finally:
        for client in clients:
            client.reader.cancel()
        await asyncio.gather(*(c.ws.close() for c in clients), return_exceptions=True)
        target.stop()


def raise_open_files_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--idle", type=int, default=10_000)
    parser.add_argument("--sizes", default="1000,5000")
    parser.add_argument("--broadcasts", type=int, default=50)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    raise_open_files_limit()
    os.sched_setaffinity(0, {1})
    gc.set_threshold(2_000, 10, 100)  # the client's, for its timestamps (see broadcast_latencies)
    now = datetime.now(UTC)
    async with fresh_database() as url:
        engine = create_async_engine(url)
        await seed_users(engine, 1, now)
        async with engine.connect() as connection:
            user_id = (await connection.exec_driver_sql("SELECT id FROM users LIMIT 1")).scalar_one()
        await engine.dispose()
        issuer = JwtAccessTokenIssuer(SETTINGS.jwt_secret, SETTINGS.jwt_issuer, SETTINGS.jwt_audience, 3600)
        user = User(user_id, "bench1@example.com", "bench1", Role.USER, None, None, True, now, now)
        token, _ = issuer.issue(user, now)

        base_env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "WS_"))}
        app_port, floor_port = 18_401, 18_402
        app_env = {
            **base_env,
            "DATABASE_URL": url,
            "ENVIRONMENT": "test",
            "ENABLE_TEST_ROUTES": "true",
            "LOG_LEVEL": "WARNING",
            "LOG_REQUESTS": "false",
            "WS_MAX_CONNECTIONS_PER_USER": str(args.idle + 10),
            "WS_PING_INTERVAL_SECONDS": "600",
            "WS_IDLE_TIMEOUT_SECONDS": "1200",
            "WS_SEND_QUEUE_SIZE": "1024",
        }

        async def trigger_app(http: httpx.AsyncClient) -> None:
            response = await http.post(
                f"http://{HOST}:{app_port}/api/_test/events", params={"user_id": str(user_id), "count": 1}
            )
            response.raise_for_status()

        async def trigger_floor(http: httpx.AsyncClient) -> None:
            (await http.get(f"http://{HOST}:{floor_port}/broadcast")).raise_for_status()

        uvicorn = str(Path(sys.executable).parent / "uvicorn")
        targets = [
            Target(
                "service (uvicorn + Litestar)",
                app_port,
                [
                    uvicorn,
                    "app.main:create_app",
                    "--factory",
                    "--host",
                    HOST,
                    "--port",
                    str(app_port),
                    "--no-access-log",
                    "--log-level",
                    "warning",
                    "--ws-ping-interval",
                    "600",
                    # as in production (Makefile, README): small JSON events gain little from
                    # compression, and each compressing socket keeps zlib state of its own
                    "--ws-per-message-deflate",
                    "false",
                ],
                app_env,
                trigger_app,
            ),
            Target(
                "floor (bare websockets)",
                floor_port,
                [
                    sys.executable,
                    "bench/ws_floor.py",
                    str(floor_port),
                    SETTINGS.jwt_secret,
                    SETTINGS.jwt_issuer,
                    SETTINGS.jwt_audience,
                ],
                base_env,
                trigger_floor,
            ),
        ]
        print(
            f"{args.idle:,} idle sockets; broadcasts of {args.broadcasts} events at {sizes}; server on core 0, "
            f"client on core 1; load average before: {os.getloadavg()[0]:.2f}"
        )
        results = [await measure(t, token, sizes, args.idle, args.broadcasts) for t in targets]
    service, floor = results
    for result in results:
        lines = [f"{result['name']}:"]
        for size, (p50, p99) in result["broadcast"].items():
            lines.append(f"  broadcast to {size:,}: send to last receipt p50 {p50:.1f} ms, p99 {p99:.1f} ms")
        lines.append(f"  {result['idle']:,} idle sockets: {result['rss_per_connection_kib']:.1f} KiB of RSS each")
        print("\n".join(lines))
    bars = {1000: 100.0, 5000: 300.0}
    for size, limit in bars.items():
        if size in service["broadcast"]:
            p99 = service["broadcast"][size][1]
            print(
                f"W2 at {size:,}: p99 {p99:.1f} ms (floor {floor['broadcast'][size][1]:.1f} ms) "
                f"[bar < {limit:.0f} ms {verdict(p99 < limit)}]"
            )
    per_conn = service["rss_per_connection_kib"]
    print(
        f"W1: {service['idle']:,} held, {per_conn:.1f} KiB each (floor {floor['rss_per_connection_kib']:.1f}) "
        f"[bar 10,000 held and <= 32 KiB {verdict(service['idle'] >= 10_000 and per_conn <= 32)}]"
    )


if __name__ == "__main__":
    asyncio.run(main())
