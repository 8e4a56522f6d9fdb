"""Which alerts should be raised now, from the runs and the scheduler processes.

Cheap at 100,000 tasks: only tasks with an alert on are read; the failure and missed states
come from the runs finished since the previous check (a watermark, read in bounded pages),
not the history; the dead man's switch reads one latest success per task that asks for it;
and stored states are compared first, so only real changes write.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q, QuerySet
from django.db.models.functions import Substr
from django.utils import timezone

from django_tasks_sched import bounds
from django_tasks_sched.alerts.config import AlertSettings, alert_settings
from django_tasks_sched.alerts.states import DETAIL_LIMIT, Change, flip
from django_tasks_sched.models import AlertState, SchedulerProcess, Task, TaskRun

logger = logging.getLogger(__name__)

Kind = AlertState.Kind

#: How far back the first check of a process reads runs (states older than that were raised by
#: whichever process was checking then, and are stored).
LOOKBACK = timedelta(hours=1)
#: Runs re-read before the watermark: a run's finished_at is stamped before its transaction
#: commits, and hosts' clocks differ a little.
MARGIN = timedelta(seconds=60)
#: Outcomes besides the failures that change an alert (a cancelled run changes none).
OTHER_OUTCOMES = (TaskRun.Status.SUCCESSFUL, TaskRun.Status.MISSED)
#: The longest dead man's switch, in minutes (the setting's and the field's bound).
MAX_MINUTES = bounds.MAX_DURATION // 60
#: Runs per page, and pages per check (the rest is read at the next check).
PAGE = 2000
MAX_PAGES = 25


def alert_on(kind: str, conf: AlertSettings, prefix: str = "") -> Q:
    """The tasks that have the alert ``kind`` on: their own field, else the settings default.

    ``prefix``: the path to the task from the model queried (``"task__"`` for runs).
    """
    if kind == Kind.NO_SUCCESS:
        field, default = f"{prefix}alert_no_success_minutes", conf.NO_SUCCESS_MINUTES is not None
        # ">= 0" is "IS NOT NULL" for this unsigned column, in a form SQLite finds through
        # the index (it scans the table for IS NOT NULL).
        on = Q(**{f"{field}__gte": 0})
    else:
        name = "alert_on_failure" if kind == Kind.FAILURE else "alert_on_missed"
        field = prefix + name
        default = conf.ON_FAILURE if kind == Kind.FAILURE else conf.ON_MISSED
        on = Q(**{field: True})
    return on | Q(**{f"{field}__isnull": True}) if default else on


def no_success_watched(conf: AlertSettings) -> QuerySet[Task]:
    """The tasks whose dead man's switch is on: active, with the alert on."""
    return Task.objects.filter(alert_on(Kind.NO_SUCCESS, conf), active=True)


def no_success_minutes(own: int | None, conf: AlertSettings) -> int:
    """A task's dead man's minutes: its own, else the default; bounded, since a row written
    past validation could hold a number of minutes no date can be that far from."""
    return min(own or conf.NO_SUCCESS_MINUTES or MAX_MINUTES, MAX_MINUTES)


def is_silent(
    last_success: datetime | None, created_at: datetime, minutes: int, now: datetime
) -> bool:
    """Whether a task has had no success for ``minutes``: since its last success (kept on the
    task, whatever retention deleted), else since its creation."""
    return (last_success or created_at) <= now - timedelta(minutes=minutes)


