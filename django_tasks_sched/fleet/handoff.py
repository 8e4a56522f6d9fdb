"""Handing runs to the workers of a ``django.tasks`` backend: the scheduler's side.

A run of a task with a ``backend`` is claimed like any other (one ``TaskRun`` per fire, by
the unique constraint), but QUEUED, not RUNNING: it waits for a worker. Once the claim has
committed, :func:`hand_off_queued` takes the due QUEUED runs of such tasks that no process has
handed yet (fires, run-now requests, retries alike), marks them handed in one guarded UPDATE
(so of several schedulers one sends each), and enqueues each on its task's backend, queue
and priority. A worker then runs it through :mod:`.tasks`.

Nothing is lost silently:

- A backend that refuses the message for good (its alias left ``TASKS``, a queue it does
  not serve) fails the run, saying why; the task's retry policy follows.
- A backend that is away (a broker down) leaves the run QUEUED and unhanded: the next pass
  sends it again, for as long as it takes. It is recorded all along, and counts toward
  ``max_instances``, so a stopped fleet cannot pile up work.
- A message accepted but never started (lost by the broker, or by a worker that died before
  claiming the run) is found after ``HANDOFF_LEASE`` seconds by :func:`sweep_handoffs`:
  where the backend can say the message is still waiting, the lease is renewed; otherwise
  the run is sent once more, and after a second lease it is recorded MISSED.
- A run whose worker dies mid-run stops being stamped alive, and is ended INTERRUPTED (then
  retried) by any scheduler's housekeeping after ``HEARTBEAT_TIMEOUT`` seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.db import close_old_connections, connection, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from django_tasks_sched import tracing
from django_tasks_sched.firing import firing
from django_tasks_sched.lifecycle import end
from django_tasks_sched.models import Task, TaskRun
from django_tasks_sched.rawsql import is_deadlock, update_rows
from django_tasks_sched.reasons import LOST
from django_tasks_sched.service.claims import take_queued

logger = logging.getLogger(__name__)

#: Most runs handed off in one transaction.
HANDOFF_BATCH_SIZE = 500

#: Seconds between the hand-off thread's ``close_old_connections()``.
CONNECTION_CHECK_INTERVAL = 5.0

#: How many times a run is enqueued before a lost message is recorded instead of re-sent.
MAX_HANDOFFS = 2


class HandOffThread(threading.Thread):
    """Hands queued runs of fleet tasks to their backends, off the path that fires tasks.

    A broker's latency, or a broker that is away, must not hold up the claims and the runs of
    every other task: the dispatcher (after claiming fleet runs) and the service (when
    :func:`waiting` says runs wait, on a change or a heartbeat) only ask this thread for a
    pass. It also makes one every ``interval`` seconds, in case a request was missed, and backs
    off while the database is away. An idle one sends no query.
    """

    def __init__(self, interval: float) -> None:
        super().__init__(name="dts-handoff", daemon=True)
        self.interval = interval
        self._wake = threading.Event()
        self._stopping = threading.Event()
        #: Set while firing is paused (django_tasks_sched.firing): no run is handed off.
        self.paused = threading.Event()

    def request(self) -> None:
        """Ask for a pass soon."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self.is_alive():
            self.join(timeout)
        # Still sending (a broker that does not answer), or a send whose runs could not be
        # unmarked (the database was away): those runs are unmarked now, so the next
        # scheduler sends them at once, not after HANDOFF_LEASE. A message that gets through
        # after all starts nothing twice: a worker starts only a QUEUED run
        # (django_tasks_sched.fleet.tasks).
        try:
            release_sending()
        except Exception:
            logger.exception(
                "Could not unmark the runs of a cut-off hand-off; the hand-off lease sends "
                "them again"
            )

    def run(self) -> None:
        failures = 0
        next_check = time.monotonic() + CONNECTION_CHECK_INTERVAL
        while not self._stopping.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stopping.is_set():
                return
            if self.paused.is_set():
                continue
            try:
                hand_off_queued()
                failures = 0
            except Exception as exc:
                if is_deadlock(exc):
                    logger.warning("Handing runs off met a deadlock (%s); retrying", exc)
                    self._wake.set()
                    continue
                failures += 1
                logger.exception("Handing runs off failed (%d in a row); retrying", failures)
                close_old_connections()
                self._stopping.wait(min(30.0, 0.5 * 2**failures))
            # Connection upkeep every few seconds, not every pass: under CONN_MAX_AGE = 0 it
            # would reconnect for each burst's hand-off (the dispatcher does the same).
            if time.monotonic() >= next_check:
                close_old_connections()
                next_check = time.monotonic() + CONNECTION_CHECK_INTERVAL


