"""Backfill: replay a past range of a task's schedule, each fire time once.

Each fire time of the schedule in ``[start, end)`` becomes a buffered run (QUEUED, waiting for
a slot) with that time as ``scheduled_for``: the schedulers start them in order of their fire
times as slots of the task's ``max_instances`` free (``service.claims.release_buffered``), or
release them to the task's backend. Misfire grace and coalescing do not apply: a backfilled
fire hours in the past still runs. The unique constraint on (task, fire time) makes it
idempotent: a fire time that already has a run (from the schedule, or an earlier backfill)
gets no second one, however often the same range is backfilled, by however many callers.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from django.db import router, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from django_tasks_sched import bounds
from django_tasks_sched.changes import schedule_changed
from django_tasks_sched.exceptions import TaskConfigError
from django_tasks_sched.models import Task, TaskRun
from django_tasks_sched.rawsql import lock_rows

#: Most fire times one backfill creates: a bigger range is backfilled in parts.
MAX_BACKFILL = 10_000


def fire_times(task: Task, start: datetime | date, end: datetime | date) -> list[datetime]:
    """The nominal fire times of the task's schedule in ``[start, end)`` (naive: site zone).

    Raises ``TaskConfigError`` (field ``start`` or ``end``) for a range that is empty, not
    dates, or holds more than :data:`MAX_BACKFILL` fires; or the schedule's own error.
    """
    from django_tasks_sched.triggers import next_fire_times
    from django_tasks_sched.triggers.dates import default_zone, to_instant

    for field, value in (("start", start), ("end", end)):
        if not isinstance(value, date):
            raise TaskConfigError(_("must be a date or a datetime"), field=field)
        if not bounds.MIN_YEAR <= value.year <= bounds.MAX_YEAR:
            raise TaskConfigError(
                _("the year %(year)d is out of range %(min)d-%(max)d")
                % {"year": value.year, "min": bounds.MIN_YEAR, "max": bounds.MAX_YEAR},
                field=field,
            )
    start, end = to_instant(start, default_zone()), to_instant(end, default_zone())
    if start >= end:
        raise TaskConfigError(_("must be after the start"), field="end")
    if end > timezone.now():
        # Its fires would start at once, ahead of their time: the schedule fires those.
        raise TaskConfigError(_("must not be in the future"), field="end")
    trigger = task.build_trigger()
    times: list[datetime] = []
    after = start - timedelta(microseconds=1)
    # In pieces, so a short range of a frequent schedule computes no fires past its end.
    while len(times) <= MAX_BACKFILL:
        piece = next_fire_times(trigger, count=500, after=after)
        times += [when for when in piece if when < end]
        if len(piece) < 500 or piece[-1] >= end:
            break
        after = piece[-1]
    if len(times) > MAX_BACKFILL:
        raise TaskConfigError(
            _("the range holds more than %(limit)d fires; backfill it in parts")
            % {"limit": MAX_BACKFILL},
            field="end",
        )
    return times


def _jitter_of(task: Task) -> tuple[float | None, datetime | None]:
    """The task's jitter and the end of its schedule (the cap of a delayed fire)."""
    from django_tasks_sched.triggers.config import DateConfig, parse_config

    parsed = parse_config(task.trigger, task.trigger_config)
    if isinstance(parsed, DateConfig):
        return None, None
    return parsed.jitter, parsed.end_date


def backfill(task: Task, start: datetime | date, end: datetime | date) -> list[TaskRun]:
    """Queue one run per fire time in ``[start, end)`` that has none yet; return them.

    A fire time is the one the schedulers claim: with the task's jitter, delayed as they
    delay it, so a fire that ran on schedule is recognised by its time.
    """
    from django_tasks_sched.service.jitter import jittered

    jitter, until = _jitter_of(task)
    now = timezone.now()
    times = [jittered(task.pk, when, jitter, until) for when in fire_times(task, start, end)]
    # A fire its jitter delays past now is the schedule's to claim, not ours to start early.
    times = [when for when in times if when <= now]
    if not times:
        return []
    runs = [
        TaskRun(
            task=task,
            status=TaskRun.Status.QUEUED,
            origin=TaskRun.Origin.BACKFILL,
            scheduled_for=when,
            enqueued_at=now,
            buffered=True,
        )
        for when in times
    ]
    using = router.db_for_write(TaskRun)
    with transaction.atomic(using=using):
        # The task's row first, as a claim takes it: inserting runs of a task whose claim
        # holds the row, and waiting at commit for it, would deadlock with that claim.
        lock_rows(Task, [task.pk], using)
        # A fire time that has a run keeps it: the conflict drops ours.
        TaskRun.objects.using(using).bulk_create(runs, ignore_conflicts=True)
        created = list(
            TaskRun.objects.using(using)
            .filter(
                task=task,
                origin=TaskRun.Origin.BACKFILL,
                enqueued_at=now,
                scheduled_for__in=times,
            )
            .order_by("scheduled_for")
        )
        if created:
            schedule_changed(using)  # wakes the schedulers, which start them as slots free
    return created
