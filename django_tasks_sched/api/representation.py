"""Tasks and runs as the API's JSON, and a job's JSON back to ``add_job()``'s arguments.

A job is Flask-APScheduler's ``job_to_dict``: the trigger's fields at the top level, dates in
ISO 8601, plus every option a Task has and a few read-only facts. What the server computes is
ignored on input, so a job read from the API can be sent back as it is.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext as _

from django_tasks_sched.jobspec import OPTIONS
from django_tasks_sched.models import Task, TaskRun
from django_tasks_sched.options import TASK_OPTIONS

#: Keys of a job the server computes: ignored when a job comes in (``next_run_time: null``,
#: adding the task paused, is ``add_job()``'s own argument and is kept).
COMPUTED = (
    "inactive_reason",
    "paused_by",
    "paused_at",
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
    "buffered",
)


def iso(value: datetime | None) -> str | None:
    """A time as ISO 8601, or None."""
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
        next_run_time=iso(task.next_run_time),
        inactive_reason=task.inactive_reason,
        paused_by=task.paused_by,
        paused_at=iso(task.paused_at),
        source=task.source,
        declared_fields=task.owned_fields(),
        last_run_at=iso(task.last_run_at),
        last_run_status=task.last_run_status or None,
        created_at=iso(task.created_at),
        updated_at=iso(task.updated_at),
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


def job_arguments(body: Any, *, creating: bool, job_id: str | None = None) -> dict[str, Any]:
    """A job's JSON as ``add_job()`` (or ``modify_job()``) keywords; ValidationError if unusable.

    Keys the server computes are dropped; Flask-APScheduler's older ``"trigger": {"type": ...}``
    form is unfolded; values whose JSON type is wrong for their field are refused here (Django's
    forms would convert ``1.7`` to ``1`` and ``5`` to ``"5"``). Everything else is passed on for
    ``add_job()`` and ``full_clean()`` to judge, so an unknown key is an unknown trigger key.
    """
    if not isinstance(body, dict):
        raise ValidationError(_("The body must be a JSON object: the job's fields."))
    arguments = {key: value for key, value in body.items() if key not in COMPUTED}
    trigger = arguments.get("trigger")
    if isinstance(trigger, dict) and "type" in trigger:
        # Flask-APScheduler's fix_job_def accepts {"trigger": {"type": "cron", "hour": 3}}.
        fields = dict(trigger)
        arguments["trigger"] = fields.pop("type")
        arguments.update(fields)
    if arguments.get("next_run_time") is not None or (
        "active" in arguments and "next_run_time" in arguments
    ):
        # Computed from the trigger: what was read is ignored when sent back (null, which
        # adds the job paused, only counts without "active", which says it outright).
        del arguments["next_run_time"]
    if creating:
        job_id = arguments.get("id")
        if not isinstance(job_id, str) or not job_id:
            raise ValidationError({"id": [_("Give the job's id: the task's name, a string.")]})
        if job_id.endswith(ACTION_SUFFIXES):
            message = _("An id may not end in %(suffixes)s: the API's actions use those paths.")
            raise ValidationError({"id": [message % {"suffixes": ", ".join(ACTION_SUFFIXES)}]})
    if arguments.get("name") == (job_id if job_id is not None else arguments.get("id")):
        # What a job without a description reads as: sent back, it sets none.
        del arguments["name"]
    errors = {
        key: [_("Must be %(type)s.") % {"type": JSON_TYPE_NAMES[expected]}]
        for key, expected in ARGUMENT_TYPES.items()
        if key in arguments and not _is_json_type(arguments[key], expected)
    }
    if errors:
        raise ValidationError(errors)
    return arguments


#: Paths under ``jobs/<id>/`` (see urls.py): an id ending in one could not be addressed.
ACTION_SUFFIXES = ("/pause", "/resume", "/run", "/runs")

_OPTION_TYPES: dict[str, str] = {
    "PositiveIntegerField": "integer",
    "PositiveSmallIntegerField": "integer",
    "IntegerField": "integer",
    "BooleanField": "boolean",
    "CharField": "string",
    "TextField": "string",
}


def _argument_types() -> dict[str, str]:
    fields = {name: cast("models.Field[Any, Any]", Task._meta.get_field(name)) for name in OPTIONS}
    types = {name: _OPTION_TYPES[field.get_internal_type()] for name, field in fields.items()}
    types.update(id="string", name="string", func="string", active="boolean")
    types["replace_existing"] = "boolean"
    return types


#: The JSON type each argument must have (null is allowed where its field is nullable).
ARGUMENT_TYPES = _argument_types()
JSON_TYPE_NAMES = {"integer": "a whole number", "boolean": "true or false", "string": "a string"}


def _is_json_type(value: Any, expected: str) -> bool:
    if value is None:
        return True  # full_clean() judges whether the field may be empty
    if expected == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if expected == "boolean":
        return isinstance(value, bool)
    return isinstance(value, str)
