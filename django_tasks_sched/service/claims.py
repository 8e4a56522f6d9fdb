"""Claiming fires and queued runs in the database, so each runs exactly once.

Exactly-once across scheduler processes comes from the database, not from luck: a fire is
claimed by inserting its ``TaskRun`` under the unique constraint on (task, scheduled_for),
inside a transaction that first locks the task row and counts its RUNNING runs against
``max_instances``. The lock serialises claims for one task across processes, so the count
cannot go stale between the read and the insert.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from django_tasks_sched.models import Task, TaskRun

logger = logging.getLogger(__name__)


@contextmanager
def locked_task(task_id: int) -> Iterator[Task | None]:
    """A transaction holding the task's row lock; yields the task (None if it was deleted)."""
    with transaction.atomic():
        if connection.vendor == "sqlite":
            # SQLite has no row locks and Django opens transactions DEFERRED: a no-op write
            # takes the database's write lock now, before we read, so two processes cannot
            # both count zero running instances.
            Task.objects.filter(pk=task_id).update_quietly(id=F("id"))
            yield Task.objects.filter(pk=task_id).first()
        else:
            yield Task.objects.select_for_update().filter(pk=task_id).first()


def claim_fire(task_id: int, scheduled_for: datetime, worker_id: str) -> TaskRun | None:
    """Record one fire of a task: a RUNNING run to execute, a MISSED run, or None.

    None means there is nothing to do here: the task is gone or inactive, or another
    scheduler process has already claimed this fire.
    """
    now = timezone.now()
    try:
        with locked_task(task_id) as task:
            if task is None or not task.active:
                return None
            running = TaskRun.objects.filter(task_id=task_id, status=TaskRun.Status.RUNNING)
            if running.count() >= task.max_instances:
                return TaskRun.objects.create(
                    task=task,
                    scheduled_for=scheduled_for,
                    status=TaskRun.Status.MISSED,
                    origin=TaskRun.Origin.SCHEDULE,
                    enqueued_at=now,
                    finished_at=now,
                    worker_id=worker_id,
                    error=f"Skipped: {task.max_instances} run(s) already running "
                    "(max_instances reached).",
                )
            return TaskRun.objects.create(
                task=task,
                scheduled_for=scheduled_for,
                status=TaskRun.Status.RUNNING,
                origin=TaskRun.Origin.SCHEDULE,
                enqueued_at=now,
                started_at=now,
                worker_id=worker_id,
            )
    except IntegrityError:
        logger.debug("Fire %s of task %s already claimed elsewhere", scheduled_for, task_id)
        return None


def record_missed(task_id: int, scheduled_for: datetime, worker_id: str, reason: str) -> None:
    """Record a fire that will not run (e.g. later than its misfire grace time)."""
    now = timezone.now()
    try:
        with transaction.atomic():
            TaskRun.objects.create(
                task_id=task_id,
                scheduled_for=scheduled_for,
                status=TaskRun.Status.MISSED,
                origin=TaskRun.Origin.SCHEDULE,
                enqueued_at=now,
                finished_at=now,
                worker_id=worker_id,
                error=reason,
            )
    except IntegrityError:
        pass  # Another process recorded (or ran) this fire.
    else:
        Task.objects.filter(pk=task_id).update_quietly(
            last_run_at=now, last_run_status=TaskRun.Status.MISSED
        )


def claim_queued_runs(worker_id: str, limit: int) -> list[TaskRun]:
    """Claim up to ``limit`` QUEUED runs for this process (oldest first), as RUNNING."""
    now = timezone.now()
    with transaction.atomic():
        queued = TaskRun.objects.queued().order_by("enqueued_at", "id")
        if connection.vendor == "sqlite":
            # Take the write lock first (see locked_task) so two processes cannot both read
            # the same QUEUED rows.
            TaskRun.objects.filter(pk=-1).update(status=F("status"))
        else:
            queued = queued.select_for_update(skip_locked=True)
        ids = list(queued.values_list("pk", flat=True)[:limit])
        if not ids:
            return []
        TaskRun.objects.filter(pk__in=ids, status=TaskRun.Status.QUEUED).update(
            status=TaskRun.Status.RUNNING, started_at=now, worker_id=worker_id
        )
    return list(TaskRun.objects.filter(pk__in=ids, worker_id=worker_id).select_related("task"))
