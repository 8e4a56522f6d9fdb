"""Tasks and runs as the API's JSON, and a job's JSON back to ``add_job()``'s arguments.

A job is Flask-APScheduler's ``job_to_dict``: the trigger's fields at the top level, dates in
ISO 8601, plus every option a Task has and a few read-only facts. What the server computes is
ignored on input, so a job read from the API can be sent back as it is.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from django_tasks_sched.models import Task, TaskRun
from django_tasks_sched.options import TASK_OPTIONS

#: Keys of a job the server computes: ignored when a job comes in (``next_run_time: null``,
#: adding the task paused, is ``add_job()``'s own argument and is kept).
COMPUTED = (
    "inactive_reason",
    "source",
    "declared_fields",
    "last_run_at",
    "last_run_status",
    "created_at",
    "updated_at",
)

#: The run fields the API shows, in order.
RUN_FIELDS = (
    "id",
    "status",
    "origin",
    "attempt",
    "first_attempt_id",
    "scheduled_for",
    "enqueued_at",
    "not_before",
    "started_at",
    "finished_at",
    "duration",
    "return_value",
    "error",
    "traceback",
    "log",
    "worker_id",
    "progress",
    "meta",
    "heartbeat_at",
    "backend",
    "backend_result_id",
    "handed_at",
    "handoffs",
)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def job_to_dict(task: Task) -> dict[str, Any]:
    """The task as Flask-APScheduler's job dict, with this app's fields after it."""
    data: dict[str, Any] = {
        "id": task.name,
        # APScheduler's name is a label: the description, or the id where there is none.
        "name": task.description or task.name,
        "func": task.func,
        "args": task.args,
        "kwargs": task.kwargs,
        "trigger": task.trigger,
    }
    config = task.trigger_config if isinstance(task.trigger_config, dict) else {}
    for key, value in config.items():
        # A row forced in by SQL must not shadow the job's own keys.
        data.setdefault(key, value)
    for name in TASK_OPTIONS:
        data[name] = getattr(task, name)
    data.update(
        active=task.active,
        next_run_time=_iso(task.next_run_time),
        inactive_reason=task.inactive_reason,
        source=task.source,
        declared_fields=task.owned_fields(),
        last_run_at=_iso(task.last_run_at),
        last_run_status=task.last_run_status or None,
        created_at=_iso(task.created_at),
        updated_at=_iso(task.updated_at),
    )
    return data


def run_to_dict(run: TaskRun) -> dict[str, Any]:
    """A run with its task's name (``job_id``)."""
    data: dict[str, Any] = {"job_id": run.task.name}
    for name in RUN_FIELDS:
        value = getattr(run, name)
        if name == "duration":
            value = None if value is None else value.total_seconds()
        elif isinstance(value, datetime):
            value = value.isoformat()
        data[name] = value
    return data


def job_arguments(body: Any, *, creating: bool) -> dict[str, Any]:
    """A job's JSON as ``add_job()`` (or ``modify_job()``) keywords; ValidationError if unusable.

    Keys the server computes are dropped; everything else is passed on for ``add_job()`` and
    ``full_clean()`` to judge, so an unknown key is refused as an unknown trigger key.
    """
    if not isinstance(body, dict):
        raise ValidationError(_("The body must be a JSON object: the job's fields."))
    arguments = {key: value for key, value in body.items() if key not in COMPUTED}
    if arguments.get("next_run_time") is not None:
        # Computed from the trigger: a value read from the API is ignored when sent back.
        del arguments["next_run_time"]
    if creating:
        job_id = arguments.get("id")
        if not isinstance(job_id, str) or not job_id:
            raise ValidationError({"id": [_("Give the job's id: the task's name, a string.")]})
        if "replace_existing" in arguments and not isinstance(arguments["replace_existing"], bool):
            raise ValidationError({"replace_existing": [_("Must be true or false.")]})
    return arguments
