"""``synctasks``: create, update and retire declared tasks, never undoing what the admin owns."""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client, override_settings
from django.urls import reverse

from django_tasks_sched import callables, declarations, scheduler
from django_tasks_sched.models import Task, TaskRun
from django_tasks_sched.sync import SyncReport, sync_tasks
from tests.testapp import jobs

pytestmark = pytest.mark.django_db

TICK = {"id": "tick", "func": "tests.testapp.jobs:noop", "trigger": "interval", "minutes": 5}
ADD = {"id": "add", "func": "tests.testapp.jobs:add", "args": [1, 2], "trigger": "cron", "hour": 3}


@pytest.fixture(autouse=True)
def declared(monkeypatch: pytest.MonkeyPatch) -> dict[str, declarations.Declaration]:
    """An empty decorator registry, so declarations never leak between tests."""
    registry: dict[str, declarations.Declaration] = {}
    monkeypatch.setattr(declarations, "_declared", registry)
    # The decorator also registers; keep that from allowing callables in later tests.
    monkeypatch.setattr(callables, "_registry", dict(callables._registry))
    return registry


def sync_with(*tasks: dict[str, Any], **more: Any) -> SyncReport:
    with override_settings(TASKS_SCHED={"TASKS": list(tasks), **more}):
        return sync_tasks()


def test_declared_policies_and_remaining_runs_set_only_at_creation() -> None:
    declared = {**TICK, "overlap": "buffer_all", "remaining_runs": 3}
    assert sync_with(declared).created == ["tick"]
    task = Task.objects.get(name="tick")
    assert (task.overlap, task.remaining_runs) == ("buffer_all", 3)
    # The scheduler counts it down; the next sync does not set it back.
    Task.objects.filter(pk=task.pk).update_quietly(remaining_runs=1)
    report = sync_with(declared)
    assert not report.changed
    task.refresh_from_db()
    assert task.remaining_runs == 1
    assert "remaining_runs" not in task.declared_fields


def test_settings_tasks_are_created_then_left_alone() -> None:
    report = sync_with(TICK, {**ADD, "timeout": 60, "name": "Adds"})
    assert sorted(report.created) == ["add", "tick"]
    assert not report.errors
    task = Task.objects.get(name="add")
    assert task.source == Task.Source.SETTINGS
    assert task.source_ref == "TASKS_SCHED['TASKS'][1] (id 'add')"
    assert task.declared_fields == sorted(
        ["func", "args", "kwargs", "trigger", "trigger_config", "timeout", "description"]
    )
    assert (task.trigger_config, task.args, task.timeout) == ({"hour": 3}, [1, 2], 60)
    assert task.description == "Adds"
    assert task.next_run_time is not None
    # Idempotent: the same declarations again change nothing, and say so.
    again = sync_with(TICK, {**ADD, "timeout": 60, "name": "Adds"})
    assert not again.changed
    assert sorted(again.unchanged) == ["add", "tick"]
    assert again.lines()[-1] == "0 created, 0 updated, 0 retired, 2 declared tasks unchanged."


def test_declared_fields_follow_the_declaration_admin_fields_do_not() -> None:
    sync_with({**TICK, "timeout": 60})
    task = Task.objects.get(name="tick")
    # The admin: switches it off, edits a field the declaration leaves alone, and (against
    # the read-only form, say from a shell) a declared one.
    task.pause()
    Task.objects.filter(pk=task.pk).update(max_retries=4, trigger_config={"minutes": 1})
    report = sync_with({**TICK, "timeout": 60})
    assert report.updated == {"tick": ["trigger_config"]}
    task.refresh_from_db()
    assert task.trigger_config == {"minutes": 5}  # code's value is back
    assert task.max_retries == 4  # the admin's stays
    assert not task.active  # and so does the admin's switch
    assert task.next_run_time is None


def test_a_field_the_declaration_drops_goes_back_to_its_default() -> None:
    sync_with({**TICK, "timeout": 60})
    report = sync_with({**TICK, "minutes": 10})
    assert report.updated == {"tick": ["declared_fields", "timeout", "trigger_config"]}
    task = Task.objects.get(name="tick")
    assert task.timeout is None
    assert "timeout" not in task.declared_fields