class AlertChecker:
    """Evaluates the alerts, again and again (a scheduler's thread) or once (``checkalerts``).

    Each change this process wins is handed to ``notify`` at once, before the check goes on:
    a later part of the check failing (the database away) cannot leave a flipped alert unsent.
    """

    def __init__(
        self, since: datetime | None = None, notify: Callable[[Change], object] | None = None
    ) -> None:
        #: Runs finished before this were read by an earlier check (less the margin).
        self.watermark = since
        #: Where a check that did not catch up stopped: the next one resumes exactly there.
        self.position: tuple[datetime, int] | None = None
        self.notify = notify

    def check(self, now: datetime | None = None, *, no_scheduler: bool = False) -> list[Change]:
        """Flip every alert whose state changed; return the changes this process won.

        Each part is checked on its own: one failing is logged and the others still run.
        """
        now = now or timezone.now()
        conf = alert_settings()
        parts: list[tuple[str, Callable[[], list[Change]]]] = [
            ("runs", lambda: self.check_runs(now, conf)),
            ("no success", lambda: self.check_no_success(now, conf)),
            ("switched off", lambda: self.clear_switched_off(now, conf)),
        ]
        if no_scheduler:
            parts.append(("no scheduler", lambda: self._won(check_no_scheduler(now))))
        changes: list[Change] = []
        for name, part in parts:
            try:
                changes += part()
            except Exception as exc:
                # The database away, most likely: the next check tries again.
                logger.warning("Alert check failed (%s): %r", name, exc)
        return changes

    def check_runs(self, now: datetime, conf: AlertSettings) -> list[Change]:
        """Failure and missed, from the runs finished since the last check, oldest first."""
        runs = (
            TaskRun.objects.filter(
                alert_on(Kind.FAILURE, conf, "task__") | alert_on(Kind.MISSED, conf, "task__"),
                finished_at__lte=now,
                status__in=[
                    *TaskRun.FAILED_STATUSES,
                    TaskRun.Status.SUCCESSFUL,
                    TaskRun.Status.MISSED,
                ],
            )
            .order_by("finished_at", "pk")
            # Only the head of the error: a run's error can be megabytes.
            .annotate(error_head=Substr("error", 1, DETAIL_LIMIT))
            .values_list("pk", "task_id", "status", "finished_at", "error_head")
        )
        if self.position is None:
            # At the live edge: from a little before the last check (commits land late).
            runs = runs.filter(finished_at__gte=(self.watermark or now - LOOKBACK) - MARGIN)
        # (task, kind) -> (raised, when, detail): the latest outcome of each, in finish order.
        latest: dict[tuple[int, str], tuple[bool, datetime, str]] = {}
        caught_up, last = False, self.position
        for _page in range(MAX_PAGES):
            page = list(runs.filter(_after(last))[:PAGE]) if last else list(runs[:PAGE])
            for pk, task_id, status, finished_at, error in page:
                assert finished_at is not None  # filtered on it
                for kind, raised in _states_after(status):
                    latest[(task_id, kind)] = (raised, finished_at, f"{status}: {error}")
                last = finished_at, pk
            if len(page) < PAGE:
                caught_up = True
                break
        # Caught up: the next check starts at the live edge. Behind (a backlog bigger than a
        # check reads): it resumes exactly after the last run read, never re-reading a margin,
        # so a backlog shrinks by a check's pages each time.
        self.watermark, self.position = (now, None) if caught_up else (self.watermark, last)
        enabled = _enabled_kinds({task_id for task_id, _kind in latest}, conf)
        wanted = {key: value for key, value in latest.items() if key[1] in enabled.get(key[0], ())}
        return self._apply(wanted)

    def check_no_success(self, now: datetime, conf: AlertSettings) -> list[Change]:
        """The dead man's switch: active tasks with no successful run for their N minutes."""
        tasks = no_success_watched(conf).values_list(
            "pk", "alert_no_success_minutes", "created_at", "last_success_at"
        )
        wanted = {}
        for task_id, own, created_at, success in tasks.order_by().iterator(chunk_size=2000):
            minutes = no_success_minutes(own, conf)
            detail = f"No successful run for {minutes} minute(s); last success: " + (
                success.isoformat() if success else "never"
            )
            late = is_silent(success, created_at, minutes, now)
            wanted[(task_id, Kind.NO_SUCCESS.value)] = (late, now, detail)
        return self._apply(wanted)

    def clear_switched_off(self, now: datetime, conf: AlertSettings) -> list[Change]:
        """Resolve the raised alerts of tasks that no longer ask for them (or were paused)."""
        raised = AlertState.objects.filter(raised=True, task__isnull=False)
        if not raised.exists():
            return []  # nothing to clear: one cheap read, not the three-way query below
        off = (
            raised.filter(kind=Kind.FAILURE).exclude(task__in=_tasks(Kind.FAILURE, conf))
            | raised.filter(kind=Kind.MISSED).exclude(task__in=_tasks(Kind.MISSED, conf))
            | raised.filter(kind=Kind.NO_SUCCESS).exclude(
                task__in=_tasks(Kind.NO_SUCCESS, conf).filter(active=True)
            )
        )
        changes = []
        for task_id, kind in off.values_list("task_id", "kind")[:PAGE]:
            change = flip(task_id, kind, False, now, "The alert was switched off.")
            if change:
                changes += self._won([change])
        return changes

    def _apply(self, wanted: dict[tuple[int, str], tuple[bool, datetime, str]]) -> list[Change]:
        """Flip the alerts whose wanted state differs from the stored one."""
        if not wanted:
            return []
        stored: dict[tuple[int, str], bool] = {}
        ids = sorted({task_id for task_id, _kind in wanted})
        for start in range(0, len(ids), 1000):
            rows = AlertState.objects.filter(task_id__in=ids[start : start + 1000])
            for task_id, kind, raised in rows.values_list("task_id", "kind", "raised"):
                stored[(task_id, kind)] = raised
        changes = []
        for (task_id, kind), (raised, at, detail) in wanted.items():
            if stored.get((task_id, kind), False) == raised:
                continue
            change = flip(task_id, kind, raised, at, detail)
            if change:
                changes += self._won([change])
        return changes

    def _won(self, changes: list[Change]) -> list[Change]:
        """Hand the changes this process won to ``notify``, at once."""
        if self.notify is not None:
            for change in changes:
                self.notify(change)
        return changes


