"""Claiming fires and queued runs in the database, so each runs exactly once.

Exactly-once across scheduler processes comes from the database, not from luck: a fire is
claimed by inserting its ``TaskRun`` under the unique constraint on (task, scheduled_for),
inside a transaction that first locks the task rows and counts their runs in flight (RUNNING,
and QUEUED for a task whose runs go to a backend) against ``max_instances``. The lock
serialises claims for one task across processes, so the count cannot go stale between the
read and the insert.

Fires are claimed in batches: one transaction locks every task of the batch, counts their
runs in flight with one query and inserts all the rows with one INSERT. Ten thousand fires due
at the same instant then cost a few dozen statements instead of tens of thousands.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from django_tasks_sched.lifecycle import start_queued
from django_tasks_sched.models import Task, TaskRun
from django_tasks_sched.rawsql import concrete_field, quoter, take_write_lock
from django_tasks_sched.service.rawrows import column_reader

logger = logging.getLogger(__name__)

#: Most fires claimed in one transaction: bounds the INSERT and the ``IN (...)`` lists.
BATCH_SIZE = 500

#: The task columns a run needs (the rest stay in the database).
RUN_COLUMNS = (
    "id",
    "name",
    "func",
    "args",
    "kwargs",
    "active",
    "max_instances",
    "timeout",
    "heartbeat_timeout",
    "backend",
)


class Fire(NamedTuple):
    """One due fire of a task, as APScheduler handed it over."""

    task_id: int
    scheduled_for: datetime
    #: The task's misfire grace time in seconds (None: no limit).
    grace: int | None
    #: Record the fire MISSED with this reason instead of running it (coalesced, or missed
    #: while no scheduler was running).
    missed_reason: str | None = None


def claim_fires(fires: Sequence[Fire], worker_id: str) -> list[TaskRun]:
    """Record a batch of fires in one transaction; return the runs to execute or hand off.

    Each fire becomes a RUNNING run (QUEUED for a task with a ``backend``: a worker of that
    backend starts it, see :mod:`django_tasks_sched.fleet.handoff`), a MISSED run (later than
    its grace time, or its task already has ``max_instances`` running), or nothing: its task
    is gone or inactive, or another scheduler process claimed it first (the unique
    constraint keeps the first row). The returned runs carry their task (the columns in
    :data:`RUN_COLUMNS`).
    """
    if not fires:
        return []
    now = timezone.now()
    task_ids = sorted({fire.task_id for fire in fires})
    with transaction.atomic():
        # SQLite: the write lock first, so two processes cannot both count zero running
        # instances (or both read the same QUEUED rows).
        take_write_lock(TaskRun, connection.alias)
        tasks, running = _lock_tasks(task_ids)
        rows, late = _runs_for(fires, tasks, running, now, worker_id)
        # A conflict means another process recorded that fire: its row stands, ours is dropped.
        TaskRun.objects.bulk_create(rows, ignore_conflicts=True)
        ours = _inserted(list(tasks), worker_id, now)
        # A fire missed for lateness shows in the task's summary, as a finished run would.
        late_tasks = {
            task_id for task_id, scheduled_for in late if (task_id, scheduled_for) in ours
        }
        if late_tasks:
            Task.objects.filter(pk__in=late_tasks).update_quietly(
                last_run_at=now, last_run_status=TaskRun.Status.MISSED
            )
    claimed = []
    for row in rows:
        row.pk = ours.get((row.task_id, row.scheduled_for))
        if row.pk is None:
            logger.debug("Fire %s of task %s claimed elsewhere", row.scheduled_for, row.task_id)
        elif row.status != TaskRun.Status.MISSED:
            row.task = tasks[row.task_id]
            claimed.append(row)
    return claimed


# The two reads of a claim are plain SQL: at a steady 170 fires a second most claims hold one
# fire, and building these queries through the ORM cost more than the rest of the claim.


def _lock_tasks(task_ids: list[int]) -> tuple[dict[int, Task], dict[int, int]]:
    """Lock the task rows; return the active tasks and how many runs each has in flight.

    In flight: RUNNING, and QUEUED on a backend (a handed-off run counts from its claim, so a
    stopped fleet cannot pile up work).
    """
    ops, q = connection.ops, quoter(connection)
    fields = [concrete_field(Task, name) for name in RUN_COLUMNS]
    run_table, run_task = q(TaskRun._meta.db_table), q(concrete_field(TaskRun, "task").column)
    task_pk = q(concrete_field(Task, "id").column)
    status = f"r.{q(concrete_field(TaskRun, 'status').column)}"
    # The task's column, not the run's: a run-now request or a retry of a fleet task is
    # QUEUED with no backend until it is handed off, and counts from its request.
    on_backend = f"t.{q(concrete_field(Task, 'backend').column)} <> ''"
    sql = (
        f"SELECT {', '.join(f't.{q(field.column)}' for field in fields)}, "
        f"(SELECT COUNT(*) FROM {run_table} r WHERE r.{run_task} = t.{task_pk} "
        f"AND ({status} = %s OR ({status} = %s AND {on_backend}))) "
        f"FROM {q(Task._meta.db_table)} t WHERE t.{task_pk} IN ({_placeholders(task_ids)}) "
        # Locked in primary-key order, the same in every process, so two processes
        # claiming overlapping batches cannot deadlock.
        f"ORDER BY t.{task_pk}"
    )
    if connection.features.has_select_for_update:
        sql += f" {ops.for_update_sql()}"
    with connection.cursor() as cursor:
        cursor.execute(sql, [TaskRun.Status.RUNNING, TaskRun.Status.QUEUED, *task_ids])
        rows = cursor.fetchall()
    readers = [column_reader(field, connection.alias) for field in fields]
    attnames = [field.attname for field in fields]
    tasks: dict[int, Task] = {}
    running: dict[int, int] = {}
    for row in rows:
        values = [read(value) for read, value in zip(readers, row[:-1], strict=True)]
        task = Task.from_db(connection.alias, attnames, values)
        if task.active:
            tasks[task.pk] = task
            running[task.pk] = int(row[-1])
    return tasks, running


def _inserted(task_ids: list[int], worker_id: str, now: datetime) -> dict[tuple[int, Any], int]:
    """The rows this claim inserted, by (task, fire): the ignored ones have no primary key."""
    if not task_ids:
        return {}
    q = quoter(connection)
    run = {
        name: concrete_field(TaskRun, name)
        for name in ("id", "task", "scheduled_for", "worker_id", "enqueued_at")
    }
    sql = (
        f"SELECT {q(run['id'].column)}, {q(run['task'].column)}, {q(run['scheduled_for'].column)} "
        f"FROM {q(TaskRun._meta.db_table)} WHERE {q(run['worker_id'].column)} = %s "
        f"AND {q(run['enqueued_at'].column)} = %s "
        f"AND {q(run['task'].column)} IN ({_placeholders(task_ids)})"
    )
    params = [worker_id, run["enqueued_at"].get_db_prep_value(now, connection), *task_ids]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    read = column_reader(run["scheduled_for"], connection.alias)
    return {(task_id, read(when)): pk for pk, task_id, when in rows}


def _placeholders(values: Sequence[Any]) -> str:
    return ", ".join(["%s"] * len(values))


def _runs_for(
    fires: Sequence[Fire],
    tasks: dict[int, Task],
    running: dict[int, int],
    now: datetime,
    worker_id: str,
) -> tuple[list[TaskRun], list[tuple[int, datetime]]]:
    """The unsaved rows for ``fires`` (RUNNING, QUEUED for a backend, or MISSED with the
    reason), and the late ones."""
    rows = []
    late = []
    for fire in sorted(fires, key=lambda fire: (fire.task_id, fire.scheduled_for)):
        task = tasks.get(fire.task_id)
        if task is None:
            continue  # deleted or deactivated since APScheduler last looked
        row = TaskRun(
            task_id=task.pk,
            scheduled_for=fire.scheduled_for,
            origin=TaskRun.Origin.SCHEDULE,
            enqueued_at=now,
            worker_id=worker_id,
        )
        lateness = (now - fire.scheduled_for).total_seconds()
        reason = fire.missed_reason
        if not reason and fire.grace is not None and lateness > fire.grace:
            reason = f"Not run: {lateness:.1f}s late, past the misfire grace time of {fire.grace}s."
        if reason:
            late.append((task.pk, fire.scheduled_for))
        elif running.get(task.pk, 0) >= task.max_instances:
            reason = (
                f"Skipped: {task.max_instances} run(s) already running (max_instances reached)."
                if not task.backend
                else f"Skipped: {task.max_instances} run(s) already queued on backend "
                f"{task.backend!r} or running (max_instances reached)."
            )
        if reason:
            row.status, row.finished_at, row.error = TaskRun.Status.MISSED, now, reason
        elif task.backend:
            # Started by a worker of the backend, once handed off after this claim commits.
            row.status, row.backend = TaskRun.Status.QUEUED, task.backend
            running[task.pk] = running.get(task.pk, 0) + 1
        else:
            row.status, row.started_at = TaskRun.Status.RUNNING, now
            running[task.pk] = running.get(task.pk, 0) + 1
        rows.append(row)
    return rows, late


def claim_queued_runs(worker_id: str, limit: int) -> list[TaskRun]:
    """Claim up to ``limit`` QUEUED runs for this process (oldest first), as RUNNING.

    Not the runs of tasks with a backend, nor runs already handed to one: those are for the
    backend's workers (:func:`django_tasks_sched.fleet.handoff.hand_off_queued`).
    """
    now = timezone.now()
    with transaction.atomic():
        queued = TaskRun.objects.due(now).filter(handed_at__isnull=True)
        local = queued.exclude(task_id__in=Task.objects.on_backend().values("pk"))
        ids = [pk for pk, _ in take_queued(local, limit)]
        if not ids:
            return []
        start_queued(ids, worker_id, now)
    return list(TaskRun.objects.filter(pk__in=ids, worker_id=worker_id).select_related("task"))


def take_queued(queued: QuerySet[TaskRun], limit: int) -> list[tuple[int, int]]:
    """Lock up to ``limit`` of the ``queued`` runs, oldest first: their (id, task id).

    Call it inside a transaction, and change the runs before it ends. Rows another process
    has locked are skipped (it is taking them); SQLite, which has no row locks, takes the
    database's write lock first, so two processes cannot read the same rows.
    """
    take_write_lock(TaskRun, connection.alias)
    if connection.vendor != "sqlite":
        queued = queued.select_for_update(skip_locked=True)
    return list(queued.order_by("enqueued_at", "id").values_list("pk", "task_id")[:limit])
