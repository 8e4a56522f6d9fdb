"""What happens after a run ends badly (retries, the failure limit, mail to ADMINS), and the
rule on who may make a task run now (:func:`makes_due_now`). Timeouts are the watchdog's
(:mod:`django_tasks_sched.service.housekeeping`).

Called for every run that reaches a final status, by the lifecycle's verbs that end runs
(:mod:`django_tasks_sched.lifecycle`: ``finish`` and ``end``), through :func:`after_outcomes`.
Everything here is cheap when nothing failed, and never raises into the scheduler: a follow-up
that cannot be written is logged, and the run's own record stands.

Running a task now needs ``django_tasks_sched.run_task``, and a schedule can do what the "Run now"
button does: one that fires at once. So every route that saves a schedule (the admin's form and
actions; the REST API to come) asks :func:`makes_due_now` and refuses users without that permission.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from apscheduler.triggers.date import DateTrigger
from django.core.mail import mail_admins
from django.db import DatabaseError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from django_tasks_sched import audit, metrics
from django_tasks_sched.changes import schedule_changed
from django_tasks_sched.conf import get_settings
from django_tasks_sched.exceptions import TaskConfigError
from django_tasks_sched.models import Task, TaskChange, TaskRun
from django_tasks_sched.retry import retry_delay, should_retry
from django_tasks_sched.times import time_text

logger = logging.getLogger(__name__)

#: The Task columns a follow-up decision reads (one query for a whole batch of runs).
POLICY_COLUMNS = (
    "id",
    "name",
    "active",
    "max_retries",
    "retry_delay",
    "retry_backoff",
    "retry_backoff_max",
    "max_consecutive_failures",
    "consecutive_failures",
)


@dataclass
class _Policy:
    """One task's policy columns (the fields :func:`retry_delay` reads, and a few more)."""

    id: int
    name: str
    active: bool
    max_retries: int
    retry_delay: int
    retry_backoff: bool
    retry_backoff_max: int | None
    max_consecutive_failures: int | None
    consecutive_failures: int


def after_outcomes(runs: Iterable[TaskRun]) -> list[TaskRun]:
    """Follow up finished runs: deactivate tasks at their failure limit, queue retries, mail.

    Call it after the outcomes (and the tasks' ``consecutive_failures``) are committed. Returns
    the retry runs it queued.
    """
    runs = list(runs)
    metrics.observe_outcomes(runs)
    failed = [run for run in runs if run.status in TaskRun.FAILED_STATUSES]
    if not failed:
        return []
    try:
        return _follow_up(failed)
    except DatabaseError:
        logger.exception(
            "Could not queue retries or apply failure limits for %d run(s)", len(failed)
        )
        return []


def _follow_up(failed: Sequence[TaskRun]) -> list[TaskRun]:
    rows = Task.objects.filter(pk__in={run.task_id for run in failed}).values(*POLICY_COLUMNS)
    policies = {row["id"]: _Policy(**row) for row in rows}
    deactivated = _apply_failure_limits(failed, policies)
    now = timezone.now()
    retries = [
        _retry_of(run, policies[run.task_id], now)
        for run in failed
        if run.task_id in policies
        and run.task_id not in deactivated
        and should_retry(policies[run.task_id], run.status, run.attempt)
    ]
    if retries:
        with transaction.atomic():
            TaskRun.objects.bulk_create(retries)
            # Wakes the schedulers for a retry that is due at once; a delayed one is picked up
            # by their periodic look at the queue.
            schedule_changed()
        for retry in retries:
            logger.info(
                "Retry %d of task %r queued (attempt %d, not before %s)",
                retry.pk,
                policies[retry.task_id].name,
                retry.attempt,
                retry.not_before.isoformat() if retry.not_before else "now",
            )
    if get_settings().MAIL_ADMINS_ON_FAILURE:
        for run in failed:
            name = policies[run.task_id].name if run.task_id in policies else run.task_id
            _mail(
                _("Task %(name)s: run %(run)s %(status)s")
                % {"name": name, "run": run.pk, "status": run.get_status_display().lower()},
                f"{run.error}\n\n{run.traceback}".strip(),
            )
    return retries


def _retry_of(run: TaskRun, policy: _Policy, now: datetime) -> TaskRun:
    delay = retry_delay(policy, run.attempt)
    return TaskRun(
        task_id=run.task_id,
        status=TaskRun.Status.QUEUED,
        origin=TaskRun.Origin.RETRY,
        attempt=run.attempt + 1,
        first_attempt_id=run.first_attempt_id or run.pk,
        enqueued_at=now,
        not_before=now + delay if delay > timedelta(0) else None,
    )


