"""User statistics: public figures of a user, recomputed for everyone at once in set-based SQL.

Definitions (SPEC.md section 2 names the figures; these are the choices behind them):

* ``tasks_posted``: tasks the user posted, in any state.
* ``tasks_taken``: tasks the user took (as taker), in any state since: in progress, completed, or
  cancelled after being taken.
* ``tasks_completed``: tasks the user took that their poster confirmed.
* ``completion_rate``: ``tasks_completed / tasks_taken``; ``None`` before the first take.
* ``average_rating``: the mean of the ratings posters gave the user as taker (``ratings_count`` of them);
  ``None`` while unrated.
* ``activities_joined``: activities the user is a participant of (scheduled, running or ended;
  a cancelled activity releases its participants and no longer counts).
* ``points_balance``: the points the user holds: the sum of the remaining points of their lots,
  the same figure the points ledger reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID


@dataclass(frozen=True, slots=True)
class UserStats:
    user_id: UUID
    tasks_posted: int
    tasks_taken: int
    tasks_completed: int
    completion_rate: float | None
    ratings_count: int
    average_rating: float | None
    activities_joined: int
    points_balance: int
    computed_at: datetime  # when these figures were computed
