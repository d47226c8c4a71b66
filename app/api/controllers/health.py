from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec

from app.api.errors import problem_responses
from app.api.schemas import ComponentStatus, LivenessStatus, ReadinessStatus
from app.api.security import PUBLIC, PUBLIC_OPT

logger = logging.getLogger("app.health")

# name -> probe; a probe raises when its component is not usable (it bounds its own time), or returns a
# short text when the component works but needs attention ("degraded": reported, readiness stays 200).
ReadinessChecks = Mapping[str, Callable[[], Awaitable[str | None]]]


async def _probe(name: str, check: Callable[[], Awaitable[str | None]]) -> tuple[str, ComponentStatus]:
    started = time.perf_counter()
    try:
        degraded = await check()
    except Exception as error:  # noqa: BLE001 - any failure means "down"; the type is the detail
        logger.warning("readiness probe failed", extra={"component": name, "error": type(error).__name__})
        return name, ComponentStatus(status="down", detail=type(error).__name__)
    latency_ms = round((time.perf_counter() - started) * 1000, 2)
    if degraded is not None:
        return name, ComponentStatus(status="degraded", detail=degraded, latency_ms=latency_ms)
    return name, ComponentStatus(status="up", latency_ms=latency_ms)


class HealthController(Controller):
    path = "/health"
    tags = ["health"]
    security = PUBLIC
    opt = PUBLIC_OPT

    @get(
        "",
        operation_id="getLiveness",
        summary="Liveness: the process serves requests (no I/O)",
        responses=problem_responses(),
    )
    async def liveness(self) -> LivenessStatus:
        return LivenessStatus(status="ok")

    @get(
        "/ready",
        operation_id="getReadiness",
        summary="Readiness: every component answers (503 with each component's status otherwise)",
        responses={
            **problem_responses(),
            503: ResponseSpec(
                data_container=ReadinessStatus, description="A component is down", generate_examples=False
            ),
        },
    )
    async def readiness(self, readiness_checks: NamedDependency[ReadinessChecks]) -> Response[ReadinessStatus]:
        results = dict(await asyncio.gather(*(_probe(name, check) for name, check in readiness_checks.items())))
        ready = all(component.status != "down" for component in results.values())
        body = ReadinessStatus(status="ready" if ready else "not_ready", components=results)
        return Response(body, status_code=200 if ready else 503)
