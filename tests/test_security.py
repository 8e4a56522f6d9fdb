"""Security that fails closed: the callable policy, the admin, and who may make a task run now."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.checks import run_checks
from django.core.exceptions import ValidationError
from django.test import Client, override_settings
from django.utils import timezone

from django_tasks_sched import scheduler
from django_tasks_sched.callables import callable_path, resolve_callable
from django_tasks_sched.checks import TAG
from django_tasks_sched.exceptions import TaskConfigError
from django_tasks_sched.models import Task, TaskRun
from django_tasks_sched.policy import DUE_NOW_WINDOW, makes_due_now
from tests import factories
from tests.test_admin import (
    TASK_ADD,
    form_data,
    login,
    message_texts,
    post_action,
    staff_user,
    task_change_url,
)
from tests.testapp import jobs

pytestmark = pytest.mark.django_db

#: A schedule that fires long after any test: editing to or from it never runs a task now.
FAR_DATE = {"run_date": "2100-01-01T00:00:00"}


#: A task that fires only at FAR_DATE.
make_task = partial(factories.make_task, trigger=Task.Trigger.DATE, trigger_config=FAR_DATE)


def func_errors(**task_fields: Any) -> list[str]:
    task = Task(name="t", trigger="date", trigger_config=FAR_DATE, **task_fields)
    with pytest.raises(ValidationError) as excinfo:
        task.full_clean()
    return excinfo.value.message_dict["func"]


# -- 1. a malformed ALLOWED_MODULES allows nothing -----------------------------------------------

MALFORMED = [
    pytest.param({"ALLOWED_MODULES": "tests.testapp"}, id="a-string"),
    pytest.param({"ALLOWED_MODULES": ["tests.testapp", 1]}, id="a-non-string"),
    pytest.param({"ALLOWED_MODULES": ["tests.testapp", ""]}, id="an-empty-string"),
    pytest.param({"ALLOWED_MODULES": ["tests.testapp:jobs"]}, id="not-a-module-name"),
    pytest.param({"ALLOWED_MODULES": {"tests.testapp"}}, id="a-set"),
]


@pytest.mark.parametrize("setting", MALFORMED)
def test_a_malformed_allowed_modules_refuses_every_callable(setting: dict[str, Any]) -> None:
    # tests.testapp.jobs is allowed by the default policy: it must not be by a malformed one.
    with override_settings(TASKS_SCHED=setting):
        [message] = func_errors(func="tests.testapp.jobs:noop")
        assert "TASKS_SCHED['ALLOWED_MODULES']" in message
        assert "no callable may run until it is fixed" in message
        # Registered callables too: the setting's intent is unknown, so nothing runs.
        with pytest.raises(TaskConfigError, match="no callable may run"):
            resolve_callable("tests.outside.jobs:registered_job")


def test_a_setting_that_is_not_a_dict_refuses_every_callable() -> None:
    with override_settings(TASKS_SCHED=["tests.testapp"]):
        [message] = func_errors(func="tests.testapp.jobs:noop")
    assert "TASKS_SCHED must be a dict, not list" in message


def test_a_malformed_setting_fails_the_runs_too() -> None:
    task = make_task()
    with override_settings(TASKS_SCHED={"ALLOWED_MODULES": "tests.testapp"}):
        run = task.run_now(inline=True)
    run.refresh_from_db()
    assert run.status == TaskRun.Status.FAILED
    assert "TASKS_SCHED['ALLOWED_MODULES'] must be a list, not str" in run.error


@pytest.mark.parametrize("setting", MALFORMED)
def test_the_check_says_nothing_is_allowed(setting: dict[str, Any]) -> None:
    with override_settings(TASKS_SCHED=setting):
        [message] = run_checks(tags=[TAG])
    assert message.id == "django_tasks_sched.E002"
    assert "no task callable is allowed to run" in message.msg


def test_a_well_formed_setting_still_allows_its_modules() -> None:
    with override_settings(TASKS_SCHED={"ALLOWED_MODULES": ["tests.testapp"]}):
        assert resolve_callable("tests.testapp.jobs:noop") is jobs.noop


# -- 2 and 3. the admin pages of declared tasks ------------------------------------------------


@pytest.fixture
def superuser() -> User:
    return User.objects.create_superuser("root", "root@example.com", "pw")


@pytest.fixture
def unimported() -> Iterator[str]:
    """A module of an installed app that the policy never allows, not imported before."""
    name = "django.contrib.admin.tests"
    before = sys.modules.pop(name, None)
    yield name
    sys.modules.pop(name, None)
    if before is not None:
        sys.modules[name] = before


def test_the_change_page_never_imports_a_module_outside_the_policy(
    superuser: User, unimported: str
) -> None:
    task = make_task(
        source=Task.Source.DECORATOR,
        source_ref=f"{unimported}:job",
        declared_fields=["func", "trigger", "trigger_config"],
    )
    response = login(superuser).get(task_change_url(task))
    assert response.status_code == 200
    assert unimported not in sys.modules


def test_the_change_page_ignores_declared_fields_that_no_longer_exist(superuser: User) -> None:
    task = make_task(
        source=Task.Source.SETTINGS,
        source_ref="TASKS_SCHED['TASKS'][0]",
        declared_fields=["func", "no_such_field", 7, "id"],
    )
    client = login(superuser)
    response = client.get(task_change_url(task))
    assert response.status_code == 200
    readonly = response.context["adminform"].readonly_fields
    assert "func" in readonly
    assert "no_such_field" not in readonly
    data = form_data(name="job", args="[]", trigger="date", trigger_config=json.dumps(FAR_DATE))
    assert client.post(task_change_url(task), data).status_code == 302


# -- 4. without run_task, no schedule that fires at once -----------------------------------------


@pytest.fixture
def editor() -> User:
    return staff_user("editor", "view_task", "add_task", "change_task")


@pytest.fixture
def operator() -> User:
    return staff_user("operator", "view_task", "add_task", "change_task", "run_task")


def iso(delta: timedelta) -> str:
    return (timezone.now() + delta).isoformat()


def date_config(delta: timedelta) -> str:
    return json.dumps({"run_date": iso(delta)})


def change(client: Client, task: Task, **overrides: Any) -> Any:
    data = form_data(name=task.name, func=task.func, args="[]", trigger="date")
    data.update(overrides)
    return client.post(task_change_url(task), data)


def form_errors(response: Any) -> dict[str, list[str]]:
    assert response.status_code == 200, "the form was expected to be refused"
    return dict(response.context["adminform"].form.errors)


# Dates as offsets from when the test runs, not from collection: a long suite would otherwise
# carry "30 seconds ago" past the misfire grace time.
NOW_SCHEDULES = [
    pytest.param("date", timedelta(0), id="date-now"),
    pytest.param("date", timedelta(seconds=50), id="date-within-a-minute"),
    pytest.param("date", -timedelta(seconds=30), id="past-date-within-grace"),
    pytest.param("interval", '{"seconds": 20}', id="interval"),
    pytest.param("cron", '{"crontab": "* * * * *"}', id="cron"),
]


@pytest.mark.parametrize(("trigger", "config"), NOW_SCHEDULES)
def test_an_edit_that_runs_the_task_now_needs_run_task(
    editor: User, operator: User, trigger: str, config: str | timedelta
) -> None:
    if isinstance(config, timedelta):
        config = date_config(config)
    task = make_task()
    response = change(login(editor), task, trigger=trigger, trigger_config=config)
    [message] = form_errors(response)["trigger_config"]
    assert "needs the permission to run tasks (django_tasks_sched.run_task)" in message
    task.refresh_from_db()
    assert task.trigger_config == FAR_DATE

    response = change(login(operator), task, trigger=trigger, trigger_config=config)
    assert response.status_code == 302
    task.refresh_from_db()
    assert task.trigger == trigger


@pytest.mark.parametrize("username", ["editor", "operator"])
def test_an_edit_to_a_later_time_saves_without_run_task(
    username: str, request: pytest.FixtureRequest
) -> None:
    client = login(request.getfixturevalue(username))
    task = make_task()
    # A past date beyond its misfire grace time never fires: it does not run now either.
    for delta in (timedelta(hours=1), -timedelta(days=1)):
        config = date_config(delta)
        assert change(client, task, trigger_config=config).status_code == 302
        task.refresh_from_db()
        assert task.trigger_config == json.loads(config)


def test_adding_a_task_that_runs_now_needs_run_task(editor: User, operator: User) -> None:
    data = form_data(trigger="interval", trigger_config='{"seconds": 30}')
    errors = form_errors(login(editor).post(TASK_ADD, data))
    assert "trigger_config" in errors
    assert not Task.objects.filter(name="nightly").exists()
    assert login(editor).post(TASK_ADD, form_data()).status_code == 302  # 02:30 nightly
    data["name"] = "every-30s"
    assert login(operator).post(TASK_ADD, data).status_code == 302


def test_switching_a_task_on_that_runs_now_needs_run_task(editor: User, operator: User) -> None:
    task = make_task(trigger=Task.Trigger.INTERVAL, trigger_config={"seconds": 30}, active=False)
    data = {"trigger": "interval", "trigger_config": '{"seconds": 30}', "active": "on"}
    errors = form_errors(change(login(editor), task, **data))
    assert list(errors) == ["active"]
    task.refresh_from_db()
    assert not task.active
    assert change(login(operator), task, **data).status_code == 302
    task.refresh_from_db()
    assert task.active


def test_editing_other_fields_of_a_task_due_soon_needs_no_run_task(editor: User) -> None:
    task = make_task(trigger=Task.Trigger.INTERVAL, trigger_config={"seconds": 30})
    response = change(
        login(editor), task, trigger="interval", trigger_config='{"seconds": 30}', description="x"
    )
    assert response.status_code == 302
    task.refresh_from_db()
    assert task.description == "x"


def test_the_activate_action_skips_tasks_that_would_run_now(editor: User, operator: User) -> None:
    due = make_task("due", trigger=Task.Trigger.INTERVAL, trigger_config={"seconds": 30})
    later = make_task("later")
    Task.objects.update(active=False)
    response = post_action(login(editor), "activate_tasks", [due, later])
    assert "1 task activated." in message_texts(response)
    assert any("1 task was not activated" in text for text in message_texts(response))
    assert list(Task.objects.filter(active=True).values_list("name", flat=True)) == ["later"]
    post_action(login(operator), "activate_tasks", [due])
    assert Task.objects.get(name="due").active


def test_makes_due_now_counts_only_what_the_change_brings_forward() -> None:
    now = timezone.now()
    soon = make_task("soon", trigger=Task.Trigger.INTERVAL, trigger_config={"seconds": 20})
    # Fires no sooner than the stored schedule would have: not brought forward.
    sooner_anyway = Task.objects.get(pk=soon.pk)
    sooner_anyway.trigger_config = {"seconds": 40}
    assert makes_due_now(sooner_anyway, soon, now) is None
    # Switched off, or unchanged: never.
    assert (
        makes_due_now(
            Task(name="off", trigger="interval", trigger_config={"seconds": 5}, active=False), None
        )
        is None
    )
    assert makes_due_now(soon, Task.objects.get(pk=soon.pk), now) is None
    # New, or brought forward from far away: yes, within the window.
    far = make_task("far")
    moved = Task.objects.get(pk=far.pk)
    moved.trigger_config = {"run_date": (now + DUE_NOW_WINDOW).isoformat()}
    assert makes_due_now(moved, far, now) == now + DUE_NOW_WINDOW
    moved.trigger_config = {"run_date": (now + DUE_NOW_WINDOW * 2).isoformat()}
    assert makes_due_now(moved, far, now) is None
    # A past date counts within its misfire grace time, and always without a limit.
    moved.trigger_config = {"run_date": (now - timedelta(minutes=5)).isoformat()}
    assert makes_due_now(moved, far, now) is None
    moved.misfire_grace_time = None
    assert makes_due_now(moved, far, now) is not None


# -- 5. no bound methods through the facade ----------------------------------------------------


def test_add_job_refuses_a_method_bound_to_an_instance() -> None:
    with pytest.raises(ValidationError) as excinfo:
        scheduler.add_job("mail", jobs.Mailer("ops").send, trigger="interval", minutes=5)
    [message] = excinfo.value.message_dict["func"]
    assert "tests.testapp.jobs:Mailer.send is a method bound to a Mailer instance" in message
    assert not Task.objects.exists()
    with pytest.raises(TypeError, match="bound to a Mailer instance"):
        callable_path(jobs.Mailer().send)


def test_an_instance_method_named_through_its_class_is_refused() -> None:
    with pytest.raises(ValidationError) as excinfo:
        scheduler.add_job("mail", jobs.Mailer.send, trigger="interval", minutes=5)
    assert "is an instance method" in excinfo.value.message_dict["func"][0]
    assert "is an instance method" in func_errors(func="tests.testapp.jobs:Mailer.send")[0]


def test_static_and_class_methods_stay_allowed() -> None:
    task = scheduler.add_job("check", jobs.Mailer.check, trigger="interval", minutes=5)
    assert task.func == "tests.testapp.jobs:Mailer.check"
    task = scheduler.add_job("rebuild", jobs.Maintenance.rebuild, trigger="interval", minutes=5)
    assert task.run_now(inline=True).result() == "Maintenance"


# -- 6. what calling would not run: an async generator -------------------------------------------


def test_an_async_generator_is_refused_at_validation() -> None:
    [message] = func_errors(func="tests.testapp.jobs:async_gen")
    assert "is an async generator" in message
    with pytest.raises(ValidationError, match="async generator"):
        scheduler.add_job("async", jobs.async_gen, trigger="interval", minutes=5)


def test_an_async_generator_forced_into_a_row_fails_its_run() -> None:
    task = make_task()
    Task.objects.filter(pk=task.pk).update(func="tests.testapp.jobs:async_gen")
    task.refresh_from_db()
    run = task.run_now(inline=True)
    run.refresh_from_db()
    assert run.status == TaskRun.Status.FAILED
    assert "is an async generator" in run.error
