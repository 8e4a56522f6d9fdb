"""Serializers that describe the API's JSON for its OpenAPI schema (drf-spectacular).

The views build their JSON in :mod:`django_tasks_sched.api.representation`; these only say
what it looks like. ``tests/test_api_schema.py`` checks the committed schema is current, and
the fuzzer checks every response against it.
"""

from __future__ import annotations

from typing import Any, cast

from django.db import models
from rest_framework import serializers

from django_tasks_sched.api.representation import COMPUTED
from django_tasks_sched.models import Task, TaskRun
from django_tasks_sched.options import TASK_OPTIONS
from django_tasks_sched.triggers import TRIGGER_KEYS

#: Every trigger's keys, once each, in the docs' order.
TRIGGER_FIELDS = tuple(dict.fromkeys(key for keys in TRIGGER_KEYS.values() for key in keys))


class Error(serializers.Serializer[Any]):
    """Every error: Flask-APScheduler's ``error_message``, and ``errors`` by field on a 400."""

    error_message = serializers.CharField()
    # A field, not Serializer.errors: the metaclass takes declared fields out of the class.
    errors = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField()), required=False
    )


def _option_fields() -> dict[str, serializers.Field[Any, Any, Any, Any]]:
    mapping = serializers.ModelSerializer.serializer_field_mapping
    fields: dict[str, serializers.Field[Any, Any, Any, Any]] = {}
    for name in TASK_OPTIONS:
        model_field = cast("models.Field[Any, Any]", Task._meta.get_field(name))
        field_class = mapping[type(model_field)]
        kwargs: dict[str, Any] = {"required": False}
        if model_field.null:
            kwargs["allow_null"] = True
        if isinstance(field_class, type) and issubclass(field_class, serializers.CharField):
            kwargs["allow_blank"] = True
        fields[name] = field_class(help_text=str(model_field.help_text) or None, **kwargs)
    return fields


def _trigger_fields() -> dict[str, serializers.Field[Any, Any, Any, Any]]:
    # As stored: numbers, strings (cron expressions, ISO 8601 dates, zone names).
    return {
        key: serializers.JSONField(required=False, help_text=f"A {key} of the trigger.")
        for key in TRIGGER_FIELDS
    }


class JobInput(serializers.Serializer[Any]):
    """``add_job()``'s arguments: the trigger's and the options at the top level."""

    id = serializers.CharField(help_text="The task's name (required to add; fixed after).")
    name = serializers.CharField(
        required=False, allow_blank=True, help_text="A label: the task's description."
    )
    func = serializers.CharField(help_text='Dotted path, e.g. "myapp.jobs:cleanup".')
    args = serializers.JSONField(required=False)
    kwargs = serializers.JSONField(required=False)
    trigger = serializers.ChoiceField(choices=Task.Trigger.values, required=False)
    active = serializers.BooleanField(required=False)
    next_run_time = serializers.DateTimeField(
        required=False, allow_null=True, help_text="null adds the task paused; a time is ignored."
    )
    replace_existing = serializers.BooleanField(required=False)
    locals().update(_trigger_fields())
    locals().update(_option_fields())


class Job(JobInput):
    """Flask-APScheduler's ``job_to_dict``, with every Task option and a few read-only facts."""

    next_run_time = serializers.DateTimeField(allow_null=True)
    inactive_reason = serializers.CharField(allow_blank=True)
    paused_by = serializers.CharField(allow_blank=True, help_text="Empty: the scheduler.")
    paused_at = serializers.DateTimeField(allow_null=True)
    source = serializers.ChoiceField(choices=Task.Source.values)  # type: ignore[assignment]
    declared_fields = serializers.ListField(child=serializers.CharField())
    last_run_at = serializers.DateTimeField(allow_null=True)
    last_run_status = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    class Meta:
        # Keeps the two components apart in the schema.
        ref_name = "Job"


assert set(COMPUTED) <= set(Job().fields), "every computed key is described"


class Run(serializers.Serializer[Any]):
    """A run (``TaskRun``), with its task's name."""

    job_id = serializers.CharField()
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=TaskRun.Status.values)
    origin = serializers.ChoiceField(choices=TaskRun.Origin.values)
    attempt = serializers.IntegerField()
    first_attempt_id = serializers.IntegerField(allow_null=True)
    scheduled_for = serializers.DateTimeField(allow_null=True)
    enqueued_at = serializers.DateTimeField()
    not_before = serializers.DateTimeField(allow_null=True)
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    duration = serializers.FloatField(allow_null=True, help_text="Seconds.")
    return_value = serializers.JSONField(allow_null=True)
    error = serializers.CharField(allow_blank=True)
    traceback = serializers.CharField(allow_blank=True)
    log = serializers.CharField(allow_blank=True)
    worker_id = serializers.CharField(allow_blank=True)
    progress = serializers.FloatField(allow_null=True)
    meta = serializers.JSONField(allow_null=True)
    heartbeat_at = serializers.DateTimeField(allow_null=True)
    backend = serializers.CharField(allow_blank=True)
    backend_result_id = serializers.CharField(allow_blank=True)
    handed_at = serializers.DateTimeField(allow_null=True)
    handoffs = serializers.IntegerField()
    buffered = serializers.BooleanField(help_text="Waits for a slot of its task's max_instances.")


class RunPage(serializers.Serializer[Any]):
    """A page of runs, newest first; follow ``next`` for older ones."""

    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = Run(many=True)


class Pause(serializers.Serializer[Any]):
    """``POST jobs/<id>/pause``'s optional body."""

    reason = serializers.CharField(required=False, allow_blank=True, max_length=255)


class Firing(serializers.Serializer[Any]):
    on = serializers.BooleanField()
    changed_at = serializers.DateTimeField(allow_null=True)
    changed_by = serializers.CharField(allow_blank=True)


class Process(serializers.Serializer[Any]):
    worker_id = serializers.CharField()
    hostname = serializers.CharField()
    pid = serializers.IntegerField()
    version = serializers.CharField()
    started_at = serializers.DateTimeField()
    last_seen = serializers.DateTimeField()


class SchedulerInfo(serializers.Serializer[Any]):
    """Flask-APScheduler's scheduler info, with the firing switch and the live processes."""

    current_host = serializers.CharField()
    allowed_hosts = serializers.ListField(child=serializers.CharField())
    running = serializers.BooleanField(help_text="Firing is on and a scheduler process is alive.")
    firing = Firing()
    processes = Process(many=True)
