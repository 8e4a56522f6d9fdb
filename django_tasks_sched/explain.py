"""Why a task did not run, or will not: one answer for ``manage.py explaintask`` and the admin.

Each check reads what the scheduler itself reads: the task's row, its runs, the firing switch
and the live scheduler processes, and the same rules (the callable policy, the trigger, the
overlap rule of :mod:`django_tasks_sched.overlap`). A finding that *blocks* keeps the task from
firing on its own; the others say what is known (the next fire, the last one and what became
of it, runs waiting).

Asked about a moment (``at``), it also says whether that is a fire time of the schedule and
what became of the fire: its run, or the MISSED record that stands for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone
from django.utils.translation import gettext as _

from django_tasks_sched.callables import resolve_callable
from django_tasks_sched.exceptions import TaskConfigError
from django_tasks_sched.firing import firing
from django_tasks_sched.models import SchedulerProcess, Task, TaskRun
from django_tasks_sched.overlap import Action, decide
from django_tasks_sched.service.claims import count_slots
from django_tasks_sched.times import time_text

#: The first line of a run's error shown in an explanation, at most this long.
ERROR_SHOWN = 300


@dataclass(frozen=True)
class Finding:
    """One thing known about whether the task fires."""

    #: A stable name, for scripts: ``inactive``, ``retired``, ``no_runs_left``, ``schedule``,
    #: ``callable``, ``no_fire_time``, ``firing_paused``, ``no_scheduler``, ``overlap``,
    #: ``waiting``, ``next_fire``, ``last_fire``, ``at``.
    code: str
    message: str
    #: Whether this alone keeps the task from firing.
    blocking: bool = False


@dataclass(frozen=True)
class Explanation:
    task: Task
    #: The moment asked about (None: now).
    at: datetime | None
    findings: tuple[Finding, ...]

    @property
    def blocked(self) -> bool:
        return any(finding.blocking for finding in self.findings)

    def summary(self) -> str:
        if self.blocked:
            return _("Task %(name)s will not fire:") % {"name": self.task.name}
        return _("Task %(name)s fires as scheduled.") % {"name": self.task.name}

    def as_dict(self) -> dict[str, object]:
        return {
            "task": self.task.name,
            "id": self.task.pk,
            "at": self.at.isoformat() if self.at else None,
            "fires": not self.blocked,
            "findings": [
                {"code": f.code, "blocking": f.blocking, "message": f.message}
                for f in self.findings
            ],
        }


def explain(task: Task, at: datetime | None = None) -> Explanation:
    """What keeps ``task`` from firing (now, or at ``at``), and what is known about its fires."""
    now = timezone.now()
    findings = [
        *_switched_off(task),
        *_schedule(task, at or now),
        *_callable(task),
        *_scheduler(),
        *_slots(task),
        *_last_fire(task, now),
    ]
    if at is not None:
        findings.extend(_fire_at(task, at, now))
    return Explanation(task, at, tuple(findings))


def _switched_off(task: Task) -> list[Finding]:
    found = []
    if not task.active:
        reason = task.inactive_reason or _("no reason given")
        if task.paused_by:
            message = _("Paused by %(user)s at %(when)s: %(reason)s") % {
                "user": task.paused_by,
                "when": time_text(task.paused_at) if task.paused_at else "?",
                "reason": reason,
            }
        else:
            message = _("Inactive: %(reason)s") % {"reason": reason}
        found.append(Finding("inactive", message, blocking=True))
    if task.retired_at:
        found.append(
            Finding(
                "retired",
                _(
                    "Retired at %(when)s: its declaration was removed, and synctasks switched "
                    "it off."
                )
                % {"when": time_text(task.retired_at)},
                blocking=True,
            )
        )
    if task.remaining_runs == 0:
        found.append(
            Finding("no_runs_left", _("No runs left (remaining runs is 0)."), blocking=True)
        )
    return found


def _schedule(task: Task, after: datetime) -> list[Finding]:
    try:
        times = task.next_fire_times(count=1, after=after)
    except TaskConfigError as exc:
        message = _("Its schedule is refused (%(field)s): %(error)s") % {
            "field": exc.field or "trigger_config",
            "error": exc.message,
        }
        return [Finding("schedule", message, blocking=True)]
    except Exception as exc:  # a row forced in past validation: any error, said, not raised
        message = _("Its schedule is refused: %(error)s") % {"error": exc}
        return [Finding("schedule", message, blocking=True)]
    if not times:
        return [
            Finding(
                "no_fire_time",
                _("Its schedule has no fire time after %(when)s (a past date, or past its end).")
                % {"when": time_text(after)},
                blocking=True,
            )
        ]
    return [Finding("next_fire", _("Next fire time: %(when)s.") % {"when": time_text(times[0])})]


def _callable(task: Task) -> list[Finding]:
    try:
        resolve_callable(task.func)
    except TaskConfigError as exc:
        message = _("Its function cannot run: %(error)s") % {"error": exc}
        return [Finding("callable", message, blocking=True)]
    return []


def _scheduler() -> list[Finding]:
    found = []
    switch = firing()
    if not switch.on:
        message = _("Firing is paused in every scheduler process")
        if switch.changed_by:
            message += _(" by %(user)s") % {"user": switch.changed_by}
        if switch.changed_at:
            message += _(" since %(when)s") % {"when": time_text(switch.changed_at)}
        found.append(Finding("firing_paused", message + ".", blocking=True))
    if not SchedulerProcess.objects.alive().exists():
        found.append(
            Finding(
                "no_scheduler",
                _("No scheduler process is running (start manage.py runscheduler)."),
                blocking=True,
            )
        )
    return found


def _slots(task: Task) -> list[Finding]:
    """What a fire would do now, by the task's overlap policy and its runs going."""
    slots = count_slots({task.pk: task})[task.pk]
    found = []
    if slots.buffered:
        message = _("%(count)d fire(s) wait for a slot (buffered).") % {"count": slots.buffered}
        found.append(Finding("waiting", message))
    decision = decide(task.overlap, task.max_instances, slots, backend=task.backend)
    if decision.action == Action.MISS:
        message = _("A fire now would not run (overlap %(policy)s): %(reason)s") % {
            "policy": task.overlap,
            "reason": decision.reason,
        }
        found.append(Finding("overlap", message, blocking=True))
    elif decision.action == Action.BUFFER:
        message = _("A fire now would wait for a slot (overlap %(policy)s).") % {
            "policy": task.overlap
        }
        found.append(Finding("overlap", message))
    elif decision.action == Action.CANCEL_OTHER:
        message = _("A fire now would cancel the oldest running run (overlap cancel_other).")
        found.append(Finding("overlap", message))
    return found


