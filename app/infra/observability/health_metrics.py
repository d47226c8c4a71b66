"""``taskmarket_component_up{component}``: what readiness reports, as a gauge kept current.

Every readiness probe is wrapped (``recording_probes``), so the gauge is set each time
``/health/ready`` runs a probe, and ``ComponentProbe`` runs the same probes in the
background every few seconds, so it stays current when nobody asks. 1 means ``up``;
``down`` and ``degraded`` (a stale job heartbeat, for which readiness stays 200) are 0.
Only the components the process is configured with are exported: without Redis, just
``database``.

Multiprocess mode ``livemin``: every API process probes on its own; an instance reports
a component up only while all its live processes see it up (a process that exited is
dropped, so a dead worker cannot pin a stale value).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from prometheus_client import Gauge

logger = logging.getLogger("app.health")

COMPONENT_UP = Gauge(
    "taskmarket_component_up",
    "1 when the component's readiness probe says up; 0 when down or degraded",
    ["component"],
    multiprocess_mode="livemin",
)

# returns None when the component is up, a short text when it is degraded; raises when it is down
ReadinessProbe = Callable[[], Awaitable[str | None]]


def recording_probes(
    probes: Mapping[str, ReadinessProbe], metric_names: Mapping[str, str] | None = None
) -> dict[str, ReadinessProbe]:
    """The same probes, each also setting the gauge of its component (``metric_names`` renames a label)."""
    names = metric_names or {}
    return {name: _recording(names.get(name, name), probe) for name, probe in probes.items()}


def _recording(component: str, probe: ReadinessProbe) -> ReadinessProbe:
    # The series is made at the first probe, not before: in multiprocess mode a series starts at 0,
    # and under ``livemin`` a process that has not probed yet would pin the instance's value to 0.
    async def recorded() -> str | None:
        try:
            degraded = await probe()
        except Exception:
            COMPONENT_UP.labels(component).set(0)
            raise
        COMPONENT_UP.labels(component).set(1 if degraded is None else 0)
        return degraded

    return recorded


class ComponentProbe:
    """Runs the readiness probes every ``interval`` seconds (the first after one interval: startup opens nothing).

    Each probe bounds its own time. A component that goes down or comes back is logged once.
    """

    def __init__(self, probes: Mapping[str, ReadinessProbe], interval: float) -> None:
        self._probes = dict(probes)
        self._interval = interval
        self._down: set[str] = set()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.probe_once()

    async def probe_once(self) -> None:
        names = list(self._probes)
        results = await asyncio.gather(*(self._probes[name]() for name in names), return_exceptions=True)
        for name, result in zip(names, results, strict=True):
            failed = isinstance(result, BaseException)
            if failed and name not in self._down:
                self._down.add(name)
                logger.warning("component down", extra={"component": name, "error": type(result).__name__})
            elif not failed and name in self._down:
                self._down.discard(name)
                logger.info("component up again", extra={"component": name})
