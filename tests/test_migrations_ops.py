"""``CreateTask`` / ``RemoveTask`` in a real app's migrations, applied and reversed by ``migrate``.

``tests.migrating`` is installed only inside these tests; its migrations create two tasks and
remove one. Each test migrates it back to zero, so the test database ends as it began.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.apps import apps as global_apps
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.db.migrations.exceptions import IrreversibleError
from django.db.migrations.state import ProjectState
from django.test import override_settings

from django_tasks_sched.migrations_ops import CreateTask, RemoveTask
from django_tasks_sched.models import Task, TaskRun
from tests.processes import SchedulerProcess, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def migrating() -> Iterator[None]:
    with override_settings(INSTALLED_APPS=[*settings.INSTALLED_APPS, "tests.migrating"]):
        try:
            yield
        finally:
            call_command("migrate", "migrating", "zero", verbosity=0)


def migrate(target: str) -> None:
    call_command("migrate", "migrating", target, verbosity=0)


def names() -> list[str]:
    return list(Task.objects.order_by("name").values_list("name", flat=True))


def test_forwards_and_backwards(migrating: None) -> None:
    migrate("0001")
    assert names() == ["migrated-doomed", "migrated-tick"]
    tick = Task.objects.get(name="migrated-tick")
    assert tick.source == Task.Source.MIGRATION
    assert tick.source_ref == "data migration of app 'migrating'"
    assert (tick.func, tick.args, tick.trigger_config) == (
        "tests.testapp.jobs:add",
        [20, 22],
        {"seconds": 1},
    )
    assert tick.description == "Created by a data migration"
    assert tick.declared_fields == []  # the admin owns every field of a migrated task
    assert tick.next_run_time is not None  # filled in although historical models skip save()
    migrate("0002")
    assert names() == ["migrated-tick"]
    migrate("0001")  # RemoveTask reversed recreates the task from its definition
    doomed = Task.objects.get(name="migrated-doomed")
    assert (doomed.trigger, doomed.trigger_config) == ("cron", {"hour": 4})
    migrate("zero")
    assert names() == []


def test_migrated_task_is_fired_by_a_real_scheduler(migrating: None, tmp_path: Path) -> None:
    migrate("0002")
    proc = SchedulerProcess(tmp_path / "scheduler.log")
    try:
        proc.wait_ready()
        ran = TaskRun.objects.filter(task__name="migrated-tick", status="SUCCESSFUL")
        wait_until(ran.exists, 10, proc)
    finally:
        proc.stop()
    run = TaskRun.objects.filter(task__name="migrated-tick", status="SUCCESSFUL").first()
    assert run is not None
    assert run.result() == 42
    assert run.origin == TaskRun.Origin.SCHEDULE
    migrate("zero")  # takes the task and its runs away again
    assert not TaskRun.objects.exists()


def apply(operation: object, *, backwards: bool = False) -> None:
    state = ProjectState.from_apps(global_apps)
    with connection.schema_editor(atomic=True) as editor:
        method = "database_backwards" if backwards else "database_forwards"
        getattr(operation, method)("someapp", editor, state, state)


def test_create_task_refuses_an_existing_name_and_a_bad_schedule() -> None:
    apply(CreateTask("one", "tests.testapp.jobs:noop", "interval", {"minutes": 5}))
    with pytest.raises(ValueError, match="already exists"):
        apply(CreateTask("one", "tests.testapp.jobs:noop", "interval", {"minutes": 5}))
    with pytest.raises(ValueError, match="trigger_config"):
        apply(CreateTask("two", "tests.testapp.jobs:noop", "interval", {"minutes": 0}))
    assert names() == ["one"]


def test_remove_task_without_a_definition_is_irreversible() -> None:
    operation = RemoveTask("one")
    assert not operation.reversible
    with pytest.raises(IrreversibleError, match="give it func, trigger"):
        apply(operation, backwards=True)
    assert RemoveTask("one", func="a.b:c", trigger="cron").reversible


def test_operations_deconstruct_for_makemigrations() -> None:
    operation = CreateTask("one", "a.b:c", "cron", {"hour": 3}, timeout=30)
    path, args, kwargs = operation.deconstruct()
    assert args == []
    assert path == "django_tasks_sched.migrations_ops.CreateTask"
    assert kwargs == {
        "name": "one",
        "func": "a.b:c",
        "trigger": "cron",
        "trigger_config": {"hour": 3},
        "timeout": 30,
    }
    assert operation.describe() == "Create scheduled task 'one'"
    assert operation.migration_name_fragment == "create_task_one"