def _last_fire(task: Task, now: datetime) -> list[Finding]:
    last = (
        task.runs.filter(origin=TaskRun.Origin.SCHEDULE, scheduled_for__lte=now)
        .order_by("-scheduled_for", "-id")
        .first()
    )
    if last is None:
        return [Finding("last_fire", _("It has never fired."))]
    return [Finding("last_fire", _("Last fire: %(run)s") % {"run": _describe(last)})]


def _fire_at(task: Task, at: datetime, now: datetime) -> list[Finding]:
    """Whether ``at`` is a fire time, and what became of that fire."""
    found = []
    try:
        times = task.next_fire_times(count=1, after=at - timedelta(microseconds=1))
    except Exception:  # said by _schedule already
        times = []
    first = times[0] if times else None
    if first != at:
        message = _("%(at)s is not a fire time of the schedule") % {"at": time_text(at)}
        if first is not None:
            message += _("; the next one is %(when)s") % {"when": time_text(first)}
        found.append(Finding("at", message + "."))
    run = task.runs.filter(scheduled_for__lte=at).order_by("-scheduled_for", "-id").first()
    if at > now:
        return found
    if run is None:
        found.append(
            Finding("at", _("No run is recorded at or before %(at)s.") % {"at": time_text(at)})
        )
    else:
        found.append(Finding("at", _("The run at or before it: %(run)s") % {"run": _describe(run)}))
    return found


def _describe(run: TaskRun) -> str:
    moment = run.scheduled_for or run.enqueued_at
    text = f"{time_text(moment)}, {run.get_status_display()}"
    if run.error.strip():
        text += " - " + run.error.strip().splitlines()[0][:ERROR_SHOWN]
    return text + f" (run {run.pk})."
