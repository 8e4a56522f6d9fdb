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
    """Wraps a task's trigger: an error becomes "no further fire", logged and recorded once."""

    __slots__ = ("failed", "inner", "task_id")

    def __init__(self, inner: Any, task_id: int) -> None:
        self.inner = inner
        self.task_id = task_id
        self.failed = False

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        if self.failed:
            return None
        try:
            return self.inner.get_next_fire_time(previous_fire_time, now)
        except (OverflowError, ValueError):
            # Past the year 9999, where Python's calendar ends: the schedule is over.
            self.failed = True
            logger.warning(
                "Task id %s: no fire before the year 9999; it fires no more", self.task_id
            )
            return None
        except Exception as exc:
            self.failed = True
            logger.exception(
                "Task id %s: its schedule could not compute the next fire; it fires no more "
                "until edited",
                self.task_id,
            )
            _record(self.task_id, f"its schedule failed: {type(exc).__name__}: {exc}")
            return None

    def __str__(self) -> str:
        return str(self.inner)


def _record(task_id: int, reason: str) -> None:
    """The failure in the task's run history, once per version of the row (as a refusal)."""
    from django_tasks_sched.lifecycle import refuse

    try:
        refuse({task_id: reason})
    except Exception:
        logger.exception("Could not record that task id %s stopped firing", task_id)
