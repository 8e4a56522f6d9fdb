"""A way in from django-celery-beat: its ``PeriodicTask`` rows as Tasks with the same schedule.

Each periodic task is converted on its own, into an unsaved :class:`Task` that passes
``full_clean()`` or into the reasons it cannot be: the ``manage.py importcelerybeat`` command
saves the first and reports the second. What maps:

=========================  =====================================================================
django-celery-beat         django-tasks-sched
=========================  =====================================================================
``name``, ``description``  ``name``, ``description``
``task``                   ``func``: the Celery task's name as a dotted path; it must import
                           (a ``@shared_task`` function is called as a plain function)
``args``, ``kwargs``       ``args``, ``kwargs`` (JSON text parsed)
``enabled``                ``active``
``interval``               ``interval`` trigger: ``{"<period>": every}``
``crontab``                ``cron`` trigger: ``"<minute> <hour> <dom> <month> <dow>"`` in the
                           crontab's ``timezone``
``clocked``                ``date`` trigger at ``clocked_time``
``solar``                  not converted: no trigger follows the sun
``one_off``                ``remaining_runs=1``
``start_time``             ``start_date`` (interval, cron)
``expires``                ``end_date`` (interval, cron): beat stops sending it then
``expire_seconds``         ``misfire_grace_time``: a message older than that is not run
``queue``, ``exchange``,   not converted (the runs execute in ``runscheduler``; to send them to
``routing_key``,           Celery workers, set ``backend`` and ``queue_name``, see
``headers``, ``priority``  docs/workers.md); reported as a note
=========================  =====================================================================
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from django_tasks_sched.models import Task

#: django-celery-beat's interval periods that a trigger takes as they are.
PERIODS = ("days", "hours", "minutes", "seconds")


@dataclass
class Conversion:
    """One periodic task, converted or not."""

    name: str
    #: The unsaved task (None: it cannot be converted, see ``problems``).
    task: Task | None = None
    #: Why it cannot be converted.
    problems: list[str] = field(default_factory=list)
    #: What was converted with a difference, or left out.
    notes: list[str] = field(default_factory=list)


def convert(periodic: Any) -> Conversion:
    """Convert one ``django_celery_beat.models.PeriodicTask`` (not saved)."""
    result = Conversion(periodic.name)
    fields: dict[str, Any] = {
        "name": periodic.name,
        "description": periodic.description or "",
        "func": periodic.task,
        "active": bool(periodic.enabled),
    }
    for name in ("args", "kwargs"):
        text = getattr(periodic, name) or ("[]" if name == "args" else "{}")
        try:
            fields[name] = json.loads(text)
        except ValueError as exc:
            result.problems.append(
                _("%(field)s is not JSON: %(error)s") % {"field": name, "error": exc}
            )
    schedule = _schedule(periodic, result)
    if schedule is not None:
        fields["trigger"], fields["trigger_config"] = schedule
    if periodic.one_off:
        fields["remaining_runs"] = 1
    if periodic.expire_seconds:
        fields["misfire_grace_time"] = periodic.expire_seconds
    ignored = [
        name
        for name in ("queue", "exchange", "routing_key", "priority")
        if getattr(periodic, name, None) not in (None, "")
    ]
    if (periodic.headers or "{}").strip() not in ("", "{}"):
        ignored.append("headers")
    if ignored:
        result.notes.append(
            _(
                "not converted: %(fields)s (runs execute in runscheduler; set backend and "
                "queue_name to send them to Celery workers)"
            )
            % {"fields": ", ".join(ignored)}
        )
    if result.problems:
        return result
    task = Task(**fields)
    try:
        task.full_clean(validate_unique=False)
    except ValidationError as exc:
        for name, errors in exc.message_dict.items():
            result.problems.extend(f"{name}: {error}" for error in errors)
        return result
    result.task = task
    return result


def _schedule(periodic: Any, result: Conversion) -> tuple[str, dict[str, Any]] | None:
    """The trigger and its configuration, or None (with the problem noted)."""
    window: dict[str, Any] = {}
    if periodic.start_time:
        window["start_date"] = periodic.start_time.isoformat()
    if periodic.expires:
        window["end_date"] = periodic.expires.isoformat()
    if periodic.interval_id:
        interval = periodic.interval
        if interval.period not in PERIODS:
            result.problems.append(
                _("an interval in %(period)s has no equivalent; use seconds")
                % {"period": interval.period}
            )
            return None
        return "interval", {interval.period: interval.every, **window}
    if periodic.crontab_id:
        crontab = periodic.crontab
        if _restricted(crontab.day_of_month) and _restricted(crontab.day_of_week):
            # Celery fires when both match; a crontab string (cron's rule) when either does.
            result.problems.append(
                _(
                    "its crontab restricts both day_of_month (%(dom)s) and day_of_week (%(dow)s): "
                    "Celery runs it when both match, cron when either does; convert it by hand"
                )
                % {"dom": crontab.day_of_month, "dow": crontab.day_of_week}
            )
            return None
        expression = " ".join(
            str(part)
            for part in (
                crontab.minute,
                crontab.hour,
                crontab.day_of_month,
                crontab.month_of_year,
                crontab.day_of_week,
            )
        )
        return "cron", {"crontab": expression, "timezone": str(crontab.timezone), **window}
    if periodic.clocked_id:
        if window:
            result.notes.append(_("start_time and expires do not apply to a clocked schedule"))
        return "date", {"run_date": periodic.clocked.clocked_time.isoformat()}
    if periodic.solar_id:
        result.problems.append(
            _("a solar schedule (%(event)s) has no equivalent trigger")
            % {"event": periodic.solar.event}
        )
        return None
    result.problems.append(_("it has no schedule"))
    return None


def _restricted(field: object) -> bool:
    return str(field).strip() not in ("*", "?")
