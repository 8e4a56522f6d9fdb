"""The example tasks ``loadexampletasks`` creates: one of each trigger, and a few options."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from django_tasks_sched.models import Task

JOBS = "example_project.jobs.jobs"


def example_tasks(now: datetime) -> list[dict[str, Any]]:
    """Field values of each example task; ``now`` anchors the one-off date trigger."""
    soon = (now + timedelta(minutes=2)).replace(microsecond=0)
    return [
        {
            "name": "heartbeat",
            "description": "Append a line to the heartbeat log every 10 seconds.",
            "func": f"{JOBS}:write_heartbeat",
            "trigger": Task.Trigger.INTERVAL,
            "trigger_config": {"seconds": 10},
        },
        {
            "name": "prune-expired-sessions",
            "description": "Delete expired sessions every night at 03:17 (a crontab string).",
            "func": f"{JOBS}:prune_expired_sessions",
            "trigger": Task.Trigger.CRON,
            "trigger_config": {"crontab": "17 3 * * *"},
        },
        {
            "name": "daily-report",
            "description": "Count users at 08:00 Berlin time on weekdays (cron fields, time zone).",
            "func": f"{JOBS}:daily_report",
            "trigger": Task.Trigger.CRON,
            "trigger_config": {
                "day_of_week": "mon-fri",
                "hour": 8,
                "minute": 0,
                "timezone": "Europe/Berlin",
            },
        },
        {
            "name": "short-nap",
            "description": "Sleep three seconds, once, two minutes after the examples were loaded.",
            "func": f"{JOBS}:nap",
            "kwargs": {"seconds": 3},
            "trigger": Task.Trigger.DATE,
            "trigger_config": {"run_date": soon.isoformat()},
            "timeout": 60,
        },
        {
            "name": "always-fails",
            "description": "Raise every minute, to show a failed run with its traceback.",
            "func": f"{JOBS}:always_fails",
            "trigger": Task.Trigger.INTERVAL,
            "trigger_config": {"minutes": 1},
            "max_retries": 1,
            "retry_delay": 10,
        },
    ]


class InvalidExampleTask(Exception):
    """An example task failed ``full_clean()``: a bug in the example, not in the user's data."""

    def __init__(self, name: str, error: ValidationError) -> None:
        details = error.message_dict if hasattr(error, "error_dict") else error.messages
        super().__init__(f"Example task {name!r} does not validate: {details}")


@dataclass
class LoadResult:
    """Names of the example tasks, by what loading did to them."""

    created: list[str] = field(default_factory=list)
    reset: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def load_example_tasks(*, reset: bool = False, now: datetime | None = None) -> LoadResult:
    """Create the example tasks that are missing; with ``reset``, restore edited ones too.

    Every task passes ``full_clean()`` first, as a task saved from the admin would.
    Without ``reset`` an existing task is left alone, so re-running never undoes admin edits.
    """
    result = LoadResult()
    with transaction.atomic():
        for values in example_tasks(now or timezone.now()):
            task = Task.objects.filter(name=values["name"]).first()
            if task is not None and not reset:
                result.kept.append(task.name)
                continue
            if task is None:
                task = Task(**values)
                result.created.append(task.name)
            else:
                _assign(task, values.items())
                result.reset.append(task.name)
            try:
                task.full_clean()
            except ValidationError as exc:
                raise InvalidExampleTask(task.name, exc) from exc
            task.save()
    return result


def _assign(task: Task, values: Iterable[tuple[str, Any]]) -> None:
    # Fields the example leaves out go back to their defaults, so --reset truly resets.
    defaults = {f.name: f.get_default() for f in Task._meta.concrete_fields if f.editable}
    defaults.pop("id", None)
    for name, value in {**defaults, **dict(values), "active": True}.items():
        setattr(task, name, value)
    task.consecutive_failures = 0