def _apply_failure_limits(failed: Sequence[TaskRun], policies: dict[int, _Policy]) -> set[int]:
    """Deactivate the tasks whose consecutive failures reached their limit; return their ids."""
    errors = {run.task_id: run.error for run in failed}
    reached = [
        policy
        for policy in policies.values()
        if policy.active
        and policy.max_consecutive_failures
        and policy.consecutive_failures >= policy.max_consecutive_failures
    ]
    done: set[int] = set()
    for policy in reached:
        reason = _("Deactivated after %(count)d failed runs in a row. Last error: %(error)s") % {
            "count": policy.consecutive_failures,
            "error": errors.get(policy.id, ""),
        }
        # A normal update: it moves the change stamp, so every scheduler drops the task.
        with audit.recording(TaskChange.Via.SCHEDULER):
            changed = Task.objects.filter(pk=policy.id).switch_off(reason)
        if not changed:
            continue  # another process got there first
        done.add(policy.id)
        logger.warning("Task %r deactivated: %s", policy.name, reason)
        if get_settings().MAIL_ADMINS_ON_FAILURE:
            _mail(_("Task %(name)s deactivated") % {"name": policy.name}, reason)
    return done


def _mail(subject: str, message: str) -> None:
    try:
        mail_admins(f"[django-tasks-sched] {subject}", message, fail_silently=False)
    except Exception:
        logger.exception("Could not mail ADMINS: %s", subject)


# -- who may make a task run now ---------------------------------------------------------------

#: The permission that running a task now needs, by any route.
RUN_PERMISSION = "django_tasks_sched.run_task"

#: A schedule change whose first fire comes this soon makes the task run now.
DUE_NOW_WINDOW = timedelta(seconds=60)

#: The Task fields that decide when a task first fires once saved.
SCHEDULE_INPUTS = ("trigger", "trigger_config", "active", "misfire_grace_time")


def makes_due_now(
    task: Task, previous: Task | None, now: datetime | None = None
) -> datetime | None:
    """The fire time at which saving ``task`` would make it run now, or None if it would not.

    ``previous`` is the task as stored (None for a new task). A save makes the task run now
    when it changes the schedule or switches the task on, and the first fire then comes within
    :data:`DUE_NOW_WINDOW`, or is a past date still within the misfire grace time (a scheduler
    catches that up at once). A change that fires no sooner than the stored schedule would
    have fired anyway does not count. Saving such a change needs :data:`RUN_PERMISSION`.
    """
    if not task.active:
        return None
    stored = previous is not None and previous.active
    if stored and all(getattr(task, f) == getattr(previous, f) for f in SCHEDULE_INPUTS):
        return None
    now = now or timezone.now()
    fire = first_fire(task, now)
    if fire is None or fire > now + DUE_NOW_WINDOW:
        return None
    if stored and previous is not None:
        before = _next_fire(previous, now)
        if before is not None and before <= fire:
            return None  # it would have run by then anyway
    return fire


def first_fire(task: Task, now: datetime) -> datetime | None:
    """When a scheduler would first run ``task`` as it stands (None: never, or invalid)."""
    try:
        trigger = task.build_trigger()
    except TaskConfigError:
        return None  # full_clean() refuses it; a row saved without it never fires
    if isinstance(trigger, DateTrigger) and trigger.run_date <= now:
        grace = task.misfire_grace_time
        late = now - trigger.run_date
        # Fires only as a catch-up: APScheduler runs a past date within the grace time.
        return trigger.run_date if grace is None or late <= timedelta(seconds=grace) else None
    return _next_fire(task, now)


def _next_fire(task: Task, now: datetime) -> datetime | None:
    try:
        times = task.next_fire_times(count=1, after=now)
    except TaskConfigError:
        return None
    return times[0] if times else None


def run_permission_message(fire: datetime) -> str:
    """Why a user without :data:`RUN_PERMISSION` may not save a schedule firing at ``fire``."""
    return _(
        "Saved like this, the task would run at once (its first fire is at %(when)s), and "
        "making a task run now needs the permission to run tasks (%(permission)s). Make it "
        "first fire more than %(seconds)d seconds from now, or ask someone who has that "
        "permission."
    ) % {
        "when": time_text(fire),
        "permission": RUN_PERMISSION,
        "seconds": int(DUE_NOW_WINDOW.total_seconds()),
    }