def check_no_scheduler(now: datetime | None = None) -> list[Change]:
    """Raise or clear "no scheduler process alive" (not from a scheduler: see checkalerts)."""
    now = now or timezone.now()
    alive = SchedulerProcess.objects.alive().exists()
    detail = "" if alive else "No runscheduler process has sent a heartbeat recently."
    change = flip(None, Kind.NO_SCHEDULER, not alive, now, detail)
    return [change] if change else []


def _tasks(kind: str, conf: AlertSettings) -> QuerySet[Task, Any]:
    return Task.objects.filter(alert_on(kind, conf)).values("pk")


def _after(last: tuple[datetime, int]) -> Q:
    """Keyset paging: the runs after ``last`` in (finished_at, pk) order."""
    finished_at, pk = last
    return Q(finished_at__gt=finished_at) | Q(finished_at=finished_at, pk__gt=pk)


def _states_after(status: str) -> list[tuple[str, bool]]:
    """What a run that ended with ``status`` says about its task's alerts."""
    if status == TaskRun.Status.MISSED:
        return [(Kind.MISSED.value, True)]
    # Any run that ran clears "missed"; only a success clears "failure".
    return [
        (Kind.FAILURE.value, status != TaskRun.Status.SUCCESSFUL),
        (Kind.MISSED.value, False),
    ]


def _enabled_kinds(task_ids: set[int], conf: AlertSettings) -> dict[int, set[str]]:
    enabled: dict[int, set[str]] = {}
    for kind in (Kind.FAILURE, Kind.MISSED):
        ids = list(task_ids)
        for start in range(0, len(ids), 1000):  # bounded IN lists (SQLite's variable limit)
            chunk = ids[start : start + 1000]
            rows = Task.objects.filter(alert_on(kind, conf), pk__in=chunk).values_list("pk")
            for (pk,) in rows:
                enabled.setdefault(pk, set()).add(kind.value)
    return enabled
