"""A run's lifecycle: every change of a ``TaskRun``'s status is one of these guarded verbs.

Each verb is an UPDATE (or an INSERT under a unique constraint) whose WHERE names the status
it leaves, and it checks the row count: of two processes racing for one run (a watchdog and
the run's own outcome, two survivors of a dead scheduler, a cancel and a claim), exactly one
wins, and the loser's write is dropped with a log line. Nothing else writes ``status``.

============  ==============================  =============================================
verb          from -> to                      called by
============  ==============================  =============================================
claim fire    (none) -> RUNNING, MISSED,      a scheduler, per due fire, in batches
              or QUEUED (a task with a        (:func:`service.claims.claim_fires`; unique
              backend; a buffered fire)       per task and fire, ``max_instances`` and the
                                              overlap policy counted under the task's lock)
request       (none) -> QUEUED                ``Task.run_now()``; retries (``policy``)
              (none) -> RUNNING               ``run_now(inline=True)``, ``runtask``: run here,
                                              never queued for a scheduler to take
                                              (:func:`start_here`)
start         QUEUED -> RUNNING               the executor about to call (:func:`start`,
                                              :func:`start_queued` for a scheduler's batch)
finish        RUNNING -> the outcome's        every executor after the call (:func:`finish`)
end           RUNNING -> TIMED_OUT,           the watchdog, orphan recovery, stuck runs,
              INTERRUPTED or FAILED;          shutdown, an outcome the database refused
              -> CANCELLED                    (:func:`end`); a fire claimed but never started
                                              at shutdown
              QUEUED -> FAILED or MISSED      a hand-off the backend refused, or lost twice
                                              (``fleet.handoff``)
heartbeat     RUNNING -> RUNNING              ``TaskRun.update()``/``heartbeat()`` (progress,
                                              meta); the liveness thread (``alive_at``); the
                                              call of a claimed run (:func:`called`)
hand off      QUEUED -> QUEUED (handed)       a scheduler, for tasks with a backend
                                              (``fleet.handoff``); a worker then starts it
cancel        QUEUED -> CANCELLED             ``TaskRun.cancel()`` (the row's own verb)
              RUNNING -> CANCELLED            overlap ``cancel_other`` (:func:`cancel_running`)
release       QUEUED (buffered) -> RUNNING    a scheduler, when a slot frees
                                              (``service.claims.release_buffered``)
refuse        (none) -> FAILED                the reconcile, for a row it cannot schedule,
                                              once per row version (:func:`refuse`)
============  ==============================  =============================================

Every run that :func:`finish` or :func:`end` takes to a final status is followed up in one
place: its task's summary (:mod:`.summaries`) and ``policy.after_outcomes`` (retry, failure
limit, mail to ADMINS).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from django.db import InterfaceError, OperationalError, router, transaction
from django.db.models import Q
from django.utils import timezone

from django_tasks_sched.changes import schedule_changed
from django_tasks_sched.models import Task, TaskRun
from django_tasks_sched.policy import after_outcomes
from django_tasks_sched.rawsql import exists_among, lock_rows, update_rows
from django_tasks_sched.storable import describe_exception, storable_text
from django_tasks_sched.summaries import KEEP, add_failures, fold, record_summaries

logger = logging.getLogger(__name__)

#: A finished run and the task's next fire time to store with its summary (or ``KEEP``).
Finished = tuple[TaskRun, object]

#: The TaskRun columns a finished run writes (the claim wrote the others): ``Outcome``'s.
OUTCOME_FIELDS = (
    "status",
    "started_at",
    "finished_at",
    "return_value",
    "error",
    "traceback",
    "log",
)

NOTHING_FIRES = "Nothing fires until the task is corrected."

#: Errors that say the database is unreachable, not that it refused the data.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)

__all__ = [
    "KEEP",
    "OUTCOME_FIELDS",
    "TRANSIENT_ERRORS",
    "Finished",
    "called",
    "cancel_running",
    "end",
    "finish",
    "finish_or_fail",
    "refuse",
    "start",
    "start_here",
    "start_queued",
]


def start(run: TaskRun, worker_id: str) -> bool:
    """QUEUED -> RUNNING for this process; False if someone else got it (or cancelled it)."""
    now = timezone.now()
    started = TaskRun.objects.filter(pk=run.pk, status=TaskRun.Status.QUEUED).update(
        status=TaskRun.Status.RUNNING, started_at=now, alive_at=now, worker_id=worker_id
    )
    if started:
        run.status, run.started_at, run.worker_id = TaskRun.Status.RUNNING, now, worker_id
        run.alive_at = now
    return bool(started)


def start_here(task: Task, origin: str, worker_id: str) -> TaskRun:
    """(none) -> RUNNING: a run this process calls itself, claimed in its own INSERT.

    Created QUEUED, a scheduler process could start it first, and the caller that asked for
    it here would find it taken.
    """
    now = timezone.now()
    return TaskRun.objects.create(
        task=task,
        status=TaskRun.Status.RUNNING,
        origin=origin,
        enqueued_at=now,
        started_at=now,
        alive_at=now,
        worker_id=worker_id,
    )


def called(run: TaskRun) -> bool:
    """RUNNING -> RUNNING as its function is called: the call counts as its first heartbeat.

    For a run a scheduler claimed (RUNNING from the claim) that another process may end before
    its call (:func:`.execution._may_end_before_its_call`): the time it waited for a thread does
    not count against ``heartbeat_timeout``. False if the run was ended meanwhile, and must not
    be called.
    """
    now = timezone.now()
    # Seen alive now; and for a task that asks for heartbeats, its first one.
    fields = {"alive_at": now}
    if getattr(run.task, "heartbeat_timeout", None):
        fields["heartbeat_at"] = now
    if TaskRun.objects.filter(pk=run.pk, status=TaskRun.Status.RUNNING).update(**fields):
        for name, value in fields.items():
            setattr(run, name, value)
        return True
    return False


def start_queued(ids: Sequence[int], worker_id: str, now: datetime) -> int:
    """QUEUED -> RUNNING for a scheduler's batch of queued runs (rows it has locked), buffered
    fires among them included."""
    return TaskRun.objects.filter(pk__in=ids, status=TaskRun.Status.QUEUED).update(
        status=TaskRun.Status.RUNNING,
        started_at=now,
        alive_at=now,
        worker_id=worker_id,
        buffered=False,
    )


def finish(finished: Sequence[Finished]) -> None:
    """RUNNING -> the outcome's status, for many runs, with their tasks' summaries.

    A few statements for any number of runs, in raw SQL rather than ``save()`` and
    ``QuerySet.update()``: a busy scheduler records thousands of runs a second. The summary
    UPDATE neither moves ``updated_at`` nor nudges the reconcile.
    """
    if not finished:
        return
    runs = sorted((run for run, _ in finished), key=lambda run: run.pk)
    using = router.db_for_write(TaskRun)
    with transaction.atomic(using=using):
        # Task rows first, then run rows: the order a claim takes them in. The other way round,
        # a claim checking its insert against a run row we are updating waits for us while we
        # wait for the task row it locked, and PostgreSQL reports a deadlock.
        task_ids = sorted({run.task_id for run in runs})
        # Switched off meanwhile (no runs left, the failure limit, a pause): no next fire,
        # whatever the job said when the run finished. (A deleted task's runs are gone.)
        off = set(task_ids) - lock_rows(Task, task_ids, using, active=True)
        if off:
            finished = [
                (run, None if run.task_id in off and upcoming is not KEEP else upcoming)
                for run, upcoming in finished
            ]
        # A run may have been ended meanwhile by someone else: TIMED_OUT by a watchdog, or
        # INTERRUPTED by a process that took ours for dead. That record stands (its retry may
        # already be queued, its failure counted); this late outcome is dropped, from the
        # task's summary too.
        live = lock_rows(TaskRun, [run.pk for run in runs], using, status=TaskRun.Status.RUNNING)
        late = [run for run in runs if run.pk not in live]
        runs = [run for run in runs if run.pk in live]
        record_summaries(fold(item for item in finished if item[0].pk in live), using)
        wake_if_waiting(task_ids, using)
        run_rows = [[run.pk, *(getattr(run, name) for name in OUTCOME_FIELDS)] for run in runs]
        update_rows(TaskRun, OUTCOME_FIELDS, run_rows, using, locked=True)
    for run in late:
        outcome = run.status
        try:
            run.refresh_from_db()
        except TaskRun.DoesNotExist:
            # Deleted with its task while it ran: nothing left to record it on.
            logger.info("Run %s finished (%s) after its task was deleted", run.pk, outcome)
            continue
        logger.warning(
            "Run %s finished (%s) after it was recorded %s; its outcome is dropped",
            run.pk,
            outcome,
            run.status,
        )
    after_outcomes(runs)


def wake_if_waiting(task_ids: Sequence[int], using: str) -> None:
    """Runs of these tasks ended, wherever (a scheduler, a fleet's worker, a watchdog): if
    fires of theirs wait for a slot, every scheduler is woken to start them (the change
    stamp, at commit) rather than at its next periodic look."""
    if exists_among(TaskRun, "task", task_ids, using, status=TaskRun.Status.QUEUED, buffered=True):
        schedule_changed(using)


def finish_or_fail(item: Finished) -> None:
    """:func:`finish` one run; if the database refuses its outcome, :func:`end` it FAILED.

    A database that is away raises (the caller keeps the outcome and retries, or orphan
    recovery ends the run later); any other refusal is the data's, and must not leave the run
    RUNNING for ever.
    """
    try:
        finish([item])
        return
    except TRANSIENT_ERRORS:
        raise
    except Exception as exc:
        logger.exception("Could not record run %s", item[0].pk)
        reason = f"Could not record the outcome: {describe_exception(exc)}"
    run = item[0]
    try:
        end([run], TaskRun.Status.FAILED, lambda run: storable_text(reason, limit=10_000))
    except Exception:
        logger.exception("Could not record run %s as FAILED", run.pk)


def end(
    runs: Iterable[TaskRun],
    status: str,
    error: Callable[[TaskRun], str],
    now: datetime | None = None,
    *,
    started: bool = True,
    from_status: str = TaskRun.Status.RUNNING,
    guard: Callable[[TaskRun], Q] | None = None,
) -> list[TaskRun]:
    """RUNNING -> ``status`` from outside the run path; returns the runs this call ended.

    For runs no outcome will come for (timed out, interrupted by a crash or a shutdown) and
    outcomes the database refused. One guarded UPDATE per run (such runs are few): only the
    process whose UPDATE took a run counts the failure and queues the retry.
    ``started=False`` says the function was never called: ``started_at`` (the claim's time)
    is cleared, so the run does not look started. ``from_status=QUEUED`` ends runs that never
    started: a hand-off a backend refused, or lost twice. ``guard`` adds to the UPDATE's WHERE
    what made the caller pick the run (a stamp older than the bound), so a run that gave a sign
    of life between the read and the write is left alone.
    """
    now = now or timezone.now()
    fields: dict[str, Any] = {} if started else {"started_at": None}
    ended: list[TaskRun] = []
    for run in runs:
        message = error(run)
        rows = TaskRun.objects.filter(pk=run.pk, status=from_status)
        if guard is not None:
            rows = rows.filter(guard(run))
        if rows.update(status=status, finished_at=now, error=message, **fields):
            run.status, run.finished_at, run.error = status, now, message
            if not started:
                run.started_at = None
            ended.append(run)
    if ended:
        wake_if_waiting(sorted({run.task_id for run in ended}), router.db_for_write(TaskRun))
    if ended and status in TaskRun.FAILED_STATUSES:
        # The task's summary says so and counts the failures; its last run's time stays (a
        # newer run may have started since this one did).
        using = router.db_for_write(Task)
        for task_id, count in Counter(run.task_id for run in ended).items():
            add_failures(task_id, count, status, using)
    after_outcomes(ended)
    return ended


def cancel_running(runs: Iterable[TaskRun], reason: str, now: datetime) -> list[TaskRun]:
    """RUNNING (or QUEUED on a backend) -> CANCELLED: the runs overlap ``cancel_other`` replaces.

    The process running one sees it ended at its next liveness beat and stops the call where
    it can (:mod:`.liveness`): a worker process is killed; a thread runs on, its outcome
    dropped. A queued one is never started (its worker finds it cancelled).
    """
    ended = []
    for run in runs:
        started = run.status == TaskRun.Status.RUNNING
        ended += end(
            [run],
            TaskRun.Status.CANCELLED,
            lambda run: reason,
            now,
            started=started,
            from_status=run.status,
        )
    for run in ended:
        logger.info("Run %s of task %s cancelled: %s", run.pk, run.task_id, reason)
    return ended


def refuse(refused: dict[int, str]) -> None:
    """Record each refused version of a row as one FAILED run, however many schedulers see it.

    Each process writes it once per refused schedule (the reconciler remembers); the run is
    keyed on the row's ``updated_at`` in the place of a fire time, so the one-run-per-fire
    constraint keeps one record however many processes (or restarts) write it, and an edited,
    still broken row gets a new one. No retry and no failure count follow: there is nothing to
    run until the row is fixed.
    """
    now = timezone.now()
    stamps = dict(Task.objects.filter(pk__in=refused).values_list("id", "updated_at"))
    runs = [
        TaskRun(
            task_id=task_id,
            status=TaskRun.Status.FAILED,
            origin=TaskRun.Origin.SCHEDULE,
            scheduled_for=stamps[task_id],
            enqueued_at=now,
            finished_at=now,
            error=storable_text(f"Not scheduled: {reason}. {NOTHING_FIRES}"),
        )
        for task_id, reason in refused.items()
        if task_id in stamps
    ]
    TaskRun.objects.bulk_create(runs, ignore_conflicts=True)
