"""Migration operations that create and remove tasks, reversibly, with historical models.

Use them in a data migration of your own app::

    from django.db import migrations
    from django_tasks_sched.migrations_ops import CreateTask

    class Migration(migrations.Migration):
        dependencies = [("django_tasks_sched", "0002_task_declared_fields_task_retired_at")]
        operations = [
            CreateTask("nightly-report", "reports.jobs:nightly", "cron", {"hour": 3}),
        ]

``migrate`` applies them; migrating back undoes them. The rows are written through the
historical ``Task`` model of the migration state (as ``RunPython`` code should), so a later
change to the model never breaks an old migration. The callable is not imported here: it is
checked, like every task's, before each run. Migrations send no signals, so running scheduler
processes learn of the change from the stamp ``migrate`` bumps when it finishes.
"""

from __future__ import annotations

from typing import Any

from django.db.migrations.exceptions import IrreversibleError
from django.db.migrations.operations.base import Operation
from django.utils import timezone

from django_tasks_sched import audit
from django_tasks_sched.exceptions import TaskConfigError

APP_LABEL = "django_tasks_sched"


def _definition(
    func: str,
    trigger: str,
    trigger_config: dict[str, Any] | None,
    args: list[Any] | None,
    kwargs: dict[str, Any] | None,
    options: dict[str, Any],
) -> dict[str, Any]:
    if not isinstance(func, str):
        raise TypeError(f"func must be a dotted path string in a migration, not {func!r}")
    return {
        "func": func,
        "trigger": trigger,
        "trigger_config": dict(trigger_config or {}),
        "args": list(args or []),
        "kwargs": dict(kwargs or {}),
        **options,
    }


def _insert(apps: Any, using: str, app_label: str, name: str, definition: dict[str, Any]) -> None:
    from django_tasks_sched.models import anchored_config
    from django_tasks_sched.triggers import build_trigger, next_fire_times

    task_model = apps.get_model(APP_LABEL, "Task")
    known = {field.name for field in task_model._meta.get_fields()}
    unknown = sorted(set(definition) - known)
    if unknown:
        raise ValueError(
            f"Task has no field {', '.join(unknown)} at this point of the migration history; "
            "make the migration depend on a later django_tasks_sched migration"
        )
    if task_model._default_manager.using(using).filter(name=name).exists():
        raise ValueError(f"a task named {name!r} already exists; remove it first (RemoveTask)")
    task = task_model(name=name, **definition)
    if "source" in known:
        task.source = "migration"
        task.source_ref = f"data migration of app {app_label!r}"[:255]
    # Historical models have no save() logic: validate the schedule and fill next_run_time
    # here, with the same functions the live model uses.
    try:
        trigger = build_trigger(
            task.trigger, anchored_config(task.trigger, task.trigger_config, task.created_at)
        )
    except TaskConfigError as exc:
        raise ValueError(f"task {name!r}: {exc.field}: {exc.message}") from None
    if task.active:
        times = next_fire_times(trigger, count=1, after=timezone.now())
        task.next_run_time = times[0] if times else None
    task.save(using=using)
    row = {field.name: getattr(task, field.name) for field in task_model._meta.fields}
    audit.record_in_migration(apps, using, "created", [{**row, "pk": task.pk}])


def _delete(apps: Any, using: str, name: str) -> None:
    task_model = apps.get_model(APP_LABEL, "Task")
    tasks = task_model._default_manager.using(using).filter(name=name)
    rows = list(tasks.values("pk", *(field.name for field in task_model._meta.fields)))
    # The runs go with it (on_delete=CASCADE), as with remove_job().
    tasks.delete()
    audit.record_in_migration(apps, using, "deleted", rows)


class CreateTask(Operation):
    """Create a task (source "migration"); reversed, delete it with its runs."""

    reversible = True
    reduces_to_sql = False

    def __init__(
        self,
        name: str,
        func: str,
        trigger: str,
        trigger_config: dict[str, Any] | None = None,
        args: list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        self.name = name
        self.func = func
        self.trigger = trigger
        self.trigger_config = trigger_config
        self.args = args
        self.kwargs = kwargs
        self.options = options
        self.definition = _definition(func, trigger, trigger_config, args, kwargs, options)

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        kwargs: dict[str, Any] = {"name": self.name, "func": self.func, "trigger": self.trigger}
        for key in ("trigger_config", "args", "kwargs"):
            if getattr(self, key):
                kwargs[key] = getattr(self, key)
        return (f"{__name__}.{type(self).__qualname__}", [], {**kwargs, **self.options})

    def state_forwards(self, app_label: str, state: Any) -> None:
        pass  # rows, not schema

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        using = schema_editor.connection.alias
        if self.allow_migrate_model(using, to_state.apps.get_model(APP_LABEL, "Task")):
            _insert(to_state.apps, using, app_label, self.name, self.definition)

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        using = schema_editor.connection.alias
        if self.allow_migrate_model(using, to_state.apps.get_model(APP_LABEL, "Task")):
            _delete(to_state.apps, using, self.name)

    def describe(self) -> str:
        return f"Create scheduled task {self.name!r}"

    @property
    def migration_name_fragment(self) -> str:
        return f"create_task_{_slug(self.name)}"


class RemoveTask(Operation):
    """Delete a task and its runs; reversible when its definition is given, to recreate it."""

    reduces_to_sql = False

    def __init__(
        self,
        name: str,
        func: str | None = None,
        trigger: str | None = None,
        trigger_config: dict[str, Any] | None = None,
        args: list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        self.name = name
        self.func = func
        self.trigger = trigger
        self.trigger_config = trigger_config
        self.args = args
        self.kwargs = kwargs
        self.options = options

    @property
    def reversible(self) -> bool:  # type: ignore[override]
        return self.func is not None and self.trigger is not None

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        kwargs: dict[str, Any] = {"name": self.name}
        for key in ("func", "trigger", "trigger_config", "args", "kwargs"):
            if getattr(self, key):
                kwargs[key] = getattr(self, key)
        return (f"{__name__}.{type(self).__qualname__}", [], {**kwargs, **self.options})

    def state_forwards(self, app_label: str, state: Any) -> None:
        pass

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        using = schema_editor.connection.alias
        if self.allow_migrate_model(using, to_state.apps.get_model(APP_LABEL, "Task")):
            _delete(to_state.apps, using, self.name)

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        if self.func is None or self.trigger is None:
            raise IrreversibleError(
                f"RemoveTask({self.name!r}) cannot be reversed: give it func, trigger and "
                "trigger_config to recreate the task"
            )
        using = schema_editor.connection.alias
        if self.allow_migrate_model(using, to_state.apps.get_model(APP_LABEL, "Task")):
            definition = _definition(
                self.func, self.trigger, self.trigger_config, self.args, self.kwargs, self.options
            )
            _insert(to_state.apps, using, app_label, self.name, definition)

    def describe(self) -> str:
        return f"Remove scheduled task {self.name!r}"

    @property
    def migration_name_fragment(self) -> str:
        return f"remove_task_{_slug(self.name)}"


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.lower())[:40]
