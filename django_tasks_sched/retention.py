"""Run history retention: delete finished runs by age and by count per task, in small batches.

Two rules, each with a task's own limit (``Task.keep_runs_days``, ``Task.keep_runs_count``) or
else the setting (``RUN_RETENTION_DAYS``, ``RUN_RETENTION_COUNT``); 0 or None means no limit.
A run goes as soon as either rule says so. Never deleted:

- a QUEUED or RUNNING run;
- by the count rule, a run enqueued within :data:`COUNT_RULE_MIN_AGE` (or the task's misfire
  grace time, when longer): its ``(task, scheduled_for)`` row is what stops a scheduler process
  that fell behind from running that fire a second time;
- a first attempt with a retry that is itself kept: the ``first_attempt`` foreign key cascades,
  so a retry chain is pruned newest-first, its first attempt with or after its last retry.

The audit trail (``TaskChange``) follows the setting's age rule too: records older than
``RUN_RETENTION_DAYS`` go, after the runs, in batches of their own.

Each batch selects ids first (MariaDB allows no ``LIMIT`` in an ``IN`` subquery) and deletes by
id in its own short transaction, so pruning never holds long locks. Nothing here touches Task
rows, so pruning never moves the schedule change stamp.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError, close_old_connections, connection, connections
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Value, Window
from django.db.models.functions import Coalesce, RowNumber
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from django_tasks_sched.conf import get_settings
from django_tasks_sched.models import Task, TaskChange, TaskRun

logger = logging.getLogger(__name__)

#: The count rule leaves runs younger than this (or the task's misfire grace time) alone.
COUNT_RULE_MIN_AGE = timedelta(hours=1)

#: Most ids in one ``IN (...)`` list: well under SQLite's limit on query parameters.
IN_LIST_LIMIT = 500

_RUN_LABEL = TaskRun._meta.label


@dataclass
class PruneReport:
    """What one pruning call deleted (or, with ``dry_run``, would delete)."""

    dry_run: bool = False
    by_age: int = 0
    by_count: int = 0
    #: Audit trail records (TaskChange) deleted for their age; not counted in ``total``.
    changes: int = 0
    batches: int = 0
    #: False when ``max_batches`` stopped the call with runs possibly left to delete.
    complete: bool = True

    @property
    def total(self) -> int:
        return self.by_age + self.by_count

    def lines(self) -> list[str]:
        """The report for people: one line per rule, then the total."""
        if self.dry_run:
            age = ngettext(
                "%(count)d run would be deleted for its age.",
                "%(count)d runs would be deleted for their age.",
                self.by_age,
            )
            count = ngettext(
                "%(count)d run would be deleted beyond its task's run count limit.",
                "%(count)d runs would be deleted beyond their task's run count limit.",
                self.by_count,
            )
        else:
            age = ngettext(
                "%(count)d run deleted for its age.",
                "%(count)d runs deleted for their age.",
                self.by_age,
            )
            count = ngettext(
                "%(count)d run deleted beyond its task's run count limit.",
                "%(count)d runs deleted beyond their task's run count limit.",
                self.by_count,
            )
        total = ngettext(
            "%(count)d run in all, in %(batches)d batch.",
            "%(count)d runs in all, in %(batches)d batches.",
            self.total,
        ) % {"count": self.total, "batches": self.batches}
        out = [age % {"count": self.by_age}, count % {"count": self.by_count}, total]
        if self.changes:
            changes = (
                ngettext(
                    "%(count)d task change record would be deleted for its age.",
                    "%(count)d task change records would be deleted for their age.",
                    self.changes,
                )
                if self.dry_run
                else ngettext(
                    "%(count)d task change record deleted for its age.",
                    "%(count)d task change records deleted for their age.",
                    self.changes,
                )
            )
            out.append(changes % {"count": self.changes})
        if not self.complete:
            out.append(_("Stopped at the batch limit; more runs may be due."))
        if self.dry_run:
            out.append(_("Dry run: nothing was deleted."))
        return out


def prune_runs(
    *,
    now: datetime | None = None,
    batch_size: int | None = None,
    max_batches: int | None = None,
    dry_run: bool = False,
) -> PruneReport:
    """Delete the finished runs the retention rules no longer keep, a batch at a time.

    ``batch_size`` defaults to ``PRUNE_BATCH_SIZE``; ``max_batches`` bounds the work of one
    call (the scheduler prunes one batch per turn). With ``dry_run``, count instead.
    """
    conf = get_settings()
    now = now or timezone.now()
    size = batch_size or conf.PRUNE_BATCH_SIZE
    report = PruneReport(dry_run=dry_run)
    age_groups = _age_groups(now, conf.RUN_RETENTION_DAYS)
    rules: list[tuple[str, Iterator[list[int]]]] = [
        ("by_age", _batches(_age_pages(age_groups, size), size)),
        ("by_count", _batches(_count_pages(now, conf.RUN_RETENTION_COUNT, age_groups, size), size)),
        ("changes", _change_pages(now, conf.RUN_RETENTION_DAYS, size)),
    ]
    for attribute, batches in rules:
        while True:
            if max_batches is not None and report.batches >= max_batches:
                report.complete = False
                return report
            ids = next(batches, None)
            if ids is None:
                break
            if dry_run:
                deleted = len(ids)
            elif attribute == "changes":
                deleted = _delete_changes(ids)
            else:
                deleted = _delete(ids)
            report.batches += 1
            setattr(report, attribute, getattr(report, attribute) + deleted)
    return report


# -- the rules: candidate ids, oldest first, a page at a time ------------------------------------


def _age_groups(now: datetime, default_days: int | None) -> list[tuple[Q, datetime]]:
    """(which tasks, cutoff) pairs: the default, then one per distinct per-task override."""
    groups: list[tuple[Q, datetime]] = []
    if default_days:
        groups.append((Q(task__keep_runs_days__isnull=True), now - timedelta(days=default_days)))
    # One query for the distinct overrides (there are few), not one per task.
    overrides = (
        Task.objects.filter(keep_runs_days__gt=0)
        .order_by()
        .values_list("keep_runs_days", flat=True)
        .distinct()
    )
    for days in sorted(filter(None, overrides)):
        groups.append((Q(task__keep_runs_days=days), now - timedelta(days=days)))
    return groups


def _age_pages(groups: list[tuple[Q, datetime]], size: int) -> Iterator[list[int]]:
    """Finished runs older than their task's age limit."""
    for group, cutoff in groups:
        # A retry is newer than its first attempt, so it may still be kept.
        kept_retry = _retries().filter(~_finished() | Q(enqueued_at__gte=cutoff))
        due = TaskRun.objects.finished().filter(group, enqueued_at__lt=cutoff)
        yield from _pages(due.exclude(Exists(kept_retry)), size)


