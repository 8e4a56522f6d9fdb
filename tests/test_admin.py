"""The admin, through the test client, with real users and permissions."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from pytest_django.asserts import assertContains, assertNotContains, assertRedirects

from django_tasks_sched.forms import TaskForm
from django_tasks_sched.models import SchedulerProcess, Task, TaskRun
from django_tasks_sched.service.claims import Fire, claim_fires
from tests.factories import make_task

pytestmark = pytest.mark.django_db

TASK_CHANGELIST = reverse("admin:django_tasks_sched_task_changelist")
TASK_ADD = reverse("admin:django_tasks_sched_task_add")
RUN_CHANGELIST = reverse("admin:django_tasks_sched_taskrun_changelist")
ACTIONS = ["run_now", "activate_tasks", "deactivate_tasks"]

#: A schedule whose fires do not depend on today's date: every 6 hours from 2100-01-01.
FUTURE_INTERVAL = {"hours": 6, "start_date": "2100-01-01T00:00:00", "timezone": "Europe/Berlin"}
FIRE_TIME_ITEM = '<li><time datetime="'


def task_change_url(task: Task) -> str:
    return reverse("admin:django_tasks_sched_task_change", args=[task.pk])


def run_change_url(run: TaskRun) -> str:
    return reverse("admin:django_tasks_sched_taskrun_change", args=[run.pk])


def run_now_url(pk: int) -> str:
    return reverse("admin:django_tasks_sched_task_run_now", args=[pk])


def login(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def staff_user(username: str, *codenames: str) -> User:
    user = User.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="django_tasks_sched", codename__in=codenames
        )
    )
    return user


def form_data(**overrides: Any) -> dict[str, Any]:
    """Everything the add form posts, for a valid task; overrides replace keys."""
    data: dict[str, Any] = {
        "name": "nightly",
        "description": "",
        "func": "tests.testapp.jobs:add",
        "args": "[1, 2]",
        "kwargs": "{}",
        "trigger": "cron",
        "trigger_config": '{"crontab": "30 2 * * *"}',
        "active": "on",
        "inactive_reason": "",
        "max_instances": "1",
        "overlap": "skip",
        "remaining_runs": "",
        "coalesce": "on",
        "misfire_grace_time": "60",
        "timeout": "",
        "heartbeat_timeout": "",
        "backend": "",
        "queue_name": "default",
        "priority": "0",
        "max_retries": "0",
        "retry_delay": "0",
        "retry_backoff_max": "",
        "max_consecutive_failures": "",
    }
    data.update(overrides)
    return data


def content_of(response: Any) -> str:
    return response.content.decode()


def message_texts(response: Any) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def result_names(response: Any) -> list[str]:
    return [obj.name for obj in response.context["cl"].result_list]


def post_action(client: Client, action: str, tasks: list[Task], **more: Any) -> Any:
    """Post a changelist action; "deactivate_tasks" with its second step (the reason) too."""
    data = {"action": action, "_selected_action": [task.pk for task in tasks], **more}
    if action == "deactivate_tasks":
        data.setdefault("apply", "yes")
    return client.post(TASK_CHANGELIST, data, follow=True)


def count_queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


@pytest.fixture
def superuser() -> User:
    return User.objects.create_superuser("root", "root@example.com", "pw")


@pytest.fixture
def viewer() -> User:
    return staff_user("viewer", "view_task", "view_taskrun")


@pytest.fixture
def editor() -> User:
    return staff_user("editor", "view_task", "change_task", "view_taskrun")


@pytest.fixture
def runner() -> User:
    return staff_user("runner", "view_task", "run_task")


@pytest.fixture
def admin(superuser: User) -> Client:
    return login(superuser)


# -- Task changelist --------------------------------------------------------------------------


def test_changelist_renders_every_trigger(admin: Client) -> None:
    tasks = [
        make_task(
            "once", trigger=Task.Trigger.DATE, trigger_config={"run_date": "2100-01-01T09:00:00"}
        ),
        make_task("every-15", trigger_config={"minutes": 15}),
        make_task(
            "weekdays",
            trigger=Task.Trigger.CRON,
            trigger_config={"crontab": "*/15 9-17 * * mon-fri"},
        ),
        make_task(
            "fields",
            trigger=Task.Trigger.CRON,
            trigger_config={"hour": 3, "minute": 30, "timezone": "Europe/Berlin"},
            last_run_status=TaskRun.Status.FAILED,
            last_run_at=timezone.now(),
        ),
    ]
    response = admin.get(TASK_CHANGELIST)
    assert response.status_code == 200
    for task in tasks:
        assertContains(response, escape(task.name))
        assertContains(response, escape(task.describe_schedule()))
    assertContains(response, 'class="dts-badge dts-badge-red" data-status="FAILED"')
    assertNotContains(response, "dts-problem")


@pytest.mark.parametrize(
    ("status", "colour"),
    [
        ("SUCCESSFUL", "green"),
        ("FAILED", "red"),
        ("TIMED_OUT", "red"),
        ("INTERRUPTED", "red"),
        ("MISSED", "amber"),
        ("CANCELLED", "amber"),
        ("RUNNING", "blue"),
        ("QUEUED", "blue"),
    ],
)
def test_last_run_badge_colour(admin: Client, status: str, colour: str) -> None:
    make_task("t", last_run_status=status)
    response = admin.get(TASK_CHANGELIST)
    assertContains(response, f'class="dts-badge dts-badge-{colour}" data-status="{status}"')


def test_invalid_stored_config_does_not_break_the_changelist(admin: Client) -> None:
    # Rows can reach the table without validation (ORM, raw SQL, an older version's rules).
    task = make_task("broken", trigger_config={"no_such_key": 1})
    response = admin.get(TASK_CHANGELIST)
    assert response.status_code == 200
    assertContains(response, escape(task.describe_schedule()))
    assertContains(response, "no_such_key")


@pytest.mark.parametrize(
    ("query", "expected"),
    [("alpha", ["alpha"]), ("newsletter", ["alpha"]), ("jobs:greet", ["beta"])],
)
def test_search(admin: Client, query: str, expected: list[str]) -> None:
    make_task("alpha", description="Sends the newsletter")
    make_task("beta", func="tests.testapp.jobs:greet", kwargs={"name": "x"})
    make_task("gamma")
    assert result_names(admin.get(TASK_CHANGELIST, {"q": query})) == expected


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"active": "0"}, ["off", "switched-off"]),
        ({"active": "deactivated"}, ["switched-off"]),
        ({"trigger__exact": "cron"}, ["cron"]),
        ({"last_run_status": "FAILED"}, ["failed"]),
        ({"last_run_status": "none"}, ["cron", "declared", "off", "on", "switched-off"]),
        ({"source__exact": "settings"}, ["declared"]),
    ],
)
def test_filters(admin: Client, params: dict[str, str], expected: list[str]) -> None:
    make_task("on")
    make_task("off", active=False)
    make_task("switched-off", active=False, inactive_reason="Deactivated after 3 failed runs")
    make_task("cron", trigger=Task.Trigger.CRON, trigger_config={"crontab": "@daily"})
    make_task("failed", last_run_status=TaskRun.Status.FAILED)
    make_task("declared", source=Task.Source.SETTINGS)
    response = admin.get(TASK_CHANGELIST, params)
    assert response.status_code == 200
    assert result_names(response) == expected


def test_tasks_switched_off_by_the_scheduler_stand_out(admin: Client) -> None:
    make_task("paused", active=False)
    make_task("broken", active=False, inactive_reason="Deactivated after 3 failed runs in a row")
    page = admin.get(TASK_CHANGELIST).content.decode()
    assert page.count("switched off</span>") == 1
    assert 'title="Deactivated after 3 failed runs in a row"' in page


def test_a_person_s_pause_is_told_from_the_scheduler_s(admin: Client) -> None:
    by_alice = make_task("by-alice")
    by_alice.pause("deploy freeze", by="alice")
    broken = make_task("broken")
    Task.objects.filter(pk=broken.pk).switch_off("Deactivated after 3 failed runs in a row")
    page = admin.get(TASK_CHANGELIST).content.decode()
    assert "paused by alice</span>" in page
    assert 'title="deploy freeze"' in page
    assert page.count("switched off</span>") == 1
    change = admin.get(task_change_url(by_alice)).content.decode()
    assert "Paused by alice at" in change
    assert "skipped (overlap)" in change  # the counters of fires not run
    assert "Switched off by the scheduler at" in admin.get(task_change_url(broken)).content.decode()


def test_changelist_query_count_does_not_grow_with_rows(admin: Client) -> None:
    for i in range(5):
        make_task(f"task-{i:02}", last_run_status="SUCCESSFUL", last_run_at=timezone.now())
    few = count_queries(admin, TASK_CHANGELIST)
    for i in range(5, 20):
        make_task(f"task-{i:02}", last_run_status="FAILED", last_run_at=timezone.now())
    assert count_queries(admin, TASK_CHANGELIST) == few


# -- the Task form ----------------------------------------------------------------------------


def test_add_valid_task(admin: Client) -> None:
    response = admin.post(TASK_ADD, form_data())
    assert response.status_code == 302
    task = Task.objects.get(name="nightly")
    assert task.args == [1, 2]
    assert task.trigger_config == {"crontab": "30 2 * * *"}
    assert task.next_run_time is not None
    assert task.source == Task.Source.DATABASE


def test_add_page_lists_the_trigger_keys(admin: Client) -> None:
    response = admin.get(TASK_ADD)
    assert response.status_code == 200
    assertContains(response, "<code>run_date, timezone</code>")
    assertContains(response, "day_of_week")


def test_empty_json_boxes_mean_the_defaults(admin: Client) -> None:
    data = form_data(func="tests.testapp.jobs:noop", args="", kwargs="  ")
    assert admin.post(TASK_ADD, data).status_code == 302
    task = Task.objects.get(name="nightly")
    assert (task.args, task.kwargs) == ([], {})


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        pytest.param({"trigger_config": '{"minutes": '}, "trigger_config", id="invalid-json"),
        pytest.param({"trigger_config": "[1, 2]"}, "trigger_config", id="not-an-object"),
        pytest.param(
            {"trigger_config": '{"crontab": "* * * * *", "bogus": 1}'},
            "trigger_config",
            id="unknown-key",
        ),
        pytest.param(
            {"trigger_config": '{"crontab": "61 * * * *"}'}, "trigger_config", id="bad-crontab"
        ),
        pytest.param(
            {"trigger": "interval", "trigger_config": '{"minutes": 0}'},
            "trigger_config",
            id="zero-interval",
        ),
        pytest.param(
            {"trigger_config": '{"hour": 1, "timezone": "Mars/Base"}'},
            "trigger_config",
            id="unknown-zone",
        ),
        pytest.param({"trigger": "sometimes"}, "trigger", id="unknown-trigger"),
        pytest.param({"func": "tests.testapp.nowhere:nothing"}, "func", id="unimportable"),
        pytest.param({"func": "tests.testapp.jobs:NOT_CALLABLE"}, "func", id="not-callable"),
        pytest.param({"func": "os:getcwd", "args": "[]"}, "func", id="not-allowed"),
        pytest.param({"args": '{"a": 1}'}, "args", id="args-not-a-list"),
        pytest.param({"kwargs": "[1]"}, "kwargs", id="kwargs-not-an-object"),
        pytest.param({"args": "[1,"}, "args", id="args-invalid-json"),
        pytest.param({"args": "[1]"}, "args", id="missing-argument"),
        pytest.param({"kwargs": '{"c": 3}'}, "kwargs", id="unexpected-keyword"),
        pytest.param({"max_instances": "0"}, "max_instances", id="max-instances-zero"),
    ],
)
def test_add_errors_land_on_their_field_and_nothing_is_saved(
    admin: Client, overrides: dict[str, str], field: str
) -> None:
    response = admin.post(TASK_ADD, form_data(**overrides))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == [field], errors
    assert not Task.objects.exists()


def test_invalid_json_gives_one_clean_error() -> None:
    form = TaskForm(data=form_data(trigger_config="{not json"))
    assert not form.is_valid()
    assert form.errors["trigger_config"] == ["Enter a valid JSON."]


def test_invalid_kwargs_json_does_not_blame_args() -> None:
    form = TaskForm(data=form_data(func="tests.testapp.jobs:greet", args='["x"]', kwargs="{"))
    assert not form.is_valid()
    assert list(form.errors) == ["kwargs"]


def test_model_error_on_a_field_the_form_lacks_is_a_form_error_not_a_crash() -> None:
    class NarrowForm(TaskForm):
        class Meta(TaskForm.Meta):
            fields = ["name", "trigger", "trigger_config"]

    form = NarrowForm(
        data={"name": "x", "trigger": "interval", "trigger_config": '{"minutes": 1}'},
        instance=Task(func="tests.testapp.nowhere:nothing"),
    )
    assert not form.is_valid()
    assert list(form.errors) == ["__all__"]


def test_ticking_active_again_resets_the_failure_state(admin: Client) -> None:
    task = make_task(
        "edit-me", active=False, inactive_reason="Too many failures", consecutive_failures=5
    )
    data = form_data(name="edit-me", func="tests.testapp.jobs:noop", args="[]")
    assert admin.post(task_change_url(task), data).status_code == 302
    task.refresh_from_db()
    assert task.trigger == "cron"
    assert task.active
    assert (task.inactive_reason, task.consecutive_failures) == ("", 0)
    assert task.next_run_time is not None


# -- the Task change page ---------------------------------------------------------------------


def test_change_page_shows_schedule_in_words_and_five_fire_times(admin: Client) -> None:
    task = make_task("future", trigger_config=FUTURE_INTERVAL)
    response = admin.get(task_change_url(task))
    assert response.status_code == 200
    assertContains(response, escape(task.describe_schedule()))
    content = content_of(response)
    assert content.count(FIRE_TIME_ITEM) == 5
    # In the task's own zone, with the zone named.
    for stamp in [
        "Fri 2100-01-01 00:00:00 CET",
        "Fri 2100-01-01 06:00:00 CET",
        "Fri 2100-01-01 12:00:00 CET",
        "Fri 2100-01-01 18:00:00 CET",
        "Sat 2100-01-02 00:00:00 CET",
    ]:
        assert stamp in content


def test_fire_times_in_the_site_zone_when_the_task_names_none(admin: Client, settings: Any) -> None:
    settings.TIME_ZONE = "America/New_York"
    task = make_task("local", trigger_config={"hours": 1, "start_date": "2100-06-01T00:00:00"})
    assertContains(admin.get(task_change_url(task)), "Tue 2100-06-01 00:00:00 EDT")


def test_change_page_with_an_invalid_stored_config_shows_the_error(admin: Client) -> None:
    task = make_task("broken", trigger_config={"minutes": 15, "no_such_key": 1})
    response = admin.get(task_change_url(task))
    assert response.status_code == 200
    assertContains(response, "dts-problem")
    assertContains(response, "no_such_key")


def test_preview_describes_the_saved_row_after_a_rejected_post(admin: Client) -> None:
    task = make_task("future", trigger_config=FUTURE_INTERVAL)
    data = form_data(
        name="future",
        func="tests.testapp.jobs:noop",
        args="[]",
        trigger="interval",
        trigger_config='{"minutes": 0}',
    )
    response = admin.post(task_change_url(task), data)
    assert response.status_code == 200
    assert "trigger_config" in response.context["adminform"].form.errors
    assertContains(response, "Fri 2100-01-01 06:00:00 CET")
    task.refresh_from_db()
    assert task.trigger_config == FUTURE_INTERVAL


def test_inactive_task_still_previews(admin: Client) -> None:
    task = make_task("paused", trigger_config=FUTURE_INTERVAL, active=False)
    response = admin.get(task_change_url(task))
    assertContains(response, "dts-note")
    assert content_of(response).count(FIRE_TIME_ITEM) == 5


def test_finished_date_task_has_no_fire_times(admin: Client) -> None:
    config = {"run_date": "2000-01-01T00:00:00"}
    task = make_task("past", trigger=Task.Trigger.DATE, trigger_config=config)
    response = admin.get(task_change_url(task))
    assertContains(response, "will not fire again")
    assert FIRE_TIME_ITEM not in content_of(response)


def test_recent_runs_are_limited_with_a_link_to_all(admin: Client) -> None:
    task = make_task("busy")
    start = timezone.now() - timedelta(days=1)
    TaskRun.objects.bulk_create(
        TaskRun(task=task, status="SUCCESSFUL", scheduled_for=start + timedelta(minutes=i))
        for i in range(15)
    )
    TaskRun.objects.create(task=make_task("other"), status="FAILED")
    response = admin.get(task_change_url(task))
    assert response.status_code == 200
    run_links = re.findall(
        r'href="/admin/django_tasks_sched/taskrun/\d+/change/"', content_of(response)
    )
    assert len(run_links) == 10
    all_url = f"{RUN_CHANGELIST}?task__id__exact={task.pk}"
    assertContains(response, escape(all_url))
    listing = admin.get(all_url)
    assert listing.status_code == 200
    assert len(listing.context["cl"].result_list) == 15


def test_task_without_runs(admin: Client) -> None:
    assertContains(admin.get(task_change_url(make_task("idle"))), "This task has not run yet.")


def test_add_page_has_no_preview(admin: Client) -> None:
    response = admin.get(TASK_ADD)
    assertNotContains(response, "field-upcoming_fire_times")
    assertNotContains(response, "field-recent_runs")


# -- actions ----------------------------------------------------------------------------------


@pytest.fixture
def tasks() -> list[Task]:
    return [make_task("a"), make_task("b"), make_task("c", active=False)]


def test_run_now_queues_manual_runs_and_reports(admin: Client, tasks: list[Task]) -> None:
    a, _b, c = tasks
    response = post_action(admin, "run_now", [a, c])
    assert response.status_code == 200
    runs = list(TaskRun.objects.order_by("task__name"))
    assert [run.task.name for run in runs] == ["a", "c"]
    for run in runs:
        assert (run.status, run.origin, run.scheduled_for) == ("QUEUED", "MANUAL", None)
    (text,) = message_texts(response)
    assert text.startswith("2 tasks queued to run now, but no scheduler process is running")


def test_run_now_message_and_banner_name_a_live_scheduler(admin: Client, tasks: list[Task]) -> None:
    SchedulerProcess.objects.create(worker_id="scheduler:web1:42:ab", hostname="web1", pid=42)
    response = post_action(admin, "run_now", tasks[:1])
    (text,) = message_texts(response)
    assert text.startswith("1 task queued to run now; a live scheduler process will start it")
    response = admin.get(reverse("admin:django_tasks_sched_task_changelist"))
    assertContains(response, "1 scheduler process is running")
    assertContains(response, "web1 (pid 42")


def test_banner_warns_when_no_scheduler_is_alive(admin: Client) -> None:
    # A heartbeat older than HEARTBEAT_TIMEOUT does not count.
    SchedulerProcess.objects.create(
        worker_id="scheduler:old:1:cd",
        hostname="old",
        pid=1,
        last_seen=timezone.now() - timedelta(minutes=5),
    )
    response = admin.get(reverse("admin:django_tasks_sched_task_changelist"))
    assertContains(response, "No scheduler process is running")


def test_run_now_needs_only_the_run_permission(runner: User, tasks: list[Task]) -> None:
    response = post_action(login(runner), "run_now", tasks[:1])
    assert message_texts(response)[0].startswith("1 task queued to run now")
    assert TaskRun.objects.count() == 1


def test_deactivate_and_activate(editor: User, tasks: list[Task]) -> None:
    client = login(editor)
    a = tasks[0]
    assert a.next_run_time is not None
    response = post_action(client, "deactivate_tasks", tasks)
    assert message_texts(response) == ["2 tasks deactivated.", "1 task was already inactive."]
    assert not Task.objects.filter(active=True).exists()
    assert not Task.objects.filter(next_run_time__isnull=False).exists()

    Task.objects.filter(pk=a.pk).update(inactive_reason="Failed 3 times in a row")
    response = post_action(client, "activate_tasks", [a])
    assert message_texts(response) == ["1 task activated."]
    a.refresh_from_db()
    assert a.active
    assert a.next_run_time is not None
    assert a.inactive_reason == ""


def test_view_only_user_sees_no_actions(viewer: User, tasks: list[Task]) -> None:
    response = login(viewer).get(TASK_CHANGELIST)
    assert response.status_code == 200
    assert response.context["action_form"] is None
    for action in ACTIONS:
        assertNotContains(response, f'value="{action}"')


@pytest.mark.parametrize("action", ACTIONS)
def test_view_only_user_cannot_post_actions(viewer: User, tasks: list[Task], action: str) -> None:
    before = list(Task.objects.values_list("name", "active", "next_run_time", "updated_at"))
    response = post_action(login(viewer), action, tasks)
    assert response.status_code == 200
    assert not TaskRun.objects.exists()
    after = list(Task.objects.values_list("name", "active", "next_run_time", "updated_at"))
    assert after == before


def test_change_without_run_permission_cannot_run(editor: User, tasks: list[Task]) -> None:
    client = login(editor)
    response = client.get(TASK_CHANGELIST)
    choices = [name for name, _label in response.context["action_form"].fields["action"].choices]
    assert "activate_tasks" in choices
    assert "deactivate_tasks" in choices
    assert "run_now" not in choices
    response = post_action(client, "run_now", tasks[:1])
    assert "No action selected." in message_texts(response)
    assert not TaskRun.objects.exists()


def test_run_permission_without_change_cannot_toggle(runner: User, tasks: list[Task]) -> None:
    post_action(login(runner), "deactivate_tasks", tasks[:1])
    tasks[0].refresh_from_db()
    assert tasks[0].active


def test_deactivating_asks_why_and_says_who_paused(admin: Client, tasks: list[Task]) -> None:
    asked = admin.post(
        TASK_CHANGELIST, {"action": "deactivate_tasks", "_selected_action": [tasks[0].pk]}
    )
    assertContains(asked, "Deactivate this task?")
    assertContains(asked, 'name="reason"')
    tasks[0].refresh_from_db()
    assert tasks[0].active  # nothing changes before the answer
    refused = post_action(admin, "deactivate_tasks", tasks[:1], reason="x" * 256)
    assertContains(refused, "at most 255 characters")
    post_action(admin, "deactivate_tasks", tasks[:1], reason="off during the migration")
    tasks[0].refresh_from_db()
    assert (tasks[0].active, tasks[0].paused_by) == (False, "root")
    assert tasks[0].inactive_reason == "off during the migration"


def test_run_now_respects_the_overlap_policy(admin: Client) -> None:
    task = make_task("busy")
    claim_fires([Fire(task.pk, timezone.now(), None)], "scheduler:a")  # one running
    response = post_action(admin, "run_now", [task])
    (text,) = message_texts(response)
    assert text.startswith("busy was not run: Skipped: 1 run(s) already running")
    assert task.runs.filter(status="MISSED", origin="MANUAL").count() == 1


def test_actions_are_logged(admin: Client, tasks: list[Task]) -> None:
    post_action(admin, "run_now", tasks[:1])
    post_action(admin, "deactivate_tasks", tasks[:1])
    assert LogEntry.objects.filter(object_id=str(tasks[0].pk)).count() == 2


# -- the "Run now" button ---------------------------------------------------------------------


def test_run_now_button_queues_a_run(admin: Client) -> None:
    task = make_task("a")
    assertContains(admin.get(task_change_url(task)), f'action="{run_now_url(task.pk)}"')
    response = admin.post(run_now_url(task.pk))
    assertRedirects(response, task_change_url(task))
    run = TaskRun.objects.get()
    assert (run.task, run.status, run.origin) == (task, "QUEUED", "MANUAL")


def test_run_now_button_refuses_get(admin: Client) -> None:
    task = make_task("a")
    assert admin.get(run_now_url(task.pk)).status_code == 405
    assert not TaskRun.objects.exists()


def test_run_now_button_needs_the_run_permission(editor: User) -> None:
    task = make_task("a")
    client = login(editor)
    assertNotContains(client.get(task_change_url(task)), run_now_url(task.pk))
    assert client.post(run_now_url(task.pk)).status_code == 403
    assert not TaskRun.objects.exists()


def test_run_now_button_shown_to_a_runner(runner: User) -> None:
    task = make_task("a")
    assertContains(login(runner).get(task_change_url(task)), f'action="{run_now_url(task.pk)}"')


def test_run_now_button_checks_csrf(superuser: User) -> None:
    task = make_task("a")
    client = Client(enforce_csrf_checks=True)
    client.force_login(superuser)
    assert client.post(run_now_url(task.pk)).status_code == 403
    assert not TaskRun.objects.exists()


def test_run_now_button_unknown_task(admin: Client) -> None:
    assert admin.post(run_now_url(999999)).status_code == 404


# -- the TaskRun admin ------------------------------------------------------------------------


@pytest.fixture
def failed_run() -> TaskRun:
    now = timezone.now()
    return TaskRun.objects.create(
        task=make_task("a", func="tests.testapp.jobs:fail"),
        status=TaskRun.Status.FAILED,
        scheduled_for=now - timedelta(minutes=1),
        started_at=now - timedelta(seconds=30),
        finished_at=now - timedelta(seconds=27),
        error="RuntimeError: boom <b>",
        traceback='Traceback (most recent call last):\n  File "x.py"\nRuntimeError: boom',
        log="INFO starting\nERROR boom",
        worker_id="host:123",
    )


@pytest.fixture
def successful_run(failed_run: TaskRun) -> TaskRun:
    return TaskRun.objects.create(
        task=failed_run.task,
        status=TaskRun.Status.SUCCESSFUL,
        return_value={"rows": 3, "tables": ["a", "b"]},
    )


def test_run_changelist(viewer: User, failed_run: TaskRun, successful_run: TaskRun) -> None:
    response = login(viewer).get(RUN_CHANGELIST)
    assert response.status_code == 200
    assertContains(response, 'class="dts-badge dts-badge-red" data-status="FAILED"')
    assertContains(response, 'class="dts-badge dts-badge-green" data-status="SUCCESSFUL"')
    assertContains(response, f'href="{task_change_url(failed_run.task)}"')
    assertContains(response, "3.00 s")
    assertContains(response, "host:<wbr>123")  # a worker id wraps at its colons


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "FAILED"}, ["failed"]),
        ({"status": "SUCCESSFUL"}, ["successful"]),
        ({"status": "problems"}, ["failed"]),
        ({"status__exact": "FAILED"}, ["failed"]),
        ({"origin__exact": "SCHEDULE"}, ["successful", "failed"]),
        ({"task__trigger__exact": "cron"}, []),
        ({"task__trigger__exact": "interval"}, ["successful", "failed"]),
        ({"q": "boom"}, ["failed"]),
        ({"q": "a"}, ["successful", "failed"]),
    ],
)
def test_run_filters_and_search(
    admin: Client,
    failed_run: TaskRun,
    successful_run: TaskRun,
    params: dict[str, str],
    expected: list[str],
) -> None:
    names = {failed_run.pk: "failed", successful_run.pk: "successful"}
    response = admin.get(RUN_CHANGELIST, params)
    assert response.status_code == 200
    assert [names[run.pk] for run in response.context["cl"].result_list] == expected


def test_not_successful_filter_gathers_every_bad_ending(admin: Client) -> None:
    task = make_task("mixed")
    for status in TaskRun.Status.values:
        TaskRun.objects.create(task=task, status=status)
    response = admin.get(RUN_CHANGELIST, {"status": "problems"})
    assert response.status_code == 200
    assert sorted(run.status for run in response.context["cl"].result_list) == [
        "FAILED",
        "INTERRUPTED",
        "MISSED",
        "TIMED_OUT",
    ]
    assertContains(response, "Not successful (failed, timed out, interrupted, missed)")


def test_run_detail_is_read_only_and_preformatted(
    admin: Client, failed_run: TaskRun, successful_run: TaskRun
) -> None:
    response = admin.get(run_change_url(failed_run))
    assert response.status_code == 200
    assertContains(
        response,
        '<pre class="dts-pre">Traceback (most recent call last):\n  File &quot;x.py&quot;',
    )
    assertContains(response, '<pre class="dts-pre">INFO starting\nERROR boom</pre>')
    assertContains(response, "RuntimeError: boom &lt;b&gt;")
    assertContains(response, f'href="{task_change_url(failed_run.task)}"')
    assertNotContains(response, 'name="_save"')
    response = admin.get(run_change_url(successful_run))
    assertContains(response, escape('"tables": [\n    "a",\n    "b"\n  ]'))


def test_runs_cannot_be_added_or_edited(admin: Client, failed_run: TaskRun) -> None:
    assert admin.get(reverse("admin:django_tasks_sched_taskrun_add")).status_code == 403
    response = admin.post(run_change_url(failed_run), {"status": "SUCCESSFUL"})
    assert response.status_code == 403
    failed_run.refresh_from_db()
    assert failed_run.status == "FAILED"


def test_deleting_a_run_needs_the_delete_permission(
    viewer: User, admin: Client, failed_run: TaskRun
) -> None:
    delete_url = reverse("admin:django_tasks_sched_taskrun_delete", args=[failed_run.pk])
    assert login(viewer).post(delete_url, {"post": "yes"}).status_code == 403
    assert admin.post(delete_url, {"post": "yes"}).status_code == 302
    assert not TaskRun.objects.filter(pk=failed_run.pk).exists()


def test_run_changelist_query_count_does_not_grow_with_rows(
    admin: Client, failed_run: TaskRun
) -> None:
    few = count_queries(admin, RUN_CHANGELIST)
    for i in range(20):
        TaskRun.objects.create(task=make_task(f"t{i}"), status="RUNNING", started_at=timezone.now())
    assert count_queries(admin, RUN_CHANGELIST) == few


def test_view_only_user_sees_the_task_page_read_only(viewer: User) -> None:
    task = make_task("future", trigger_config=FUTURE_INTERVAL)
    response = login(viewer).get(task_change_url(task))
    assert response.status_code == 200
    assertContains(response, escape(task.describe_schedule()))
    assert content_of(response).count(FIRE_TIME_ITEM) == 5
    assertNotContains(response, 'name="_save"')
    assertNotContains(response, run_now_url(task.pk))


def test_task_with_runs_can_be_deleted(admin: Client, failed_run: TaskRun) -> None:
    task = failed_run.task
    delete_url = reverse("admin:django_tasks_sched_task_delete", args=[task.pk])
    assert admin.get(delete_url).status_code == 200
    assert admin.post(delete_url, {"post": "yes"}).status_code == 302
    assert not Task.objects.exists()
    assert not TaskRun.objects.exists()


def test_the_form_edits_every_task_option() -> None:
    from django_tasks_sched.options import TASK_OPTIONS

    assert set(TASK_OPTIONS) <= set(TaskForm.base_fields)


def test_banner_says_when_firing_is_paused_and_by_whom(admin: Client) -> None:
    from django_tasks_sched.firing import switch_firing

    changelist = reverse("admin:django_tasks_sched_task_changelist")
    assertNotContains(admin.get(changelist), "Firing is paused")
    switch_firing(False, "deploy-bot (API)")
    response = admin.get(changelist)
    assertContains(response, "Firing is paused in every scheduler process (by deploy-bot (API)")
    switch_firing(True)
    assertNotContains(admin.get(changelist), "Firing is paused")


# -- backfill -----------------------------------------------------------------------------------


def backfill_url(task: Task) -> str:
    return reverse("admin:django_tasks_sched_task_backfill", args=[task.pk])


def test_backfill_page_previews_then_queues_each_fire_once(admin: Client) -> None:
    task = make_task("ten", trigger="cron", trigger_config={"crontab": "*/10 * * * *"})
    assertContains(admin.get(task_change_url(task)), backfill_url(task))
    page = admin.get(backfill_url(task))
    assertContains(page, 'type="datetime-local"')
    span = {"start": "2026-01-01T00:00", "end": "2026-01-01T01:00"}
    preview = admin.post(backfill_url(task), {**span, "preview": "Preview"})
    assertContains(preview, "6 fire times in the range")
    assert not TaskRun.objects.exists()
    done = admin.post(backfill_url(task), {**span, "backfill": "Backfill"}, follow=True)
    assert message_texts(done) == ["6 runs queued for the range."]
    assert TaskRun.objects.filter(origin="BACKFILL", buffered=True).count() == 6
    again = admin.post(backfill_url(task), {**span, "backfill": "Backfill"}, follow=True)
    assert message_texts(again) == ["0 runs queued for the range."]


@pytest.mark.parametrize(
    ("span", "error"),
    [
        ({"start": "2026-01-02T00:00", "end": "2026-01-01T00:00"}, "must be after the start"),
        ({"start": "yesterday", "end": "2026-01-01T00:00"}, "Enter a valid date/time."),
        ({"start": "2026-01-01T00:00", "end": "2026-06-01T00:00"}, "more than 10000 fires"),
        ({"start": "0001-01-01T00:00", "end": "0001-01-02T00:00"}, "out of range 1970-2999"),
        ({"start": "9999-12-31T00:00", "end": "9999-12-31T23:59"}, "out of range 1970-2999"),
    ],
)
def test_backfill_page_says_what_is_wrong(admin: Client, span: dict[str, str], error: str) -> None:
    task = make_task("minutely", trigger="cron", trigger_config={"crontab": "* * * * *"})
    response = admin.post(backfill_url(task), {**span, "backfill": "Backfill"})
    assert response.status_code == 200
    assertContains(response, error)
    assert not TaskRun.objects.exists()


def test_backfill_page_needs_the_run_permission(editor: User) -> None:
    task = make_task("a")
    client = login(editor)
    assertNotContains(client.get(task_change_url(task)), backfill_url(task))
    assert client.get(backfill_url(task)).status_code == 403


def test_a_save_keeps_what_the_scheduler_wrote_since_the_page_was_loaded(admin: Client) -> None:
    task = make_task("counted", remaining_runs=3)
    # The page showed 3 left and the task active; since then the scheduler used two runs.
    shown = form_data(
        name="counted",
        trigger="interval",
        trigger_config='{"minutes": 5}',
        func="tests.testapp.jobs:noop",
        args="[]",
        remaining_runs="3",
        **{"initial-remaining_runs": "3", "initial-active": "True"},
    )
    Task.objects.filter(pk=task.pk).update_quietly(remaining_runs=1)
    response = admin.post(task_change_url(task), {**shown, "description": "edited"})
    assert response.status_code == 302, response.content.decode()[:2000]
    task.refresh_from_db()
    assert (task.description, task.remaining_runs) == ("edited", 1)
    # Switched off meanwhile (no runs left): an unrelated edit does not switch it back on.
    Task.objects.filter(pk=task.pk).update_quietly(remaining_runs=0)
    Task.objects.filter(pk=task.pk).switch_off("Finished: no runs left")
    admin.post(task_change_url(task), {**shown, "description": "again"})
    task.refresh_from_db()
    assert (task.active, task.remaining_runs, task.inactive_reason) == (
        False,
        0,
        "Finished: no runs left",
    )
    # What the user changed is saved.
    admin.post(
        task_change_url(task),
        {**shown, "remaining_runs": "5", "initial-remaining_runs": "0", "initial-active": "False"},
    )
    task.refresh_from_db()
    assert (task.active, task.remaining_runs) == (True, 5)
