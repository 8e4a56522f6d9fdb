"""How many of a task's fires did not run, and why, since a date: from its run history.

Every fire that does not run leaves a record (MISSED, or CANCELLED when a later fire replaced
it), and each record's error starts with the words of its cause, stored in English. One query
with conditional counts over the task's runs since the earliest date (the index on task and
enqueue time bounds it), for as many dates as asked.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from django.db.models import Count, Q

from django_tasks_sched.models import Task, TaskRun
from django_tasks_sched.reasons import COALESCED, DROPPED, LOST, NOT_RUN, REPLACED, SKIPPED


class FireCounts(NamedTuple):
    #: Missed: later than the misfire grace time, or while no scheduler ran.
    late: int
    #: Skipped by the overlap policy (max_instances reached, or a fire already waiting).
    skipped: int
    #: Dropped by OVERLAP_BUFFER_LIMIT.
    dropped: int
    #: Folded into a later fire (coalesce).
    coalesced: int
    #: Runs cancelled for a later fire (overlap cancel_other).
    replaced: int


def fire_counts(task: Task, *since: datetime) -> list[FireCounts]:
    """The task's fires that did not run, by cause, since each of ``since``: one query."""
    missed = Q(status=TaskRun.Status.MISSED)
    causes = {
        "late": missed & Q(error__startswith=NOT_RUN) & ~Q(error__startswith=LOST),
        "skipped": missed & Q(error__startswith=SKIPPED),
        "dropped": missed & Q(error__startswith=DROPPED),
        "coalesced": missed & Q(error__startswith=COALESCED),
        "replaced": Q(status=TaskRun.Status.CANCELLED, error=REPLACED),
    }
    counts = TaskRun.objects.filter(task=task, enqueued_at__gte=min(since)).aggregate(
        **{
            f"{cause}_{index}": Count("pk", filter=match & Q(enqueued_at__gte=when))
            for index, when in enumerate(since)
            for cause, match in causes.items()
        }
    )
    return [
        FireCounts(**{cause: counts[f"{cause}_{index}"] for cause in causes})
        for index in range(len(since))
    ]