def _count_pages(
    now: datetime, default_count: int | None, age_groups: list[tuple[Q, datetime]], size: int
) -> Iterator[list[int]]:
    """Finished runs beyond the newest ``keep_runs_count`` of their task."""
    if default_count:
        limited = Q(task__keep_runs_count__isnull=True) | Q(task__keep_runs_count__gt=0)
        keep: Any = Coalesce(F("task__keep_runs_count"), Value(default_count))
    else:
        limited, keep = Q(task__keep_runs_count__gt=0), F("task__keep_runs_count")
    # One aggregate finds the tasks over their limit: the others cost nothing more.
    over = [
        task_id
        # MySQL/MariaDB: HAVING may only name grouped columns, so the task's limit is one.
        for task_id, _ in TaskRun.objects.finished()
        .filter(limited)
        .values("task_id", "task__keep_runs_count")
        .annotate(runs=Count("pk"))
        .filter(runs__gt=keep)
        .order_by("task_id")
        .values_list("task_id", "task__keep_runs_count")
    ]
    not_due = _protected(now)
    for group, cutoff in age_groups:
        # The age rule's runs are its own: each run is counted once, in a dry run too.
        not_due |= Q(group, enqueued_at__lt=cutoff)
    for start in range(0, len(over), IN_LIST_LIMIT):
        # Ranked among all its task's finished runs, before anything is left out.
        ranked = (
            TaskRun.objects.finished()
            .filter(task_id__in=over[start : start + IN_LIST_LIMIT])
            .annotate(
                keep=keep,
                rank=Window(
                    RowNumber(),
                    partition_by=[F("task_id")],
                    order_by=[F("enqueued_at").desc(), F("id").desc()],
                ),
            )
            .filter(rank__gt=F("keep"))
            .values("pk")
        )
        # A first attempt goes after its retries (the cascade must not take a kept one).
        due = TaskRun.objects.filter(pk__in=ranked).exclude(not_due).exclude(Exists(_retries()))
        yield from _pages(due, size)


