"""The floor of the WebSocket benchmark: a bare ``websockets`` broadcast server doing the same protocol.

It accepts ``/ws``, expects ``{"type": "auth", "token": ...}`` first (verified with the same JWT checks,
no database), answers ``ready``, and registers the socket. ``POST /broadcast?count=1`` (answered by the
``process_request`` hook) sends ``{"type": "test", "n": ...}`` to every registered socket with
``websockets.broadcast``. Run: ``python bench/ws_floor.py PORT SECRET ISSUER AUDIENCE``.
"""

from __future__ import annotations

import sys

# As a script, bench/ comes first on sys.path, where bench/http.py would hide the standard library's http.
sys.path.pop(0)

import asyncio
import json
from http import HTTPStatus

import jwt
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.http11 import Request, Response

CONNECTIONS: set[ServerConnection] = set()


async def main(port: int, secret: str, issuer: str, audience: str) -> None:
    counter = 0

    async def handler(ws: ServerConnection) -> None:
        try:
            first = json.loads(await asyncio.wait_for(ws.recv(), 5))
            jwt.decode(
                first.get("token", ""),
                secret,
                algorithms=["HS256"],
                issuer=issuer,
                audience=audience,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except (TimeoutError, ValueError, jwt.PyJWTError):
            await ws.close(4401, "authentication required")
            return
        await ws.send(json.dumps({"type": "ready"}))
        CONNECTIONS.add(ws)
        try:
            async for _ in ws:
                pass
        finally:
            CONNECTIONS.discard(ws)

    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        nonlocal counter
        if request.path.startswith("/broadcast"):
            broadcast(CONNECTIONS, json.dumps({"type": "test", "n": counter, "padding": ""}))
            counter += 1
            return connection.respond(HTTPStatus.OK, "sent\n")
        if request.path.startswith("/health"):
            return connection.respond(HTTPStatus.OK, "ok\n")
        return None

    async with serve(handler, "127.0.0.1", port, process_request=process_request, ping_interval=None, compression=None):
        await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]))
