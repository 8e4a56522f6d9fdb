"""When a failed run is tried again: SAQ's retry semantics, as pure functions.

A run that ends FAILED, TIMED_OUT or INTERRUPTED gets another attempt while the task has
retries left (``max_retries`` counts the attempts after the first). Without backoff each retry
waits ``retry_delay`` seconds. With ``retry_backoff`` the n-th retry waits a random time between
0 and ``retry_delay * 2 ** (n - 1)`` seconds ("full jitter"), capped at ``retry_backoff_max``:
many tasks failing together (a database restart) then come back spread out, not in a herd.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Protocol

from django_tasks_sched.bounds import MAX_DURATION

#: Run statuses after which a retry is due, if the task has retries left. INTERRUPTED is here
#: because the ``scheduled`` specification asks for a re-run when it is unknown whether the
#: work happened.
RETRY_STATUSES = frozenset({"FAILED", "TIMED_OUT", "INTERRUPTED"})


class RetryPolicy(Protocol):
    """The Task fields a retry decision reads."""

    max_retries: int
    retry_delay: int
    retry_backoff: bool
    retry_backoff_max: int | None


def should_retry(task: RetryPolicy, status: str, attempt: int) -> bool:
    """Whether a run of ``task`` that ended with ``status`` on ``attempt`` (1-based) is retried."""
    return status in RETRY_STATUSES and attempt <= task.max_retries


def retry_delay(task: RetryPolicy, retry: int, rng: random.Random | None = None) -> timedelta:
    """How long the ``retry``-th retry (1 = the first) waits after the failure."""
    if retry < 1:
        raise ValueError(f"retry counts from 1, got {retry}")
    base = float(task.retry_delay)
    if not task.retry_backoff:
        return timedelta(seconds=base)
    # 2 ** 62 seconds is already past datetime's range; the cap keeps the float finite, and
    # no delay is longer than the longest a duration option may hold (added to "now", a longer
    # one could overflow the calendar).
    ceiling = min(base * 2.0 ** min(retry - 1, 62), float(MAX_DURATION))
    if task.retry_backoff_max is not None:
        ceiling = min(ceiling, float(task.retry_backoff_max))
    return timedelta(seconds=(rng or random).uniform(0, ceiling))