def _protected(now: datetime) -> Q:
    """Runs the count rule leaves alone: within the hour, or the task's longer grace time."""
    protected = Q(enqueued_at__gte=now - COUNT_RULE_MIN_AGE)
    # One query for the distinct longer grace times (there are few), not one per task.
    longer = (
        Task.objects.filter(misfire_grace_time__gt=COUNT_RULE_MIN_AGE.total_seconds())
        .order_by()
        .values_list("misfire_grace_time", flat=True)
        .distinct()
    )
    for grace in sorted(filter(None, longer)):
        since = now - timedelta(seconds=grace)
        protected |= Q(task__misfire_grace_time=grace, enqueued_at__gte=since)
    return protected


def _finished() -> Q:
    return Q(status__in=TaskRun.FINISHED_STATUSES)


def _retries() -> QuerySet[TaskRun]:
    """The retries of the outer query's run (for ``Exists``)."""
    return TaskRun.objects.filter(first_attempt=OuterRef("pk")).order_by()


def _pages(queryset: QuerySet[Any], size: int, when: str = "enqueued_at") -> Iterator[list[int]]:
    """The ids of ``queryset``, oldest by ``when`` first, ``size`` at a time.

    Keyset pagination (each page starts after the last row of the one before), so a dry run
    moves on although nothing is deleted, and a real one does not rescan what it deleted.
    """
    after = Q()
    while True:
        rows = list(queryset.filter(after).order_by(when, "id").values_list(when, "id")[:size])
        if rows:
            yield [pk for _, pk in rows]
        if len(rows) < size:
            return
        at, pk = rows[-1]
        # The plain lower bound lets the index on ``when`` start at the right place.
        after = Q(**{f"{when}__gte": at}) & (Q(**{f"{when}__gt": at}) | Q(id__gt=pk))


def _batches(pages: Iterator[list[int]], size: int) -> Iterator[list[int]]:
    """Regroup pages (one per task or age group, often small) into batches of ``size`` ids."""
    pending: list[int] = []
    for page in pages:
        pending += page
        while len(pending) >= size:
            yield pending[:size]
            pending = pending[size:]
    if pending:
        yield pending


def _delete(ids: list[int]) -> int:
    """Delete the runs ``ids`` that are still finished and have no unfinished retry."""
    deleted = 0
    # One statement per batch, but for SQLite's limit on query parameters.
    step = IN_LIST_LIMIT if connection.features.max_query_params else max(len(ids), 1)
    for start in range(0, len(ids), step):
        chunk = ids[start : start + step]
        # Checked again here: a run may have been retried since it was selected, and the
        # first_attempt cascade must never take a queued or running retry with it.
        # Collector.delete() runs the DELETE in its own short transaction; only() keeps it
        # from loading the runs' logs and tracebacks just to delete them.
        _, per_model = (
            TaskRun.objects.filter(pk__in=chunk)
            .filter(_finished())
            .exclude(Exists(_retries().exclude(_finished())))
            .only("pk")
            .delete()
        )
        deleted += per_model.get(_RUN_LABEL, 0)
    return deleted


