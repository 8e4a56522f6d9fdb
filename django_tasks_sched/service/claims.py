"""Claiming fires and queued runs in the database, so each runs exactly once.

Exactly-once across scheduler processes comes from the database, not from luck: a fire is
claimed by inserting its ``TaskRun`` under the unique constraint on (task, scheduled_for),
inside a transaction that first locks the task rows, then counts their runs in flight (RUNNING,
and QUEUED for a task whose runs go to a backend) and their fires waiting for a slot. The
task's overlap policy (:mod:`django_tasks_sched.overlap`) decides against those counts what a
fire does when ``max_instances`` runs are going. The lock serialises claims for one task
across processes, so the counts cannot go stale between the read and the insert; the same
lock serialises :func:`release_buffered`, which starts waiting fires as slots free.

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
from django.db.models import Case, Field, Min, QuerySet, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from django_tasks_sched import audit, metrics, overlap
from django_tasks_sched.lifecycle import cancel_running, start_queued
from django_tasks_sched.models import Task, TaskChange, TaskRun
from django_tasks_sched.overlap import Action, Slots
from django_tasks_sched.rawsql import Unnest, among, concrete_field, quoter, take_write_lock
from django_tasks_sched.reasons import NOT_RUN
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
    "overlap",
    "remaining_runs",
)

#: Why a task was switched off when its ``remaining_runs`` reached 0.
NO_RUNS_LEFT = "Finished: no runs left (remaining_runs reached 0)."


class Fire(NamedTuple):
    """One due fire of a task, as APScheduler handed it over."""

    task_id: int
    scheduled_for: datetime
    #: The task's misfire grace time in seconds (None: no limit).
    grace: int | None
    #: Record the fire MISSED with this reason instead of running it (coalesced, or missed
    #: while no scheduler was running).
    missed_reason: str | None = None
    #: One of several fires of a task that does not coalesce, due together (a catch-up):
    #: each waits for a slot, in order, rather than being skipped.
    catch_up: bool = False


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
        tasks, slots = _lock_tasks(task_ids)
        claim = _Claim(tasks, slots, now, worker_id)
        rows = claim.rows_for(fires)
        # A conflict means another process recorded that fire: its row stands, ours is dropped.
        ours = _insert(rows, list(tasks), worker_id, now)
        for row in rows:
            row.pk = ours.get((row.task_id, row.scheduled_for))
        claim.settle([row for row in rows if row.pk is not None])
    metrics.count_fires(
        "buffered" if row.buffered else str(row.status).lower() for row in rows if row.pk
    )
    claimed = []
    for row in rows:
        if row.pk is None:
            logger.debug("Fire %s of task %s claimed elsewhere", row.scheduled_for, row.task_id)
        elif row.status == TaskRun.Status.RUNNING or (
            row.status == TaskRun.Status.QUEUED and not row.buffered
        ):
            row.task = tasks[row.task_id]
            claimed.append(row)
    return claimed


# The two reads of a claim are plain SQL: at a steady 170 fires a second most claims hold one
# fire, and building these queries through the ORM cost more than the rest of the claim.


def _lock_tasks(task_ids: list[int]) -> tuple[dict[int, Task], dict[int, Slots]]:
    """Lock the task rows; return the tasks and how their runs take up their slots.

    In flight: RUNNING, and QUEUED on a backend (a handed-off run counts from its claim, so a
    stopped fleet cannot pile up work), not counting buffered fires, which wait for a slot.

    Two statements: the runs are counted only once the locks are held. Counted in the
    locking statement itself, PostgreSQL would read them in the snapshot taken before the
    statement waited for a lock, and miss the run the lock's holder just started.
    """
    ops, q = connection.ops, quoter(connection)
    # In the model's order: Model.from_db() takes partial values so.
    fields = sorted((concrete_field(Task, name) for name in RUN_COLUMNS), key=_model_order)
    task_pk = q(concrete_field(Task, "id").column)
    matching, params = among(connection, task_pk, concrete_field(Task, "id"), task_ids)
    sql = (
        f"SELECT {', '.join(q(field.column) for field in fields)} "
        f"FROM {q(Task._meta.db_table)} WHERE {matching} "
        # Locked in primary-key order, the same in every process, so two processes
        # claiming overlapping batches cannot deadlock.
        f"ORDER BY {task_pk}"
    )
    if connection.features.has_select_for_update:
        sql += f" {ops.for_update_sql()}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    readers = [column_reader(field, connection.alias) for field in fields]
    attnames = [field.attname for field in fields]
    tasks: dict[int, Task] = {}
    for row in rows:
        task = Task.from_db(
            connection.alias, attnames, [read(v) for read, v in zip(readers, row, strict=True)]
        )
        tasks[task.pk] = task
    return tasks, count_slots(tasks)


def count_slots(tasks: dict[int, Task]) -> dict[int, Slots]:
    """The runs of ``tasks`` in flight and waiting (see :func:`_lock_tasks`): the one rule of
    what takes a slot, for claims and for ``explaintask``."""
    slots = {task_id: Slots(running=0, buffered=0) for task_id in tasks}
    if not tasks:
        return slots
    q = quoter(connection)
    run = {
        name: q(concrete_field(TaskRun, name).column)
        for name in ("task", "status", "buffered", "origin")
    }
    matching, params = among(connection, run["task"], concrete_field(TaskRun, "task"), list(tasks))
    sql = (
        f"SELECT {run['task']}, {run['status']}, {run['buffered']}, {run['origin']}, COUNT(*) "
        f"FROM {q(TaskRun._meta.db_table)} WHERE {matching} "
        f"AND {run['status']} IN (%s, %s) "
        f"GROUP BY {run['task']}, {run['status']}, {run['buffered']}, {run['origin']}"
    )
    params += [TaskRun.Status.RUNNING, TaskRun.Status.QUEUED]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        counts = cursor.fetchall()
    for task_id, status, buffered, origin, count in counts:
        if status == TaskRun.Status.RUNNING or (not buffered and tasks[task_id].backend):
            # The task's backend, not the run's: a run-now request or a retry of a fleet task
            # is QUEUED with no backend until it is handed off, and counts from its request.
            slots[task_id].running += count
        elif buffered and origin != TaskRun.Origin.BACKFILL:
            # Backfilled fires wait for slots too, but not in the overlap buffer: a backfill
            # of thousands must not make the buffer full for the schedule's own fires.
            slots[task_id].buffered += count
    return slots


def _model_order(field: Any) -> int:
    return int(field.creation_counter)


def _insert(
    rows: list[TaskRun], task_ids: list[int], worker_id: str, now: datetime
) -> dict[tuple[int, Any], int]:
    """Insert the rows, skipping the fires recorded already; the keys of the rows inserted.

    On PostgreSQL, one INSERT that returns what it inserted, of one value for each field the
    rows share and an array for each field they differ in: in a burst's batch that is the task
    alone (one fire time, one claim time, one status). Through ``bulk_create`` (24 values to
    prepare and send for each row, and psycopg parses a query of thousands of placeholders)
    and a read of the rows back, a claim of a burst's fires cost twice as much. Elsewhere,
    ``bulk_create`` and that read.
    """
    if not rows:
        return {}
    if connection.vendor != "postgresql":
        TaskRun.objects.bulk_create(rows, ignore_conflicts=True)
        return _inserted(task_ids, worker_id, now)
    q = quoter(connection)
    fields = _insert_fields()
    values = Unnest(connection)
    select = [
        # The task always an array: it keeps one row per fire (the rows of one task's fires
        # differ in their times), however alike the rest.
        values.column(
            field,
            [getattr(row, field.attname) for row in rows],
            f"a{index}",
            array=field.attname == "task_id",
        )
        for index, field in enumerate(fields)
    ]
    run = {name: q(concrete_field(TaskRun, name).column) for name in ("id", "task")}
    run["when"] = q(concrete_field(TaskRun, "scheduled_for").column)
    sql = (
        f"INSERT INTO {q(TaskRun._meta.db_table)} ({', '.join(q(f.column) for f in fields)}) "
        f"SELECT {', '.join(select)}{values.from_sql()} "
        f"ON CONFLICT DO NOTHING RETURNING {run['id']}, {run['task']}, {run['when']}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, values.params())
        inserted = cursor.fetchall()
    for row in rows:
        # Saved, as bulk_create leaves them (the rows not inserted get no primary key).
        row._state.adding, row._state.db = False, connection.alias
    return {(task_id, when): pk for pk, task_id, when in inserted}


def _insert_fields() -> list[Field[Any, Any]]:
    """The columns a claim writes, each as the row object holds it: no ``auto_now`` field
    (whose ``pre_save`` would change it) and no generated one (tested)."""
    return [
        field
        for field in TaskRun._meta.concrete_fields
        if not field.primary_key and not getattr(field, "generated", False)
    ]


def _inserted(task_ids: list[int], worker_id: str, now: datetime) -> dict[tuple[int, Any], int]:
    """The rows this claim inserted, by (task, fire): the ignored ones have no primary key.
    (SQLite and MariaDB: PostgreSQL's insert returns them.)"""
    if not task_ids:
        return {}
    q = quoter(connection)
    run = {
        name: concrete_field(TaskRun, name)
        for name in ("id", "task", "scheduled_for", "worker_id", "enqueued_at")
    }
    matching, ids = among(connection, q(run["task"].column), run["task"], task_ids)
    sql = (
        f"SELECT {q(run['id'].column)}, {q(run['task'].column)}, {q(run['scheduled_for'].column)} "
        f"FROM {q(TaskRun._meta.db_table)} WHERE {q(run['worker_id'].column)} = %s "
        f"AND {q(run['enqueued_at'].column)} = %s AND {matching}"
    )
    params = [worker_id, run["enqueued_at"].get_db_prep_value(now, connection), *ids]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    read = column_reader(run["scheduled_for"], connection.alias)
    return {(task_id, read(when)): pk for pk, task_id, when in rows}


class _Claim:
    """The decisions of one claim transaction, for tasks whose rows it has locked."""

    def __init__(
        self, tasks: dict[int, Task], slots: dict[int, Slots], now: datetime, worker_id: str
    ) -> None:
        self.tasks, self.slots, self.now, self.worker_id = tasks, slots, now, worker_id
        #: Runs each task may still start (``remaining_runs``), as the batch uses them.
        self.remaining = {pk: t.remaining_runs for pk, t in tasks.items()}
        #: The rows of this batch that would run, per task: cancel_other's first victims.
        self.starting: dict[int, list[TaskRun]] = {}
        #: Per fire, how many of its task's older running runs ``cancel_other`` ends, and why
        #: (only if the fire's row is inserted: one another process claimed replaces nothing).
        self.cancel: dict[tuple[int, datetime], int] = {}
        self.cancel_reason = ""
        #: The fires missed for lateness: shown in their tasks' summaries.
        self.late: set[tuple[int, datetime]] = set()
        #: Active tasks with no runs left (set to 0 by hand, or by a raw UPDATE).
        self.exhausted: set[int] = set()

    def rows_for(self, fires: Sequence[Fire]) -> list[TaskRun]:
        """The unsaved rows for ``fires``: RUNNING, QUEUED (for a backend, or buffered), or
        MISSED with the reason."""
        rows = []
        for fire in sorted(fires, key=lambda fire: (fire.task_id, fire.scheduled_for)):
            task = self.tasks.get(fire.task_id)
            if task is None or not task.active:
                continue  # deleted or deactivated since APScheduler last looked
            if self.remaining[task.pk] == 0:
                self.exhausted.add(task.pk)  # out of runs: switched off in settle()
                continue
            row = TaskRun(
                task_id=task.pk,
                scheduled_for=fire.scheduled_for,
                origin=TaskRun.Origin.SCHEDULE,
                enqueued_at=self.now,
                worker_id=self.worker_id,
            )
            self._decide(task, fire, row)
            rows.append(row)
        return rows

    def _decide(self, task: Task, fire: Fire, row: TaskRun) -> None:
        lateness = (self.now - fire.scheduled_for).total_seconds()
        reason = fire.missed_reason
        if not reason and fire.grace is not None and lateness > fire.grace:
            reason = (
                f"{NOT_RUN} {lateness:.1f}s late, past the misfire grace time of {fire.grace}s."
            )
        if reason:
            row.status, row.finished_at, row.error = TaskRun.Status.MISSED, self.now, reason
            self.late.add((task.pk, fire.scheduled_for))
            return
        # A catch-up is run in full, in order, whatever the policy for an overlap.
        policy = Task.Overlap.BUFFER_ALL if fire.catch_up else task.overlap
        decision = overlap.decide(
            policy, task.max_instances, self.slots[task.pk], backend=task.backend
        )
        if decision.action == Action.MISS:
            row.status, row.finished_at = TaskRun.Status.MISSED, self.now
            row.error = decision.reason
            return
        left = self.remaining[task.pk]
        if left is not None:
            self.remaining[task.pk] = left - 1
        if decision.action == Action.CANCEL_OTHER:
            self._cancel_other(fire, decision.cancel, decision.reason)
        if decision.action == Action.BUFFER:
            row.status, row.buffered = TaskRun.Status.QUEUED, True
        elif task.backend:
            # Started by a worker of the backend, once handed off after this claim commits.
            row.status = TaskRun.Status.QUEUED
        else:
            row.status, row.started_at = TaskRun.Status.RUNNING, self.now
        if task.backend:
            row.backend = task.backend
        if not row.buffered:
            self.starting.setdefault(task.pk, []).append(row)

    def _cancel_other(self, fire: Fire, count: int, reason: str) -> None:
        """Cancel ``count`` runs of the task: those of this batch first (never inserted as
        running), then the oldest in the database (after the insert, see :meth:`settle`)."""
        starting = self.starting.get(fire.task_id, [])
        while count and starting:
            row = starting.pop(0)
            row.status, row.started_at = TaskRun.Status.CANCELLED, None
            row.finished_at, row.error = self.now, reason
            count -= 1
        if count:
            self.cancel[fire.task_id, fire.scheduled_for] = count
            self.cancel_reason = reason

    def settle(self, inserted: list[TaskRun]) -> None:
        """After the insert: cancel the runs ``cancel_other`` replaces, count the runs used,
        and record the lateness of missed fires in the tasks' summaries."""
        ours = [row.pk for row in inserted]
        for row in inserted:
            assert row.scheduled_for is not None
            count = self.cancel.get((row.task_id, row.scheduled_for), 0)
            if count:
                victims = _oldest_in_flight(self.tasks[row.task_id], count, ours)
                # Ended as the fire that replaces them starts.
                cancel_running(victims, self.cancel_reason, self.now)
        used: dict[int, int] = {}
        late = set()
        for row in inserted:
            if (row.task_id, row.scheduled_for) in self.late:
                late.add(row.task_id)
            elif row.status != TaskRun.Status.MISSED:
                used[row.task_id] = used.get(row.task_id, 0) + 1
        if late:
            # A fire missed for lateness shows in the task's summary, as a finished run would.
            Task.objects.filter(pk__in=late).update_quietly(
                last_run_at=self.now, last_run_status=TaskRun.Status.MISSED
            )
        finished = set(self.exhausted)
        for task_id, count in used.items():
            left = self.tasks[task_id].remaining_runs
            if left is None:
                continue
            left = max(0, left - count)
            Task.objects.filter(pk=task_id).update_quietly(remaining_runs=left)
            if left == 0:
                finished.add(task_id)
        if finished:
            # A normal update: every scheduler drops the tasks.
            with audit.recording(TaskChange.Via.SCHEDULER):
                Task.objects.filter(pk__in=finished).switch_off(NO_RUNS_LEFT)
            logger.info("%d task(s) used their last run", len(finished))


def _oldest_in_flight(task: Task, count: int, exclude: list[int]) -> list[TaskRun]:
    """The task's ``count`` oldest runs in flight, not those in ``exclude``, oldest first."""
    statuses = [TaskRun.Status.RUNNING]
    if task.backend:
        statuses.append(TaskRun.Status.QUEUED)  # counted in flight from their claim
    in_flight = TaskRun.objects.filter(
        task_id=task.pk, buffered=False, status__in=statuses
    ).exclude(pk__in=exclude)
    return list(in_flight.order_by("enqueued_at", "id")[:count])


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


def request_run(task: Task, origin: str) -> TaskRun:
    """A run requested now that respects the task's overlap policy, as a fire would.

    Recorded MISSED when the policy skips it; otherwise it waits (buffered) and a scheduler
    starts it as soon as a slot is free, at once if one is. A ``cancel_other`` task's oldest
    running run is cancelled for it.
    """
    now = timezone.now()
    with transaction.atomic():
        take_write_lock(TaskRun, connection.alias)
        tasks, slots = _lock_tasks([task.pk])
        current = tasks.get(task.pk)
        run = TaskRun(task=task, origin=origin, enqueued_at=now, status=TaskRun.Status.QUEUED)
        if current is None:
            raise Task.DoesNotExist(f"Task {task.pk} was deleted")
        decision = overlap.decide(
            current.overlap, current.max_instances, slots[task.pk], backend=current.backend
        )
        if decision.action == Action.MISS:
            run.status, run.finished_at, run.error = TaskRun.Status.MISSED, now, decision.reason
        else:
            # Started by release_buffered, which counts the slots again under the lock.
            run.buffered = True
        run.save()
        if decision.action == Action.CANCEL_OTHER:
            victims = _oldest_in_flight(current, decision.cancel, [run.pk])
            cancel_running(victims, decision.reason, now)
    return run


def release_buffered(worker_id: str, limit: int) -> list[TaskRun]:
    """Start the buffered fires whose task has a free slot, in order of their fire times.

    Locks the tasks as a claim does, so the free slots cannot be taken twice: a fire of a task
    run here is started at once (up to ``limit``, this process's free threads) and returned to
    execute; one of a task with a backend is released to its hand-off (it counts as in flight
    from here on). A slot left unused for want of threads is taken at the next look.

    Free threads go to tasks in the order they began waiting (their oldest waiting run's
    ``enqueued_at``, not its fire time: a backfill of last year's fires queued now comes after
    the fires already waiting), each taking at most its free slots. The tasks are locked
    :data:`BATCH_SIZE` at a time, each batch in a transaction of its own.
    """
    waiting = TaskRun.objects.filter(status=TaskRun.Status.QUEUED, buffered=True)
    lines = (
        waiting.values("task_id").annotate(oldest=Min("enqueued_at")).order_by("oldest", "task_id")
    )
    order = [line["task_id"] for line in lines]
    started: list[int] = []
    released = 0
    for first in range(0, len(order), BATCH_SIZE):
        batch_started, batch_released = _release_batch(
            order[first : first + BATCH_SIZE], waiting, worker_id, limit - len(started)
        )
        started += batch_started
        released += batch_released
    if released:
        logger.info("%d buffered fire(s) released to their backends", released)
    if not started:
        return []
    return list(TaskRun.objects.filter(pk__in=started, worker_id=worker_id).select_related("task"))


def _release_batch(
    order: list[int], waiting: QuerySet[TaskRun], worker_id: str, threads: int
) -> tuple[list[int], int]:
    """Start (up to ``threads``) or release the waiting fires of these tasks, in this order."""
    now = timezone.now()
    started: list[int] = []
    released: list[int] = []
    with transaction.atomic():
        take_write_lock(TaskRun, connection.alias)
        tasks, slots = _lock_tasks(sorted(order))
        for task_id in order:
            task = tasks.get(task_id)
            if task is None:
                continue  # deleted meanwhile, with its runs
            free = task.max_instances - slots[task_id].running
            if not task.backend:
                free = min(free, threads - len(started))
            if free <= 0:
                continue
            # The schedule's own fires first, then backfilled ones, each in fire order.
            line = waiting.filter(task_id=task_id).order_by(
                Case(When(origin=TaskRun.Origin.BACKFILL, then=1), default=0),
                Coalesce("scheduled_for", "enqueued_at"),
                "id",
            )
            ids = list(line.values_list("pk", flat=True)[:free])
            (released if task.backend else started).extend(ids)
        if released:
            TaskRun.objects.filter(pk__in=released).update(buffered=False)
        if started:
            start_queued(started, worker_id, now)
    return started, len(released)


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
