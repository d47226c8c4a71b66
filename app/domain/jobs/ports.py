"""What a job run needs from the outside: domain services bound to one fresh unit of work."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol

from app.domain.activities.service import ActivityService
from app.domain.coupons.service import CouponService
from app.domain.experts.service import ExpertService
from app.domain.invitations.service import InvitationService
from app.domain.points.service import PointsService
from app.domain.stats.service import StatsService
from app.domain.support.service import SupportService
from app.domain.tasks.service import TaskService


class JobServices(Protocol):
    """The use cases jobs call, all sharing one session (one unit of work per scope)."""

    @property
    def points(self) -> PointsService: ...

    @property
    def coupons(self) -> CouponService: ...

    @property
    def invitations(self) -> InvitationService: ...

    @property
    def tasks(self) -> TaskService: ...

    @property
    def activities(self) -> ActivityService: ...

    @property
    def stats(self) -> StatsService: ...

    @property
    def support(self) -> SupportService: ...

    @property
    def experts(self) -> ExpertService: ...


class ServiceScope(Protocol):
    """Opens a fresh session, yields services bound to it, and closes it (rolling back what was not committed)."""

    def __call__(self) -> AbstractAsyncContextManager[JobServices]: ...