def hand_off_queued(limit: int = HANDOFF_BATCH_SIZE) -> int:
    """Enqueue due QUEUED runs of fleet tasks that nobody handed yet; returns how many went.

    Stops at the first batch a backend could not take: those runs are unmarked, and the next
    pass (of any scheduler) tries them again; this one must not send them again at once.
    """
    if _sending:
        # A pass that failed after marking runs handed (the database went away mid-send):
        # what it did not send goes again now, not after HANDOFF_LEASE.
        release_sending()
    if not waiting():  # the common case, without SQLite's write lock
        return 0
    handed = 0
    while True:
        marked_at, batch = _take_unhanded(limit)
        if not batch:
            return handed
        sent, complete = _enqueue(batch, marked_at)
        handed += sent
        if len(batch) < limit or not complete:
            return handed


def waiting() -> bool:
    """Whether any run of a fleet task waits to be handed off (one cheap query)."""
    return _unhanded().exists()


def _unhanded(now: datetime | None = None) -> QuerySet[TaskRun]:
    # A correlated EXISTS, looked up by primary key for each due run: SQLite built the list
    # of an IN (subquery) by scanning every task first, a few milliseconds per idle check at
    # 10,000 tasks. Not a join: FOR UPDATE must lock the runs alone (MariaDB has no OF).
    return TaskRun.objects.due(now).filter(
        Exists(Task.objects.on_backend().filter(pk=OuterRef("task_id"))), handed_at__isnull=True
    )


def _take_unhanded(limit: int) -> tuple[datetime, list[tuple[int, Task]]]:
    """Mark up to ``limit`` unhanded runs as being handed by this process; returns the mark
    (their ``handed_at``, the guard for undoing it: another process's mark has another time)
    and the runs."""
    now = timezone.now()
    with transaction.atomic():
        rows = take_queued(_unhanded(now), limit)
        # Read after the rows: a pause committed before they were queued is seen here, even
        # when this pass began before the pause (the thread's own check is a moment older).
        if not rows or not firing().on:
            return now, []
        tasks = Task.objects.only("id", "name", "backend", "queue_name", "priority").in_bulk(
            {task_id for _, task_id in rows}
        )
        # A task switched back to runscheduler meanwhile: its runs are left for a scheduler.
        rows = [(pk, task) for pk, task in rows if task in tasks and tasks[task].backend]
        by_backend: dict[str, list[int]] = defaultdict(list)
        for pk, task_id in rows:
            by_backend[tasks[task_id].backend].append(pk)
        for alias, pks in by_backend.items():
            # The attempt is counted here, and the backend's id written after the send: one
            # UPDATE each, so no run row is updated twice in one transaction (which makes
            # PostgreSQL check its deferred foreign key at COMMIT, waiting for the task row a
            # worker recording an outcome holds while that worker waits for the run: a deadlock).
            TaskRun.objects.filter(pk__in=pks, handed_at__isnull=True).update(
                handed_at=now, backend=alias, handoffs=F("handoffs") + 1
            )
    return now, [(pk, tasks[task_id]) for pk, task_id in rows]


#: The runs this process marked handed and has not sent, each with its mark: being sent now,
#: or left by a send whose unmark failed (the database away, a deadlock). A run leaves it
#: once its message went (a lost one is the lease's) or its outcome is written. Only the
#: hand-off thread adds to it; the thread's next pass, or its stop, releases what is left.
_sending: dict[int, datetime] = {}


def release_sending() -> int:
    """Unmark the runs of a send that was cut off (by shutdown, or by a database error before
    they were unmarked); returns how many.

    Guarded on this process's mark: a run another scheduler has marked since is left alone.
    """
    left = dict(_sending)
    if not left:
        return 0
    marks: dict[datetime, list[int]] = defaultdict(list)
    for pk, marked_at in left.items():
        marks[marked_at].append(pk)
    count = sum(_unmark(pks, marked_at) for marked_at, pks in marks.items())
    for pk in left:
        _sending.pop(pk, None)
    if count:
        logger.warning("The hand-off of %d run(s) was cut off; they stay queued", count)
    return count


def _unmark(pks: list[int], marked_at: datetime) -> int:
    """Undo this process's mark on runs it did not send; the next pass (of any scheduler)
    sends them."""
    return TaskRun.objects.filter(
        pk__in=pks, status=TaskRun.Status.QUEUED, handed_at=marked_at
    ).update(handed_at=None, handoffs=F("handoffs") - 1)


def _enqueue(batch: list[tuple[int, Task]], marked_at: datetime) -> tuple[int, bool]:
    """Send each run of ``batch``; returns how many went, and whether every backend was there.

    A run stays in ``_sending`` until its message went or its outcome is written: should
    that fail, the next pass or the thread's stop unmarks the runs not sent.
    """
    _sending.update((pk, marked_at) for pk, _ in batch)
    return _send(batch, marked_at)


