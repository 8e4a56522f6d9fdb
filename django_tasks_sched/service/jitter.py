"""Jitter that every scheduler process computes alike.

APScheduler draws jitter at random, so two processes would claim the same fire under two
different times and both run it. Here the delay is a hash of (task, nominal fire time): the
same in every process, still spread evenly over ``[0, jitter)`` seconds.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from apscheduler.triggers.base import BaseTrigger


def jitter_offset(seed: int, nominal: datetime, jitter: float) -> timedelta:
    """A stable delay in ``[0, jitter)`` seconds for this task's fire at ``nominal``."""
    digest = hashlib.sha256(f"{seed}:{nominal.timestamp()}".encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return timedelta(seconds=fraction * jitter)


def jittered(seed: int, nominal: datetime, jitter: float | None, end: datetime | None) -> datetime:
    """The fire time the scheduler claims for a nominal one: delayed, capped at ``end``."""
    if not jitter:
        return nominal
    late = nominal + jitter_offset(seed, nominal, jitter)
    # Capped at the schedule's end, as the triggers' own jitter is: no fire after end_date.
    return end if end is not None and late > end else late


class DeterministicJitter(BaseTrigger):
    """Wraps a trigger built without jitter and delays each fire by :func:`jitter_offset`."""

    __slots__ = ("_last", "inner", "jitter", "seed")

    def __init__(self, inner: Any, jitter: float, seed: int) -> None:
        self.inner = inner
        self.jitter = jitter
        self.seed = seed
        # APScheduler passes back the (jittered) time we returned last; remember its nominal
        # time so the inner trigger continues from the schedule, not from the delay.
        self._last: tuple[datetime, datetime] | None = None

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        if previous_fire_time is not None and self._last and self._last[0] == previous_fire_time:
            previous_fire_time = self._last[1]
        nominal = self.inner.get_next_fire_time(previous_fire_time, now)
        if nominal is None:
            return None
        late = jittered(self.seed, nominal, self.jitter, getattr(self.inner, "end_date", None))
        self._last = (late, nominal)
        return late

    def __str__(self) -> str:
        return f"{self.inner} (jitter {self.jitter}s)"