def _change_pages(now: datetime, days: int | None, size: int) -> Iterator[list[int]]:
    """Audit trail records older than ``days``, oldest first (none without an age limit)."""
    if days:
        yield from _pages(TaskChange.objects.filter(at__lt=now - timedelta(days=days)), size, "at")


def _delete_changes(ids: list[int]) -> int:
    """Delete the audit records ``ids`` (nothing refers to them: one DELETE per chunk)."""
    deleted = 0
    step = IN_LIST_LIMIT if connection.features.max_query_params else max(len(ids), 1)
    for start in range(0, len(ids), step):
        deleted += TaskChange.objects.filter(pk__in=ids[start : start + step]).delete()[0]
    return deleted


# -- the scheduler's side ---------------------------------------------------------------------


class Pruner:
    """Prunes run history for a scheduler process, one batch at a time.

    Either call :meth:`maybe_prune` on every turn of the scheduler's loop, or run :meth:`run`
    in a thread of its own. Nothing happens until a pass is due (every ``PRUNE_INTERVAL``
    seconds); a pass deletes one batch, and while a backlog remains the next batch follows
    :data:`CATCH_UP_PAUSE` seconds later, so no call holds the database (or the loop) for long
    and a large backlog still drains at about a batch per second.
    """

    #: Seconds between batches while a backlog remains.
    CATCH_UP_PAUSE = 1.0
    #: The first pass comes within this many seconds of start (or the interval, if shorter).
    FIRST_PASS_SPREAD = 60.0

    def __init__(
        self,
        interval: float | None,
        batch_size: int,
        *,
        first_pass_in: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.batch_size = batch_size
        self.clock = clock
        self.next_due = clock() + first_pass_in

    @classmethod
    def from_settings(cls) -> Pruner:
        """A pruner with ``PRUNE_INTERVAL`` and ``PRUNE_BATCH_SIZE``."""
        conf = get_settings()
        interval = conf.PRUNE_INTERVAL
        # Scheduler processes started together (a deploy) would otherwise prune in lockstep.
        spread = random.uniform(0, min(interval, cls.FIRST_PASS_SPREAD)) if interval else 0.0
        return cls(interval, conf.PRUNE_BATCH_SIZE, first_pass_in=spread)

    def maybe_prune(self, now: float | None = None) -> PruneReport | None:
        """Prune one batch if a pass is due (``now``: the loop's ``time.monotonic()``).

        Returns the report, or None when nothing was due or pruning failed. A failure is
        logged and never raised: housekeeping must not stop the scheduler.
        """
        if self.interval is None:
            return None
        now = self.clock() if now is None else now
        if now < self.next_due:
            return None
        try:
            report = prune_runs(batch_size=self.batch_size, max_batches=1)
        except DatabaseError:
            logger.warning(
                "Could not prune run history; next try in %ss", self.interval, exc_info=True
            )
            self.next_due = now + self.interval
            return None
        except Exception:
            logger.exception("Pruning run history failed; next try in %ss", self.interval)
            self.next_due = now + self.interval
            return None
        pause = self.interval if report.complete else min(self.interval, self.CATCH_UP_PAUSE)
        self.next_due = now + pause
        if report.total:
            logger.info(
                "Pruned %d run(s): %d for their age, %d beyond their task's count limit",
                report.total,
                report.by_age,
                report.by_count,
            )
        if report.changes:
            logger.info("Pruned %d task change record(s) for their age", report.changes)
        return report

    def run(self, stopping: threading.Event) -> None:
        """Prune until ``stopping`` is set: the body of a background thread."""
        if self.interval is None:
            return
        try:
            while not stopping.wait(max(0.0, self.next_due - self.clock())):
                # This thread's own connection: mind CONN_MAX_AGE and broken connections.
                close_old_connections()
                self.maybe_prune()
        finally:
            connections.close_all()  # only this thread's connections
