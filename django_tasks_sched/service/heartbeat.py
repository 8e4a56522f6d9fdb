"""The heartbeat row of a scheduler process, and recovery of runs whose process died."""

from __future__ import annotations

import logging
import os
import secrets
import socket
from datetime import timedelta

from django.utils import timezone

import django_tasks_sched
from django_tasks_sched.models import SchedulerProcess, TaskRun
from django_tasks_sched.policy import end_runs

logger = logging.getLogger(__name__)

SCHEDULER_PREFIX = "scheduler:"
#: The worker id prefix of runs made inline (see ``execution.default_worker_id``).
INLINE_PREFIX = "inline:"


def scheduler_worker_id() -> str:
    """A unique id for this scheduler process: ``scheduler:host:pid:random``."""
    return f"{SCHEDULER_PREFIX}{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Heartbeat:
    """Keeps this process's ``SchedulerProcess`` row fresh and removes it on shutdown."""

    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id

    def beat(self) -> None:
        """Insert or refresh the row (re-created if another process pruned it as stale)."""
        now = timezone.now()
        if not SchedulerProcess.objects.filter(worker_id=self.worker_id).update(last_seen=now):
            SchedulerProcess.objects.create(
                worker_id=self.worker_id,
                hostname=socket.gethostname(),
                pid=os.getpid(),
                version=django_tasks_sched.__version__,
                started_at=now,
                last_seen=now,
            )

    def stop(self) -> None:
        SchedulerProcess.objects.filter(worker_id=self.worker_id).delete()


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
    interrupted = end_runs(orphans, TaskRun.Status.INTERRUPTED, lambda run: error)
    interrupted += end_runs(
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
    """RUNNING inline runs of processes on this host that no longer exist.

    An inline run (``runtask``, ``run_now(inline=True)``) has no heartbeat row; on its own
    host, whether its process is alive can be asked of the operating system. A run whose
    process lives on another host is left to its task's timeout (the watchdog).
    """
    prefix = f"{INLINE_PREFIX}{socket.gethostname()}:"
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
    return True