def _send(batch: list[tuple[int, Task]], marked_at: datetime) -> tuple[int, bool]:
    from django_tasks_sched.fleet.compat import InvalidTask, InvalidTaskBackend
    from django_tasks_sched.fleet.tasks import run_handed_off

    sent: list[list[Any]] = []
    refused: dict[int, str] = {}
    away: list[int] = []
    down: set[str] = set()
    for pk, task in batch:
        if task.backend in down:
            away.append(pk)  # one failed send per backend and pass: it is away
            continue
        try:
            wrapper = run_handed_off.using(
                backend=task.backend, queue_name=task.queue_name, priority=task.priority
            )
            with tracing.handoff_span(pk, task) as carrier:
                # The trace context only when there is one: the message keeps its old shape
                # for workers that predate it (docs/workers.md: upgrade workers first).
                if carrier:
                    result = wrapper.enqueue(pk, task.backend, carrier)
                else:
                    result = wrapper.enqueue(pk, task.backend)
        except (InvalidTask, InvalidTaskBackend) as exc:
            refused[pk] = f"Not run: backend {task.backend!r} refused it: {exc}"
            continue
        except Exception:
            logger.exception(
                "Could not enqueue run %s of task %r on backend %r; its runs stay queued and "
                "are sent again on the next pass",
                pk,
                task.name,
                task.backend,
            )
            down.add(task.backend)
            away.append(pk)
            continue
        # Sent: not to be unmarked, whatever happens next (a lost message is the lease's).
        _sending.pop(pk, None)
        sent.append([pk, str(result.id)[:255]])
    if away:
        # Unmarked, so the next pass (of any scheduler) sends them again.
        _unmark(away, marked_at)
        for pk in away:
            _sending.pop(pk, None)
    if sent:
        # Not guarded on QUEUED: a fast worker may have started the run already.
        with transaction.atomic():
            update_rows(TaskRun, ["backend_result_id"], sent, connection.alias)
    if refused:
        runs = list(TaskRun.objects.filter(pk__in=refused).only("id", "task_id", "attempt"))
        end(
            runs,
            TaskRun.Status.FAILED,
            lambda run: refused[run.pk],
            from_status=TaskRun.Status.QUEUED,
        )
        for pk in refused:
            _sending.pop(pk, None)
    return len(sent), not away


def sweep_handoffs(lease: float, now: datetime | None = None) -> int:
    """Find handed-off runs no worker started within ``lease`` seconds; re-send or record them.

    Returns how many runs were unmarked for sending again (the caller asks for a hand-off
    pass) or recorded MISSED.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=lease)
    overdue = list(
        TaskRun.objects.queued()
        .filter(handed_at__lt=cutoff)
        .only("id", "task_id", "attempt", "handed_at", "handoffs", "backend", "backend_result_id")
    )
    if not overdue:
        return 0
    acted = 0
    lost_twice = []
    for run in overdue:
        if _still_waiting(run):
            # The backend has it and no worker was free yet: not lost.
            TaskRun.objects.filter(pk=run.pk, handed_at=run.handed_at).update(handed_at=now)
            continue
        if run.handoffs < MAX_HANDOFFS:
            if TaskRun.objects.filter(
                pk=run.pk, status=TaskRun.Status.QUEUED, handed_at=run.handed_at
            ).update(handed_at=None):
                logger.warning(
                    "Run %s was handed to backend %r %s ago and never started: sending it again",
                    run.pk,
                    run.backend,
                    now - run.handed_at if run.handed_at else "?",
                )
                acted += 1
        else:
            lost_twice.append(run)
    acted += len(
        end(
            lost_twice,
            TaskRun.Status.MISSED,
            lambda run: (
                f"{LOST} {run.backend!r} {run.handoffs} times, and no "
                f"worker started it within the hand-off lease of {lease:g}s each time "
                "(the broker lost the message, or no worker serves the queue)."
            ),
            now,
            from_status=TaskRun.Status.QUEUED,
            guard=lambda run: Q(handed_at=run.handed_at),
        )
    )
    return acted


def _still_waiting(run: TaskRun) -> bool:
    """Whether the backend says the run's message is still waiting for a worker."""
    if not run.backend_result_id:
        return False
    from django_tasks_sched.fleet.compat import task_backends

    try:
        backend = task_backends[run.backend]
        if not backend.supports_get_result:
            return False
        result = backend.get_result(run.backend_result_id)
    except Exception:
        # Unknown to the backend (lost), or the backend is gone from TASKS: not waiting.
        return False
    return str(getattr(result.status, "value", result.status)) == "READY"
