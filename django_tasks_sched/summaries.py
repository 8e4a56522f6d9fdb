"""A task's last-run summary (``last_run_at``, ``last_run_status``, ``last_success_at``, the
failure count, the next fire time), folded over the runs that finished and written for many
tasks at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import F

from django_tasks_sched.models import Task, TaskRun
from django_tasks_sched.rawsql import update_rows

#: Marks "leave next_run_time as it is" (None is a meaningful value: no next fire).
KEEP = object()


def fold(finished: Iterable[tuple[TaskRun, object]]) -> dict[int, Summary]:
    """Each task's summary over ``(run, next_run_time)`` pairs, in the order they finished."""
    summaries: dict[int, Summary] = {}
    for run, next_run_time in finished:
        summaries.setdefault(run.task_id, Summary()).fold(run, next_run_time)
    return summaries


@dataclass
class Summary:
    """One task's last-run fields, folded over its runs in the order they finished."""

    # Each failure adds one to consecutive_failures and any other outcome resets it: after
    # folding, a reset task stores ``add``, any other adds ``add`` to its stored count.
    reset: bool = False
    add: int = 0
    last_run_at: datetime | None = None
    last_run_status: str = ""
    #: None: no success among these runs (the stored value stands).
    last_success_at: datetime | None = None
    next_run_time: object = KEEP

    def fold(self, run: TaskRun, next_run_time: object) -> None:
        if run.status in TaskRun.FAILED_STATUSES:
            self.add += 1
        else:
            self.reset, self.add = True, 0
        self.last_run_at = run.started_at or run.finished_at
        self.last_run_status = str(run.status)
        if run.status == TaskRun.Status.SUCCESSFUL:
            self.last_success_at = run.finished_at or self.last_run_at
        if next_run_time is not KEEP:
            self.next_run_time = next_run_time


def record_summaries(summaries: dict[int, Summary], using: str) -> None:
    """The tasks' last-run fields, with one UPDATE for many tasks where the values are known.

    The caller has locked the task rows, in a transaction (``lifecycle.finish``).
    """
    # Grouped by which optional columns the rows set: one UPDATE per group.
    known: dict[tuple[bool, bool], list[list[Any]]] = {}
    counting: list[tuple[int, Summary]] = []
    for task_id, summary in sorted(summaries.items()):
        if not summary.reset:
            counting.append((task_id, summary))
            continue
        with_next = summary.next_run_time is not KEEP
        with_success = summary.last_success_at is not None
        row: list[Any] = [task_id, summary.last_run_at, summary.last_run_status, summary.add]
        row += [summary.next_run_time] if with_next else []
        row += [summary.last_success_at] if with_success else []
        known.setdefault((with_next, with_success), []).append(row)
    for (with_next, with_success), rows in known.items():
        names = ["last_run_at", "last_run_status", "consecutive_failures"]
        names += ["next_run_time"] if with_next else []
        names += ["last_success_at"] if with_success else []
        update_rows(Task, names, rows, using, locked=True)
    # Only failures since the last write: they add to the stored count (rare: row by row).
    for task_id, summary in counting:
        fields: dict[str, Any] = {"last_run_at": summary.last_run_at}
        if summary.next_run_time is not KEEP:
            fields["next_run_time"] = summary.next_run_time
        add_failures(task_id, summary.add, summary.last_run_status, using, **fields)


def add_failures(task_id: int, count: int, status: str, using: str, **fields: Any) -> None:
    """Add ``count`` failures to the task's consecutive count (the one place that counts them)."""
    # Quietly: bookkeeping must neither move updated_at nor nudge the reconcile.
    Task.objects.using(using).filter(pk=task_id).update_quietly(
        consecutive_failures=F("consecutive_failures") + count, last_run_status=status, **fields
    )
