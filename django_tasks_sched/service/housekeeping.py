"""Housekeeping of a scheduler process: runs no outcome will come for are ended.

The watchdog ends runs past their task's timeout TIMED_OUT; orphan recovery ends the runs of
scheduler processes whose heartbeat stopped, and inline runs whose process on this host is gone,
INTERRUPTED. Both go through the lifecycle's guarded ``end`` verb, so of several schedulers
doing the same pass, one ends each run and follows it up. (Pruning old runs is
:mod:`django_tasks_sched.retention`.)
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta

from django.utils import timezone

from django_tasks_sched.execution import INLINE_PREFIX, process_scope
from django_tasks_sched.lifecycle import end
from django_tasks_sched.models import SchedulerProcess, TaskRun
from django_tasks_sched.service.heartbeat import SCHEDULER_PREFIX

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
    candidates = (
        TaskRun.objects.running()
        .filter(task__timeout__isnull=False, started_at__isnull=False)
        .select_related("task")
        .only(
            "id",
            "task_id",
            "attempt",
            "first_attempt_id",
            "started_at",
            "task__timeout",
            "task__name",
        )
    )
    overdue = [
        run
        for run in candidates
        if run.started_at is not None
        and run.started_at + timedelta(seconds=(run.task.timeout or 0) + WATCHDOG_MARGIN) <= now
    ]
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
    """Mark RUNNING runs of dead processes INTERRUPTED; prune their heartbeat rows.

    A process is dead when its heartbeat is older than ``timeout`` (or it has none). Runs of
    the calling process are never touched.
    """
    cutoff = timezone.now() - timedelta(seconds=timeout)
    SchedulerProcess.objects.filter(last_seen__lt=cutoff).delete()
    live = SchedulerProcess.objects.alive(timeout).values_list("worker_id", flat=True)
    # Runs a scheduler process claimed, by their heartbeat; inline runs (a web process's
    # run_now(inline=True), runtask) carry another kind of worker id: see dead_inline_runs.
    orphans = list(
        TaskRun.objects.running()
        .filter(worker_id__startswith=SCHEDULER_PREFIX)
        .exclude(worker_id=own_worker_id)
        .exclude(worker_id__in=list(live))
        .only("id", "task_id", "attempt", "first_attempt_id")
    )
    error = "Interrupted: the scheduler process running it stopped responding."
    interrupted = end(orphans, TaskRun.Status.INTERRUPTED, lambda run: error)
    interrupted += end(
        dead_inline_runs(),
        TaskRun.Status.INTERRUPTED,
        lambda run: (
            "Interrupted: the process running it inline (runtask, run_now(inline=True)) "
            "exited before the run finished."
        ),
    )
    if interrupted:
        logger.warning("Marked %d run(s) of dead scheduler processes INTERRUPTED", len(interrupted))
    return len(interrupted)


def dead_inline_runs() -> list[TaskRun]:
    """RUNNING inline runs of processes of this host (and pid namespace) that are gone.

    An inline run (``runtask``, ``run_now(inline=True)``) has no heartbeat row; where its pid
    means the same process as here, whether it is alive can be asked of the operating system.
    A run of a process elsewhere (another host, another container) is left to its task's
    timeout (the watchdog).
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