def test_vanished_task_is_retired_with_its_history() -> None:
    sync_with(TICK, ADD)
    task = Task.objects.get(name="tick")
    task.run_now(inline=True)
    report = sync_with(ADD)
    assert report.retired == ["tick"]
    task.refresh_from_db()
    assert not task.active
    assert task.retired_at is not None
    assert task.declared_fields == []
    assert "No longer declared" in task.inactive_reason
    assert "TASKS_SCHED['TASKS'][0]" in task.inactive_reason
    assert task.runs.count() == 1
    assert not sync_with(ADD).changed  # retired once
    # Retired tasks are the admin's: switching one back on is not undone.
    task.resume()
    assert not sync_with(ADD).changed
    assert Task.objects.get(name="tick").active


def test_returning_declaration_switches_on_only_what_retirement_switched_off() -> None:
    sync_with(TICK, ADD)
    Task.objects.get(name="add").pause()  # the admin's choice, before the code went away
    sync_with()
    assert not Task.objects.filter(active=True).exists()
    report = sync_with(TICK, ADD)
    assert report.reactivated == ["tick"]
    assert Task.objects.get(name="tick").active
    assert not Task.objects.get(name="add").active
    assert Task.objects.get(name="add").declared_fields  # owned again


def test_broken_declaration_changes_nothing_and_retires_nothing() -> None:
    sync_with(TICK, ADD)
    report = sync_with({**TICK, "func": "tests.testapp.jobs:missing"}, ADD)
    [error] = report.errors
    assert error.startswith("TASKS_SCHED['TASKS'][0] (id 'tick'): func:")
    assert "has no attribute 'missing'" in error
    task = Task.objects.get(name="tick")
    assert task.func == "tests.testapp.jobs:noop"
    assert task.active
    # An entry without an id could be any task: nothing is retired.
    report = sync_with({"func": "tests.testapp.jobs:noop"})
    assert 'needs an "id"' in report.errors[0]
    assert not report.retired
    assert Task.objects.filter(active=True).count() == 2


def test_settings_entry_without_trigger_is_an_error() -> None:
    report = sync_with({"id": "x", "func": "tests.testapp.jobs:noop"})
    assert 'needs a "trigger"' in report.errors[0]
    assert not Task.objects.exists()


def test_the_same_name_declared_twice_is_an_error(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[tool.scheduled.tick]\nevery = "hour"\nentrypoint = "tests.testapp.jobs:noop"\n'
    )
    report = sync_with(TICK, PYPROJECT=str(pyproject))
    assert "also declared by TASKS_SCHED['TASKS'][0]" in report.errors[0]
    assert not Task.objects.exists()


def test_decorator_and_pyproject_sources(tmp_path: Path) -> None:
    scheduler.task("interval", hours=1)(jobs.takes_anything)
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[tool.scheduled.clean-files]\nevery = "day"\nentrypoint = "tests.testapp.jobs:noop"\n'
    )
    report = sync_with(PYPROJECT=str(pyproject))
    assert sorted(report.created) == ["clean-files", "tests.testapp.jobs:takes_anything"]
    decorated = Task.objects.get(name="tests.testapp.jobs:takes_anything")
    assert decorated.source == Task.Source.DECORATOR
    assert decorated.source_ref == "tests.testapp.jobs:takes_anything"
    hashed = Task.objects.get(name="clean-files")
    assert hashed.source == Task.Source.PYPROJECT
    assert "[tool.scheduled.clean-files]: every day at" in hashed.source_ref
    # Both vanish: both retire; the decorator's reason says how functions are found.
    declarations._declared.clear()
    pyproject.write_text("")
    report = sync_with(PYPROJECT=str(pyproject))
    assert sorted(report.retired) == ["clean-files", "tests.testapp.jobs:takes_anything"]
    decorated.refresh_from_db()
    assert "imported during the sync" in decorated.inactive_reason


