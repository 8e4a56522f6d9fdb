"""How many of a task's fires did not run, and why, since a date: from its run history.

Every fire that does not run leaves a record (MISSED, or CANCELLED when a later fire replaced
it), and each record's error starts with the words of its cause, stored in English. One query
with conditional counts over the task's runs since the date (the index on task and enqueue
time bounds it).
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from django.db.models import Count, Q

from django_tasks_sched.models import Task, TaskRun
from django_tasks_sched.overlap import DROPPED, REPLACED, SKIPPED

#: The error's opening words for fires missed because they were late (past the misfire grace
#: time, or while no scheduler ran) and for fires folded into a later one.
LATE = "Not run:"
COALESCED = "Coalesced:"
#: A hand-off its backend lost twice (``fleet.handoff``): not a late fire.
LOST = "Not run: handed to backend"


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


def fire_counts(task: Task, since: datetime) -> FireCounts:
    """The task's fires since ``since`` that did not run, by cause."""
    missed = Q(status=TaskRun.Status.MISSED)
    counts = TaskRun.objects.filter(task=task, enqueued_at__gte=since).aggregate(
        late=Count("pk", filter=missed & Q(error__startswith=LATE) & ~Q(error__startswith=LOST)),
        skipped=Count("pk", filter=missed & Q(error__startswith=SKIPPED)),
        dropped=Count("pk", filter=missed & Q(error__startswith=DROPPED)),
        coalesced=Count("pk", filter=missed & Q(error__startswith=COALESCED)),
        replaced=Count("pk", filter=Q(status=TaskRun.Status.CANCELLED, error=REPLACED)),
    )
    return FireCounts(**counts)
