"""``add_job()``'s keywords to Task field values, shared by the facade and every declaration.

APScheduler and Flask-APScheduler take the trigger's arguments and the job's options as one flat
set of keywords (``trigger="cron", hour=3, max_instances=2``). :func:`job_spec` splits them: the
options named in :data:`OPTIONS` become Task fields, everything else goes into
``trigger_config``, where ``Task.full_clean()`` judges it (so a misspelt keyword is reported as
an unknown trigger key, naming it). Python values that JSON cannot hold (datetimes, time zones,
tuples) are converted to what the row stores.

Imported by the facade at package import time: no models, no settings here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from typing import Any

from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext as _

from django_tasks_sched.callables import callable_path
from django_tasks_sched.exceptions import JobArgumentError
from django_tasks_sched.options import TASK_OPTIONS

#: The Task options ``add_job()`` accepts as keywords, named as the Task fields.
OPTIONS = ("description", *TASK_OPTIONS)

#: Always set by a declaration, so always owned by it (a declared callable's arguments too).
CORE_FIELDS = ("func", "args", "kwargs", "trigger", "trigger_config")

#: Every field a declaration may own: what the admin shows read-only for a declared task.
DECLARABLE_FIELDS = (*CORE_FIELDS, *OPTIONS)

#: APScheduler keywords without meaning here (there is one store, the table, and one executor).
IGNORED = frozenset({"jobstore", "executor"})


@dataclass(frozen=True)
class JobSpec:
    """Task field values from ``add_job()``-style arguments."""

    fields: dict[str, Any]
    #: ``False`` for ``next_run_time=None`` or ``active=False`` (added paused); else None.
    active: bool | None = None


def func_path(func: Any) -> str:
    """The dotted path stored for ``func``: a string as given, a callable's ``module:qualname``."""
    if isinstance(func, str):
        return func
    if not callable(func):
        message = _("func must be a callable or a dotted path string, not %(type)s")
        raise ValidationError({"func": message % {"type": type(func).__name__}})
    try:
        return callable_path(func)
    except (TypeError, ValueError) as exc:
        raise ValidationError({"func": str(exc)}) from None


def job_spec(
    func: str | Callable[..., Any] | None,
    trigger: str | None,
    args: Any = None,
    kwargs: Any = None,
    keywords: Mapping[str, Any] | None = None,
    *,
    default_run_date: bool = False,
) -> JobSpec:
    """Split ``keywords`` into Task options and ``trigger_config``; see the module docstring.

    ``trigger=None`` means ``"date"``, as in APScheduler; with ``default_run_date`` a date
    trigger without ``run_date`` runs once, now.
    """
    keywords = dict(keywords or {})
    if trigger is None:
        trigger = "date"
    if not isinstance(trigger, str):
        raise JobArgumentError(
            "trigger must be the trigger's name ('date', 'interval' or 'cron') with its "
            f"arguments as keywords, not {type(trigger).__name__}",
            field="trigger",
        )
    if func is None:
        raise ValidationError({"func": _("a task needs func: the callable to run")})
    active = _pop_active(keywords)
    if "name" in keywords:
        # APScheduler's "name" is a label; a Task's name is its id, so the label is described.
        if "description" in keywords:
            raise JobArgumentError(
                "give name (APScheduler's label) or description, not both", field="name"
            )
        keywords["description"] = keywords.pop("name")
    # Anything else is stored as given, for full_clean() to refuse with the model's message.
    if args is None or isinstance(args, tuple):
        args = list(args or ())
    if kwargs is None or isinstance(kwargs, Mapping):
        kwargs = dict(kwargs or {})
    fields: dict[str, Any] = {
        "func": func_path(func),
        "args": args,
        "kwargs": kwargs,
        "trigger": trigger,
    }
    config: dict[str, Any] = {}
    for key, value in keywords.items():
        if key in IGNORED:
            continue
        if key in OPTIONS:
            fields[key] = "" if key == "description" and value is None else value
        else:
            config[key] = to_config_value(value)
    if trigger == "date" and default_run_date and "run_date" not in config:
        config["run_date"] = timezone.now().isoformat()
    fields["trigger_config"] = config
    return JobSpec(fields=fields, active=active)


def apply_changes(task: Any, changes: Mapping[str, Any]) -> None:
    """Set ``modify_job()``'s changes (``add_job()``'s arguments) on ``task``, unsaved.

    Given a ``trigger``, the trigger's arguments replace the schedule (APScheduler's
    ``reschedule_job``); without one they are merged into the current ``trigger_config``.
    """
    changes = dict(changes)
    given = set(changes)
    spec = job_spec(
        changes.pop("func", task.func),
        changes.pop("trigger", task.trigger),
        changes.pop("args", task.args),
        changes.pop("kwargs", task.kwargs),
        changes,
    )
    update = {k: v for k, v in spec.fields.items() if k != "trigger_config"}
    if "trigger" in given:
        update["trigger_config"] = spec.fields["trigger_config"]
    elif spec.fields["trigger_config"]:
        current = task.trigger_config if isinstance(task.trigger_config, dict) else {}
        update["trigger_config"] = {**current, **spec.fields["trigger_config"]}
    for name, value in update.items():
        setattr(task, name, value)
    if spec.active is not None:
        task.active = spec.active


def _pop_active(keywords: dict[str, Any]) -> bool | None:
    active: bool | None = None
    if "next_run_time" in keywords:
        # APScheduler adds a job paused with next_run_time=None; a time of our own choosing
        # cannot be honoured, since fire times come from the trigger alone.
        if keywords.pop("next_run_time") is not None:
            raise JobArgumentError(
                "next_run_time is computed from the trigger; only next_run_time=None "
                "(add the task paused) is accepted",
                field="next_run_time",
            )
        active = False
    if "active" in keywords:
        value = keywords.pop("active")
        if not isinstance(value, bool):
            raise JobArgumentError(f"active must be True or False, not {value!r}", field="active")
        active = value if active is None else active and value
    return active


def to_config_value(value: Any) -> Any:
    """A trigger argument as ``trigger_config`` stores it: JSON, dates as ISO 8601, zone names."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, tzinfo):
        # zoneinfo has .key, pytz .zone; datetime.timezone.utc prints as "UTC".
        return getattr(value, "key", None) or getattr(value, "zone", None) or str(value)
    if isinstance(value, tuple):
        return [to_config_value(item) for item in value]
    return value