def test_a_database_task_of_a_declared_name_is_taken_over() -> None:
    Task.objects.create(
        name="tick",
        func="tests.testapp.jobs:noop",
        trigger="cron",
        trigger_config={"hour": 1},
        max_retries=2,
    )
    report = sync_with(TICK)
    assert "tick" in report.updated
    task = Task.objects.get(name="tick")
    assert (task.source, task.trigger) == (Task.Source.SETTINGS, "interval")
    assert task.max_retries == 2


def test_dry_run_reports_and_saves_nothing() -> None:
    out = StringIO()
    with override_settings(TASKS_SCHED={"TASKS": [TICK]}):
        call_command("synctasks", "--dry-run", stdout=out)
    assert "Created tick" in out.getvalue()
    assert "Dry run: nothing was saved." in out.getvalue()
    assert not Task.objects.exists()


def test_command_reports_and_fails_on_errors() -> None:
    out = StringIO()
    tasks = [TICK, {"id": "x", "func": "os:system", "trigger": "cron"}]
    with (
        override_settings(TASKS_SCHED={"TASKS": tasks}),
        pytest.raises(CommandError, match="1 declaration"),
    ):
        call_command("synctasks", stdout=out)
    assert "Created tick" in out.getvalue()
    assert "Error: TASKS_SCHED['TASKS'][1] (id 'x')" in out.getvalue()


# -- the admin -------------------------------------------------------------------------------


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("admin", "a@example.com", "pw"))
    return client


def change_url(task: Task) -> str:
    return reverse("admin:django_tasks_sched_task_change", args=[task.pk])


def test_admin_shows_the_declaration_and_declared_fields_read_only(admin_client: Client) -> None:
    sync_with({**TICK, "timeout": 60})
    task = Task.objects.get(name="tick")
    page = admin_client.get(change_url(task)).content.decode()
    assert "TASKS_SCHED" in page
    assert "Read-only here, because the declaration owns them" in page
    assert 'name="func"' not in page
    assert 'name="trigger_config"' not in page
    assert 'name="timeout"' not in page
    assert 'name="max_retries"' in page  # not declared: the admin's
    assert 'name="active"' in page
    form = {
        "name": "tick",
        "description": "",
        "inactive_reason": "",
        "max_instances": "2",
        "overlap": "skip",
        "coalesce": "on",
        "misfire_grace_time": "60",
        "timeout": "1",  # ignored: read-only
        "heartbeat_timeout": "",
        "backend": "",
        "queue_name": "default",
        "priority": "0",
        "max_retries": "3",
        "retry_delay": "0",
        "retry_backoff_max": "",
        "max_consecutive_failures": "",
        "initial-active": "True",  # as the page shows it (the form tells a change by it)
    }  # "active" left out: unticked
    response = admin_client.post(change_url(task), form)
    assert response.status_code == 302, response.content.decode()[:3000]
    task.refresh_from_db()
    assert (task.active, task.max_instances, task.max_retries, task.timeout) == (False, 2, 3, 60)
    assert not sync_with({**TICK, "timeout": 60}).changed
    assert not Task.objects.get(name="tick").active


def test_admin_leaves_database_tasks_editable(admin_client: Client) -> None:
    task = Task.objects.create(
        name="db", func="tests.testapp.jobs:noop", trigger="interval", trigger_config={"minutes": 5}
    )
    page = admin_client.get(change_url(task)).content.decode()
    assert 'name="func"' in page
    assert "declaration owns them" not in page


def test_admin_says_a_retired_task_is_the_admins_now(admin_client: Client) -> None:
    sync_with(TICK)
    sync_with()
    page = admin_client.get(change_url(Task.objects.get(name="tick"))).content.decode()
    assert "disappeared, so it was retired" in page
    assert 'name="func"' in page


def test_run_handles_survive_retirement() -> None:
    sync_with(TICK)
    run = Task.objects.get(name="tick").run_now(inline=True)
    sync_with()
    assert TaskRun.objects.get(pk=run.pk).result() is None
