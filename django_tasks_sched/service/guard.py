"""Containment: a trigger that raises ends its own job, never APScheduler's loop.

APScheduler computes each job's next fire time inside its main loop, outside any ``try``: one
trigger raising there (an overflow near the year 9999 in a row forced in by raw SQL) would stop
firing for every task. Validation bounds every value a row may hold
(:mod:`django_tasks_sched.bounds`); this wrapper is the backstop for rows that skipped it.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from apscheduler.triggers.base import BaseTrigger

logger = logging.getLogger(__name__)


class GuardedTrigger(BaseTrigger):
    """Wraps a task's trigger: an error becomes "no further fire", logged once."""

    __slots__ = ("failed", "inner", "label")

    def __init__(self, inner: Any, label: str) -> None:
        self.inner = inner
        self.label = label
        self.failed = False

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        if self.failed:
            return None
        try:
            return self.inner.get_next_fire_time(previous_fire_time, now)
        except Exception:
            self.failed = True
            logger.exception(
                "%s: its schedule could not compute the next fire; it fires no more until edited",
                self.label,
            )
            return None

    def __str__(self) -> str:
        return str(self.inner)
