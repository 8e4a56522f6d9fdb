"""What the admin's dashboard shows, as plain values: one function per section.

Each section is bounded whatever the tables hold (100,000 tasks, a million runs): a LIMIT, the
worst N tasks, aggregates computed by the database over an indexed time range, and a fixed
number of queries (the same however many rows there are), never one per task. Where a bound
cuts a list short, the section carries the full count so the page can say how many more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, Q
from django.utils import timezone

from django_tasks_sched.alerts.config import alert_settings
from django_tasks_sched.alerts.evaluate import is_silent, no_success_minutes, no_success_watched
from django_tasks_sched.conf import get_settings
from django_tasks_sched.firing import firing
from django_tasks_sched.models import SchedulerProcess, Task, TaskRun
from django_tasks_sched.service.housekeeping import heartbeat_missed, past_timeout, silent_runs

Row = TypeVar("Row")

#: Rows shown in each list section, and tasks in the per-task charts.
SHOWN = 20
#: Processes shown: the alive ones first, then the most recently seen dead ones.
PROCESSES_SHOWN = 50
#: Tasks whose repeated fires in the timeline's window are worked out from their schedule.
EXPANDED_TASKS = 200
#: Fires worked out per task and window at most (a task every second fires 3,600 times an hour);
#: a task with more is counted in ``Timeline.capped``, and the chart's counts are "at least".
FIRES_PER_TASK = 100
#: RUNNING runs checked for a missed timeout or heartbeat, the oldest first.
RUNNING_CHECKED = 1000
#: Tasks with a "no success" bound checked, the longest without a success first.
NO_SUCCESS_CHECKED = 500
#: A live scheduler fires a task within about a second and then moves ``next_run_time`` on; a
#: next run time this far in the past means the task is not being fired.
OVERDUE_AFTER = timedelta(minutes=2)
#: The outcomes a success rate counts (a cancelled run was never meant to run).
OUTCOMES = TaskRun.FAILED_STATUSES | {TaskRun.Status.SUCCESSFUL, TaskRun.Status.MISSED}


@dataclass(frozen=True)
class Process:
    process: SchedulerProcess
    alive: bool
    in_flight: int


@dataclass(frozen=True)
class Processes:
    rows: list[Process]
    #: RUNNING runs of every process, schedulers or not (inline callers, a fleet's workers).
    running: int
    alive: int


@dataclass(frozen=True)
class Slot:
    start: datetime
    end: datetime
    fires: int


@dataclass(frozen=True)
class Timeline:
    start: datetime
    end: datetime
    slots: list[Slot]
    #: Tasks whose next fire falls in the window.
    tasks: int
    #: Tasks with a fire in the window whose later fires in it were not worked out.
    not_expanded: int
    #: Tasks that fire more than :data:`FIRES_PER_TASK` times in the window: only that many of
    #: their fires are counted.
    capped: int
    #: The first fires in the window: (task, fire time).
    next_fires: list[tuple[Task, datetime]]

    @property
    def fires(self) -> int:
        return sum(slot.fires for slot in self.slots)


@dataclass(frozen=True)
class Listed(Generic[Row]):
    """The first rows of a section, and how many there are in all."""

    rows: Sequence[Row]
    total: int

    @property
    def more(self) -> int:
        return max(0, self.total - len(self.rows))


@dataclass(frozen=True)
class Stuck:
    run: TaskRun
    #: ``silent`` (its process stopped saying it is alive), ``timeout`` or ``heartbeat``.
    reason: str


@dataclass(frozen=True)
class Bucket:
    start: datetime
    end: datetime
    outcomes: int = 0
    successful: int = 0
    lateness: timedelta | None = None

    @property
    def failed(self) -> int:
        return self.outcomes - self.successful


@dataclass(frozen=True)
class TaskHealth:
    task: Task
    day: list[Bucket]
    week: list[Bucket]

    @staticmethod
    def _rate(buckets: Sequence[Bucket]) -> float | None:
        outcomes = sum(b.outcomes for b in buckets)
        return None if not outcomes else sum(b.successful for b in buckets) / outcomes

    @property
    def day_rate(self) -> float | None:
        return self._rate(self.day)

    @property
    def week_rate(self) -> float | None:
        return self._rate(self.week)

    @property
    def day_lateness(self) -> timedelta | None:
        return max((b.lateness for b in self.day if b.lateness is not None), default=None)

    @property
    def week_lateness(self) -> timedelta | None:
        return max((b.lateness for b in self.week if b.lateness is not None), default=None)


@dataclass(frozen=True)
class NoSuccess:
    task: Task
    #: Its last successful run's end (None: none is recorded).
    last_success: datetime | None
    minutes: int


@dataclass(frozen=True)
class Dashboard:
    now: datetime
    firing: bool
    processes: Processes
    hour: Timeline
    day: Timeline
    overdue: Listed[Task]
    stuck: Listed[Stuck]
    retrying: Listed[TaskRun]
    health: list[TaskHealth] = field(default_factory=list)
    no_success: Listed[NoSuccess] = field(default_factory=lambda: Listed([], 0))


def dashboard(now: datetime | None = None) -> Dashboard:
    """Every section of the dashboard, as of ``now``."""
    now = now or timezone.now()
    processes = live_processes(now)
    firing_on = firing().on
    return Dashboard(
        now=now,
        firing=firing_on,
        processes=processes,
        hour=timeline(now, timedelta(hours=1), timedelta(minutes=5)),
        day=timeline(now, timedelta(days=1), timedelta(hours=1)),
        # Without a live scheduler firing, every task is "overdue": the page says so once.
        overdue=overdue_tasks(now) if processes.alive and firing_on else Listed([], 0),
        stuck=stuck_runs(now),
        retrying=retrying_runs(now),
        health=task_health(now),
        no_success=no_success(now),
    )


def live_processes(now: datetime) -> Processes:
    """Scheduler processes, alive first, with their RUNNING runs counted in one GROUP BY."""
    cutoff = now - timedelta(seconds=get_settings().HEARTBEAT_TIMEOUT)
    rows = list(SchedulerProcess.objects.order_by("-last_seen", "pk")[:PROCESSES_SHOWN])
    counts = dict(
        TaskRun.objects.running()
        .filter(worker_id__in=[p.worker_id for p in rows])
        .values_list("worker_id")
        .annotate(n=Count("pk"))
        .order_by()
    )
    shown = [Process(p, p.last_seen >= cutoff, counts.get(p.worker_id, 0)) for p in rows]
    return Processes(
        rows=shown,
        running=TaskRun.objects.running().count(),
        alive=sum(p.alive for p in shown),
    )


def timeline(now: datetime, span: timedelta, step: timedelta) -> Timeline:
    """The fires from ``now`` to ``now + span`` in slots of ``step``.

    The database counts each active task's next fire per slot (one query over the index on
    ``(active, next_run_time)``); the later fires in the window are worked out from the
    schedule for the first :data:`EXPANDED_TASKS` tasks only, and the rest are counted in
    ``not_expanded``.
    """
    end = now + span
    bounds = [(now + step * i, min(end, now + step * (i + 1))) for i in range(-(-span // step))]
    window = Task.objects.active().filter(next_run_time__gte=now, next_run_time__lt=end)
    counts = window.aggregate(
        total=Count("pk"),
        **{
            f"s{i}": Count("pk", filter=Q(next_run_time__gte=lo, next_run_time__lt=hi))
            for i, (lo, hi) in enumerate(bounds)
        },
    )
    fires = [counts[f"s{i}"] for i in range(len(bounds))]
    first = list(
        window.order_by("next_run_time", "pk").only(
            "name", "trigger", "trigger_config", "next_run_time", "created_at"
        )[:EXPANDED_TASKS]
    )
    capped = 0
    for task in first:
        assert task.next_run_time is not None  # the window's filter
        later = _later_fires(task, task.next_run_time, end)
        capped += len(later) >= FIRES_PER_TASK
        for when in later:
            fires[int((when - now) // step)] += 1
    return Timeline(
        start=now,
        end=end,
        slots=[Slot(lo, hi, n) for (lo, hi), n in zip(bounds, fires, strict=True)],
        tasks=counts["total"],
        not_expanded=max(0, counts["total"] - len(first)),
        capped=capped,
        next_fires=[(task, task.next_run_time) for task in first[:SHOWN] if task.next_run_time],
    )


def _later_fires(task: Task, after: datetime, end: datetime) -> list[datetime]:
    """The task's fires after ``after`` and before ``end``, at most :data:`FIRES_PER_TASK`.

    Asked for in growing batches: most tasks fire a few times in a window, and working out
    hundreds of fires for each would cost more than the whole of the page's queries.
    """
    found: list[datetime] = []
    count = 8
    while len(found) < FIRES_PER_TASK:
        try:
            batch = task.next_fire_times(count=count, after=after)
        except Exception:  # a row forced past validation: its first fire is all that is shown
            return found
        inside = [when for when in batch if when < end]
        found += inside
        if len(inside) < count:
            break
        after, count = batch[-1], min(count * 4, FIRES_PER_TASK - len(found))
    return found


def overdue_tasks(now: datetime) -> Listed[Task]:
    """Active tasks whose next run time is well past: no scheduler is firing them."""
    late = Task.objects.active().filter(next_run_time__lt=now - OVERDUE_AFTER)
    rows = list(late.order_by("next_run_time", "pk").only("name", "next_run_time")[:SHOWN])
    return Listed(rows, late.count())


def stuck_runs(now: datetime) -> Listed[Stuck]:
    """RUNNING runs that housekeeping would end: silent, past their timeout or heartbeat.

    The rules are housekeeping's own (:mod:`django_tasks_sched.service.housekeeping`); they
    are ended at a live scheduler's next pass, so a long list here means none is doing it.
    """
    cutoff = now - timedelta(seconds=get_settings().HEARTBEAT_TIMEOUT)
    fields = ["task__name", "task__timeout", "task__heartbeat_timeout", "started_at"]
    fields += ["alive_at", "heartbeat_at", "worker_id", "attempt"]
    silent = silent_runs(cutoff).select_related("task").only(*fields)
    found = [Stuck(run, "silent") for run in silent.order_by("started_at", "pk")[:SHOWN]]
    silent_total = silent.count()
    # The silent ones are counted above; a run both silent and past its timeout, once.
    bounded = (
        TaskRun.objects.running()
        .filter(Q(task__timeout__isnull=False) | Q(task__heartbeat_timeout__isnull=False))
        .exclude(pk__in=silent_runs(cutoff).values("pk"))
        .select_related("task")
        .only(*fields)
        .order_by("started_at", "pk")[:RUNNING_CHECKED]
    )
    others = 0
    for run in bounded:
        reason = "timeout" if past_timeout(run, now) else None
        reason = reason or ("heartbeat" if heartbeat_missed(run, now) else None)
        if reason:
            others += 1
            if len(found) < SHOWN:
                found.append(Stuck(run, reason))
    return Listed(found, silent_total + others)


def retrying_runs(now: datetime) -> Listed[TaskRun]:
    """Retries queued or running, and queued runs waiting for their ``not_before``."""
    runs = TaskRun.objects.unfinished().filter(Q(attempt__gt=1) | Q(not_before__gt=now))
    rows = list(
        runs.select_related("task")
        .only("task__name", "status", "attempt", "not_before", "error", "enqueued_at")
        .order_by("status", "-enqueued_at", "-pk")[:SHOWN]
    )
    return Listed(rows, runs.count())


def task_health(now: datetime) -> list[TaskHealth]:
    """The :data:`SHOWN` tasks with the most failed outcomes over the week (then the busiest):
    success and lateness per hour of the last day and per day of the week, in two queries."""
    week_ago = now - timedelta(days=7)
    recent = TaskRun.objects.filter(status__in=OUTCOMES, enqueued_at__gte=week_ago)
    failed = Q(status__in=OUTCOMES - {TaskRun.Status.SUCCESSFUL})
    worst = list(
        recent.values_list("task_id", flat=True)
        .annotate(bad=Count("pk", filter=failed), total=Count("pk"))
        .order_by("-bad", "-total", "task_id")[:SHOWN]
    )
    if not worst:
        return []
    hours = [(now - timedelta(hours=24 - i), now - timedelta(hours=23 - i)) for i in range(24)]
    days = [(now - timedelta(days=7 - i), now - timedelta(days=6 - i)) for i in range(7)]
    lateness = ExpressionWrapper(F("started_at") - F("scheduled_for"), output_field=DurationField())
    scheduled = Q(origin=TaskRun.Origin.SCHEDULE, started_at__isnull=False)
    aggregates: dict[str, Any] = {}
    for name, bounds in (("h", hours), ("d", days)):
        for i, (lo, hi) in enumerate(bounds):
            within = Q(enqueued_at__gte=lo, enqueued_at__lt=hi)
            aggregates[f"{name}{i}n"] = Count("pk", filter=within)
            ok = within & Q(status=TaskRun.Status.SUCCESSFUL)
            aggregates[f"{name}{i}ok"] = Count("pk", filter=ok)
            aggregates[f"{name}{i}late"] = Avg(lateness, filter=within & scheduled)
    # Typed loosely: the two django-stubs series type values() rows differently.
    per_task: dict[int, Any] = {
        row["task_id"]: row
        for row in recent.filter(task_id__in=worst)
        .values("task_id")
        .annotate(**aggregates)
        .order_by()
    }
    tasks = Task.objects.only("name").in_bulk(worst)

    def buckets(name: str, bounds: list[tuple[datetime, datetime]], row: Any) -> list[Bucket]:
        return [
            Bucket(lo, hi, row[f"{name}{i}n"], row[f"{name}{i}ok"], row[f"{name}{i}late"])
            for i, (lo, hi) in enumerate(bounds)
        ]

    return [
        TaskHealth(tasks[pk], buckets("h", hours, per_task[pk]), buckets("d", days, per_task[pk]))
        for pk in worst
        if pk in tasks and pk in per_task
    ]


def no_success(now: datetime) -> Listed[NoSuccess]:
    """Active tasks whose dead man's switch is on and whose last success is older than it.

    The alerts' own rule (:mod:`django_tasks_sched.alerts.evaluate`: which tasks, how many
    minutes, since when). The tasks with the oldest last success are checked first, at most
    :data:`NO_SUCCESS_CHECKED` of them.
    """
    conf = alert_settings()
    candidates = (
        no_success_watched(conf)
        .only("name", "alert_no_success_minutes", "created_at", "last_success_at")
        .order_by(F("last_success_at").asc(nulls_first=True), "created_at", "pk")[
            :NO_SUCCESS_CHECKED
        ]
    )
    late = []
    for task in candidates:
        minutes = no_success_minutes(task.alert_no_success_minutes, conf)
        if is_silent(task.last_success_at, task.created_at, minutes, now):
            late.append(NoSuccess(task, task.last_success_at, minutes))
    return Listed(late[:SHOWN], len(late))
