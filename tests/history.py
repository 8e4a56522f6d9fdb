"""What the run history says about a task's fires: the checks tests of real schedulers share."""

from __future__ import annotations

import itertools
from datetime import datetime

from django.db.models import QuerySet
from django.utils import timezone

from django_tasks_sched.models import Task, TaskRun
from tests.processes import SchedulerProcess, wait_until


def fire_times(runs: QuerySet[TaskRun]) -> list[datetime]:
    """The fire times of ``runs``, in order; every run here must stand for a fire."""
    times = list(runs.values_list("scheduled_for", flat=True))
    assert None not in times, "a run without a fire time among the scheduled ones"
    return sorted(time for time in times if time is not None)


def fire_gaps(runs: QuerySet[TaskRun]) -> set[float]:
    """The distinct intervals, in seconds, between consecutive fire times of ``runs``."""
    return {(b - a).total_seconds() for a, b in itertools.pairwise(fire_times(runs))}


def runs_overlapped(task: Task) -> bool:
    """Whether two runs of ``task`` were ever started and not yet finished together."""
    started = task.runs.filter(started_at__isnull=False).order_by("started_at")
    spans = [(run.started_at, run.finished_at or timezone.now()) for run in started]
    return any(
        start is not None and start < end for (_, end), (start, _) in itertools.pairwise(spans)
    )


def fires_of_a_twin(task: Task, proc: SchedulerProcess, count: int = 2) -> None:
    """Wait until ``task`` (a witness on the schedule another task would fire on) runs
    ``count`` more times: proof that the scheduler is firing, so the other one would have too.
    """
    seen = task.runs.count()
    wait_until(lambda: task.runs.count() >= seen + count, 15, proc)


def dropped_by_the_scheduler(task: Task, proc: SchedulerProcess) -> None:
    """Wait until the scheduler has dropped ``task``'s job and its runs have all ended.

    It clears the task's next fire time when it drops the job, and a fire claimed just before
    ends like any other run.
    """
    wait_until(lambda: Task.objects.get(pk=task.pk).next_run_time is None, 10, proc)
    unfinished = task.runs.filter(status__in=["QUEUED", "RUNNING"])
    wait_until(lambda: not unfinished.exists(), 10, proc)


def started_in_fire_order(runs: QuerySet[TaskRun]) -> bool:
    """Whether those of ``runs`` that started did so in the order of their fire times."""
    started = runs.filter(started_at__isnull=False).order_by("started_at", "id")
    times = [when for when in started.values_list("scheduled_for", flat=True) if when]
    return times == sorted(times)
