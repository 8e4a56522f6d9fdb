"""Housekeeping of a scheduler process: runs no outcome will come for are ended.

The watchdog ends runs past their task's timeout TIMED_OUT; orphan recovery ends runs whose
process stopped saying they are alive (a scheduler, a fleet's worker, an inline caller), and
inline runs whose process on this host is gone, INTERRUPTED; stuck detection ends runs whose
function sent no heartbeat within its task's ``heartbeat_timeout``. All go through the
lifecycle's guarded ``end`` verb, so of several schedulers doing the same pass, one ends each
run and follows it up. (Pruning old runs is :mod:`django_tasks_sched.retention`.)
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta

from django.db.models import Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from django_tasks_sched.execution import INLINE_PREFIX, process_scope
from django_tasks_sched.lifecycle import end
from django_tasks_sched.models import SchedulerProcess, TaskRun

logger = logging.getLogger(__name__)

#: Seconds past a run's timeout before the watchdog records it TIMED_OUT. A process executor
#: stops its own runs at the timeout itself and records that it killed the worker; the margin
#: lets it do so first, and the watchdog stays the backstop (threads, dead or stalled schedulers).
WATCHDOG_MARGIN = 1.0


def expire_overdue_runs(now: datetime | None = None) -> list[TaskRun]:
    """Mark RUNNING runs past their task's timeout TIMED_OUT; follow them up; return them.

    The thread (or process) running one may still be going: its late outcome is not written
    over the TIMED_OUT record (the run path only records runs that are still RUNNING), and
    the run no longer counts against ``max_instances``.
    """
    now = now or timezone.now()
    candidates = _running_runs_of_tasks_with("timeout")
    overdue = [run for run in candidates if past_timeout(run, now)]
    expired = end(
        overdue,
        TaskRun.Status.TIMED_OUT,
        lambda run: f"TimeoutError: ran longer than the task's timeout of {run.task.timeout}s",
        now,
    )
    for run in expired:
        logger.warning("Run %s of task %r timed out", run.pk, run.task.name)
    return expired


def recover_orphaned_runs(timeout: float, own_worker_id: str) -> int:
    """End INTERRUPTED the runs whose process is gone.

    Two ways to tell: a run silent for ``timeout`` seconds (:func:`interrupt_silent_runs`),
    wherever it ran; and, at once, an inline run whose process on this host has exited
    (:func:`dead_inline_runs`). Runs of the calling process are never touched.
    """
    interrupted = interrupt_silent_runs(timeout, own_worker_id)
    interrupted += end(
        dead_inline_runs(),
        TaskRun.Status.INTERRUPTED,
        lambda run: (
            "Interrupted: the process running it inline (runtask, run_now(inline=True)) "
            "exited before the run finished."
        ),
    )
    if interrupted:
        logger.warning("Marked %d run(s) of dead processes INTERRUPTED", len(interrupted))
    return len(interrupted)


def prune_dead_processes(timeout: float) -> None:
    """Delete the heartbeat rows of processes not seen for ``timeout`` seconds."""
    cutoff = timezone.now() - timedelta(seconds=timeout)
    SchedulerProcess.objects.filter(last_seen__lt=cutoff).delete()


def interrupt_silent_runs(timeout: float, own_worker_id: str) -> list[TaskRun]:
    """End INTERRUPTED the RUNNING runs not seen alive for ``timeout`` seconds.

    Every process stamps ``alive_at`` on the runs it executes (:mod:`django_tasks_sched.
    liveness`); a run whose stamp, or start before the first stamp, is older than the timeout
    lost its process: a scheduler or a fleet's worker killed, or its host gone.
    """
    cutoff = timezone.now() - timedelta(seconds=timeout)
    silent = list(
        silent_runs(cutoff)
        .exclude(worker_id=own_worker_id)
        .only("id", "task_id", "attempt", "first_attempt_id", "worker_id")
    )
    return end(
        silent,
        TaskRun.Status.INTERRUPTED,
        lambda run: (
            f"Interrupted: the process running it ({run.worker_id or 'unknown'}) has not been "
            f"seen alive for {timeout:g}s (HEARTBEAT_TIMEOUT); it died or lost the database."
        ),
        guard=lambda run: Q(alive_at__lt=cutoff) | Q(alive_at=None, started_at__lt=cutoff),
    )


def interrupt_stuck_runs(now: datetime | None = None) -> list[TaskRun]:
    """End INTERRUPTED the runs whose function sent no heartbeat within its task's bound.

    ``Task.heartbeat_timeout`` asks the function for heartbeats (``current_run().heartbeat()``
    or ``update()``); counted from its start until the first. A stuck run counts as a failure
    and is retried by its task's policy.
    """
    now = now or timezone.now()
    candidates = _running_runs_of_tasks_with("heartbeat_timeout", "heartbeat_at")
    stuck = [run for run in candidates if heartbeat_missed(run, now)]
    ended = end(
        stuck,
        TaskRun.Status.INTERRUPTED,
        lambda run: (
            "Interrupted: stuck; its function sent no heartbeat for "
            f"{run.task.heartbeat_timeout}s (the task's heartbeat timeout)."
        ),
        now,
        guard=lambda run: (
            Q(heartbeat_at__lte=now - _bound(run))
            | Q(heartbeat_at=None, started_at__lte=now - _bound(run))
        ),
    )
    for run in ended:
        logger.warning("Run %s of task %r is stuck: interrupted", run.pk, run.task.name)
    return ended


def silent_runs(cutoff: datetime) -> QuerySet[TaskRun]:
    """RUNNING runs not seen alive (their stamp, else their start) since ``cutoff``."""
    return (
        TaskRun.objects.running()
        .annotate(last_seen=Coalesce("alive_at", "started_at"))
        .filter(last_seen__lt=cutoff)
    )


def past_timeout(run: TaskRun, now: datetime) -> bool:
    """Whether the run has run past its task's timeout (and the watchdog's margin)."""
    timeout = run.task.timeout
    if timeout is None or run.started_at is None:
        return False
    return run.started_at + timedelta(seconds=timeout + WATCHDOG_MARGIN) <= now


def heartbeat_missed(run: TaskRun, now: datetime) -> bool:
    """Whether the run's function sent no heartbeat within its task's ``heartbeat_timeout``."""
    if run.task.heartbeat_timeout is None:
        return False
    return _silent_since(run, now) <= now - _bound(run)


def _running_runs_of_tasks_with(option: str, *fields: str) -> list[TaskRun]:
    """The started RUNNING runs whose task sets ``option`` (a bound: ``timeout`` ...).

    With the columns the bound's check and its follow-up read: few, as this runs on every
    heartbeat of every scheduler. The bound is the task's own, so the check is done in Python.
    """
    return list(
        TaskRun.objects.running()
        .filter(**{f"task__{option}__isnull": False}, started_at__isnull=False)
        .select_related("task")
        .only(
            "id",
            "task_id",
            "attempt",
            "first_attempt_id",
            "started_at",
            *fields,
            f"task__{option}",
            "task__name",
        )
    )


def _silent_since(run: TaskRun, now: datetime) -> datetime:
    """The function's last heartbeat, or its start before the first."""
    return run.heartbeat_at or run.started_at or now


def _bound(run: TaskRun) -> timedelta:
    return timedelta(seconds=run.task.heartbeat_timeout or 0)


def dead_inline_runs() -> list[TaskRun]:
    """RUNNING inline runs of processes of this host (and pid namespace) that are gone.

    An inline run (``runtask``, ``run_now(inline=True)``) is stamped alive like any other; where
    its pid means the same process as here, whether that process exists can also be asked of
    the operating system, which tells at once rather than after ``HEARTBEAT_TIMEOUT``. A run of
    a process elsewhere (another host, another container) is left to the liveness rule.
    """
    prefix = f"{INLINE_PREFIX}{process_scope()}:"
    candidates = TaskRun.objects.running().filter(worker_id__startswith=prefix)
    dead = []
    for run in candidates.only("id", "task_id", "attempt", "first_attempt_id", "worker_id"):
        pid = run.worker_id.removeprefix(prefix)
        if pid.isdigit() and not _process_exists(int(pid)):
            dead.append(run)
    return dead


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    except (OverflowError, ValueError):
        return True  # no pid at all (a row written by hand): not ours to judge
    return True
