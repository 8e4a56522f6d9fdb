"""The REST API over HTTP (Django's test client through the whole request stack).

Every endpoint: its success, 400, 401/403, 404 and 409 cases where it has them, on whichever
database ``DATABASE_URL`` names. A client written as Flask-APScheduler's users write them is
in ``tests/test_api_client.py``; the schema and the fuzzer in ``tests/test_api_schema.py``.
"""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client, override_settings
from django.utils import timezone

from django_tasks_sched import scheduler
from django_tasks_sched.firing import firing, switch_firing
from django_tasks_sched.models import SchedulerProcess, Task, TaskRun
from tests.factories import make_task

pytest.importorskip("rest_framework")

pytestmark = pytest.mark.django_db

PREFIX = "/scheduler/"


def user(name: str, *codenames: str) -> User:
    account = User.objects.create_user(name, password="pw")
    account.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return account


def client_for(account: User | None) -> Client:
    """A client logged in as ``account`` by session (CSRF not enforced, as for a script)."""
    client = Client()
    if account is not None:
        client.force_login(account)
    return client


def call(client: Client, method: str, path: str, body: Any = None, **headers: Any) -> Any:
    data = None if body is None else body if isinstance(body, str | bytes) else json.dumps(body)
    return client.generic(
        method, PREFIX + path, data or "", content_type="application/json", **headers
    )


ALL = (
    "view_task",
    "add_task",
    "change_task",
    "delete_task",
    "run_task",
    "pause_scheduler",
    "view_taskrun",
)


@pytest.fixture
def admin() -> Client:
    return client_for(user("admin", *ALL))


@pytest.fixture
def viewer() -> Client:
    return client_for(user("viewer", "view_task", "view_taskrun"))


@pytest.fixture
def anonymous() -> Client:
    return Client()


def assert_error(response: Any, status: int, *fields: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body: dict[str, Any] = response.json()
    assert isinstance(body["error_message"], str)
    assert body["error_message"]
    for field in fields:
        assert field in body["errors"], body
    return body


def assert_denied(response: Any, *, anonymous: bool = False) -> None:
    """Refused: 401 or 403 without a (valid) login, as the contract allows; 403 with one."""
    expected = (401, 403) if anonymous else (403,)
    assert response.status_code in expected, response.content
    assert "error_message" in response.json()


# -- the scheduler ----------------------------------------------------------------------------


def test_info_lists_live_processes_and_firing(admin: Client) -> None:
    SchedulerProcess.objects.create(worker_id="host:1:a", hostname="host", pid=1, version="x")
    SchedulerProcess.objects.create(
        worker_id="host:2:b",
        hostname="host",
        pid=2,
        version="x",
        last_seen=timezone.now() - timedelta(hours=1),
    )
    body = call(admin, "GET", "").json()
    assert set(body) >= {"current_host", "allowed_hosts", "running", "firing", "processes"}
    assert body["running"] is True
    assert [p["worker_id"] for p in body["processes"]] == ["host:1:a"]  # the dead one is not
    switch_firing(False, "ops")
    body = call(admin, "GET", "").json()
    assert body["running"] is False
    assert body["firing"]["on"] is False
    assert body["firing"]["changed_by"] == "ops"


def test_info_without_a_live_process_is_not_running(admin: Client) -> None:
    assert call(admin, "GET", "").json()["running"] is False


def test_info_needs_a_login_and_a_permission(anonymous: Client) -> None:
    assert_denied(call(anonymous, "GET", ""), anonymous=True)
    assert_denied(call(client_for(user("nobody")), "GET", ""))


@pytest.mark.parametrize(("path", "on"), [("pause", False), ("resume", True)])
def test_pause_and_resume_switch_firing_every_time(admin: Client, path: str, on: bool) -> None:
    switch_firing(not on)
    assert call(admin, "POST", path).status_code == 204
    assert firing().on is on
    assert firing().changed_by == "admin (API)"
    # Idempotent, as Flask-APScheduler's pause and resume.
    assert call(admin, "POST", path).status_code == 204
    assert firing().on is on


def test_shutdown_and_start_refuse_the_state_they_would_reach(admin: Client) -> None:
    assert_error(call(admin, "POST", "start"), 400)
    assert call(admin, "POST", "shutdown").status_code == 204
    assert firing().on is False
    assert_error(call(admin, "POST", "shutdown"), 400)
    assert call(admin, "POST", "start").status_code == 204
    assert firing().on is True


@pytest.mark.parametrize("path", ["pause", "resume", "shutdown", "start"])
def test_switching_firing_needs_its_own_permission(path: str, anonymous: Client) -> None:
    editor = client_for(user("editor", "view_task", "change_task", "run_task"))
    assert_denied(call(editor, "POST", path))
    assert_denied(call(anonymous, "POST", path), anonymous=True)
    assert firing().on is True


# -- jobs: listing and adding -----------------------------------------------------------------


def test_jobs_is_a_plain_list_of_flask_apscheduler_dicts(viewer: Client) -> None:
    make_task("b-cron", trigger="cron", trigger_config={"hour": 3, "timezone": "UTC"})
    make_task("a-interval", description="Every five", max_instances=2)
    response = call(viewer, "GET", "jobs")
    assert response.status_code == 200
    jobs = response.json()
    assert [job["id"] for job in jobs] == ["a-interval", "b-cron"]
    first = jobs[0]
    assert first["name"] == "Every five"
    assert first["func"] == "tests.testapp.jobs:noop"
    assert first["trigger"] == "interval"
    assert first["minutes"] == 5
    assert first["max_instances"] == 2
    assert first["misfire_grace_time"] == 60
    assert first["next_run_time"] is not None
    assert jobs[1]["hour"] == 3
    assert jobs[1]["timezone"] == "UTC"


def test_jobs_filters(viewer: Client) -> None:
    make_task("on")
    make_task("off", active=False)
    assert [j["id"] for j in call(viewer, "GET", "jobs?active=false").json()] == ["off"]
    assert [j["id"] for j in call(viewer, "GET", "jobs?trigger=interval").json()] == ["off", "on"]
    assert_error(call(viewer, "GET", "jobs?active=maybe"), 400, "active")
    assert_error(call(viewer, "GET", "jobs?trigger=weekly"), 400, "trigger")


def test_jobs_need_the_view_permission(anonymous: Client) -> None:
    assert_denied(call(anonymous, "GET", "jobs"), anonymous=True)
    assert_denied(call(client_for(user("runs-only", "view_taskrun")), "GET", "jobs"))
    # Change implies view, as in the admin.
    assert call(client_for(user("changer", "change_task")), "GET", "jobs").status_code == 200


JOB: dict[str, Any] = {
    "id": "report",
    "func": "tests.testapp.jobs:add",
    "trigger": "cron",
    "hour": 6,
    "minute": 30,
    "timezone": "Europe/Berlin",
    "args": [1, 2],
    "max_instances": 2,
    "timeout": 60,
    "name": "Morning report",
}


def test_add_job_returns_the_job(admin: Client) -> None:
    response = call(admin, "POST", "jobs", JOB)
    assert response.status_code == 200, response.content
    job = response.json()
    assert job["id"] == "report"
    assert job["name"] == "Morning report"
    assert (job["hour"], job["minute"], job["timezone"]) == (6, 30, "Europe/Berlin")
    assert response["ETag"]
    task = Task.objects.get(name="report")
    assert task.source == Task.Source.DATABASE
    assert task.args == [1, 2]
    assert task.timeout == 60
    assert task.trigger_config == {"hour": 6, "minute": 30, "timezone": "Europe/Berlin"}


def test_one_definition_works_for_the_api_the_facade_and_settings(admin: Client) -> None:
    from django_tasks_sched.declarations import settings_declarations

    assert call(admin, "POST", "jobs", JOB).status_code == 200
    via_api = Task.objects.get(name="report")
    via_facade = scheduler.add_job(**{**JOB, "id": "report-2"})
    with override_settings(TASKS_SCHED={"TASKS": [{**JOB, "id": "report-3"}]}):
        declared = settings_declarations().declarations[0]
    fields = ("func", "args", "kwargs", "trigger", "trigger_config", "description", "timeout")
    for name in fields:
        assert getattr(via_api, name) == getattr(via_facade, name), name
        assert getattr(via_api, name) == declared.fields[name], name


def test_a_job_read_can_be_sent_back(admin: Client) -> None:
    job = call(admin, "POST", "jobs", JOB).json()
    again = call(admin, "POST", "jobs", {**job, "id": "copy"})
    assert again.status_code == 200, again.content
    copied = again.json()
    for key in ("func", "args", "trigger", "hour", "minute", "timezone", "max_instances", "name"):
        assert copied[key] == job[key], key


def test_add_job_paused_with_next_run_time_null(admin: Client) -> None:
    call(admin, "POST", "jobs", {**JOB, "next_run_time": None})
    assert Task.objects.get(name="report").active is False


def test_add_existing_id_is_409(admin: Client) -> None:
    make_task("report")
    assert_error(call(admin, "POST", "jobs", JOB), 409)
    replaced = call(admin, "POST", "jobs", {**JOB, "replace_existing": True})
    assert replaced.status_code == 200
    assert Task.objects.get(name="report").trigger == "cron"


def test_replacing_a_declared_task_is_409(admin: Client) -> None:
    make_task(
        "report",
        source=Task.Source.SETTINGS,
        source_ref="TASKS_SCHED['TASKS'][0]",
        declared_fields=["func", "trigger", "trigger_config"],
    )
    assert_error(
        call(admin, "POST", "jobs", {**JOB, "replace_existing": True}), 409, "func", "trigger"
    )


def test_replacing_needs_the_change_permission() -> None:
    make_task("report")
    adder = client_for(user("adder", "add_task"))
    assert_denied(call(adder, "POST", "jobs", {**JOB, "replace_existing": True}))
    assert Task.objects.get(name="report").trigger == "interval"


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({**JOB, "hour": 25}, ["trigger_config"]),
        ({**JOB, "trigger": "interval", "seconds": 0}, ["trigger_config"]),
        ({**JOB, "trigger": "interval", "seconds": 5, "jitter": 1e308}, ["trigger_config"]),
        ({**JOB, "timezone": "America"}, ["trigger_config"]),
        ({**JOB, "func": "os:system"}, ["func"]),
        ({**JOB, "func": 5}, ["func"]),
        ({**JOB, "args": {"not": "a list"}}, ["args"]),
        ({**JOB, "args": ["\x00"]}, ["args"]),
        ({**JOB, "name": "nul \x00 here"}, ["description"]),
        ({**JOB, "id": "nul\x00id"}, ["name"]),
        ({**JOB, "id": "x" * 201}, ["name"]),
        ({**JOB, "id": 5}, ["id"]),
        ({**JOB, "id": ""}, ["id"]),
        ({k: v for k, v in JOB.items() if k != "id"}, ["id"]),
        ({**JOB, "max_instances": -1}, ["max_instances"]),
        ({**JOB, "max_instances": "many"}, ["max_instances"]),
        ({**JOB, "max_instances": 10**30}, ["max_instances"]),
        ({**JOB, "timeout": [1]}, ["timeout"]),
        ({**JOB, "trigger": ["cron"]}, ["trigger"]),
        ({**JOB, "trigger": "weekly"}, ["trigger"]),
        ({**JOB, "active": "yes"}, ["active"]),
        ({**JOB, "replace_existing": "yes"}, ["replace_existing"]),
        ({**JOB, "description": "also"}, ["name"]),
        ({**JOB, "unknown_key": 1}, ["trigger_config"]),
        ({**JOB, "max_instances": 1.7}, ["max_instances"]),
        ({**JOB, "max_instances": "2"}, ["max_instances"]),
        ({**JOB, "coalesce": "yes"}, ["coalesce"]),
        ({**JOB, "name": 5}, ["name"]),
        ({**JOB, "description": ["b"]}, ["description"]),
        ({**JOB, "id": "\ud800"}, ["name"]),
        ({**JOB, "name": "lone \udfff"}, ["description"]),
        ({**JOB, "queue_name": "\ud800"}, ["queue_name"]),
        ({**JOB, "args": ["\ud800"]}, ["args"]),
        ({**JOB, "kwargs": {"x": 1e19}}, ["kwargs"]),
        ({**JOB, "id": "ends-in/run"}, ["id"]),
        ({**JOB, "id": "ends-in/pause"}, ["id"]),
        ({**JOB, "kwargs": {"a": [[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]}}, ["kwargs"]),
    ],
)
def test_add_job_refuses_bad_input_by_field(
    admin: Client, body: dict[str, Any], fields: list[str]
) -> None:
    assert_error(call(admin, "POST", "jobs", body), 400, *fields)
    assert not Task.objects.exists()


@pytest.mark.parametrize(
    "raw",
    [
        "[1, 2]",
        '"a string"',
        "{not json",
        '{"id": "x", "func": "tests.testapp.jobs:noop", "args": [NaN]}',
        '{"id": "x", "args": [Infinity]}',
        "[" * 100_000 + "]" * 100_000,
        b"\xff\xfe not utf-8",
        json.dumps({"id": "x", "func": "tests.testapp.jobs:noop", "args": ["a" * 3_000_000]}),
    ],
)
def test_add_job_refuses_bodies_that_are_not_a_job(admin: Client, raw: str | bytes) -> None:
    assert_error(call(admin, "POST", "jobs", raw), 400)
    assert not Task.objects.exists()


def test_add_job_takes_json_whatever_its_content_type(admin: Client) -> None:
    # Flask-APScheduler reads the body with get_json(force=True).
    response = admin.post(PREFIX + "jobs", json.dumps(JOB), content_type="text/plain")
    assert response.status_code == 200, response.content


def test_add_job_needs_the_add_permission(anonymous: Client) -> None:
    assert_denied(call(anonymous, "POST", "jobs", JOB), anonymous=True)
    assert_denied(
        call(client_for(user("changer", "view_task", "change_task")), "POST", "jobs", JOB)
    )
    assert not Task.objects.exists()


def test_a_job_that_would_run_at_once_needs_the_run_permission() -> None:
    adder = client_for(user("adder", "add_task", "view_task"))
    due_now = {"id": "now", "func": "tests.testapp.jobs:noop"}  # date trigger: runs now
    body = assert_error(call(adder, "POST", "jobs", due_now), 403, "trigger_config")
    assert "run" in body["errors"]["trigger_config"][0]
    assert call(adder, "POST", "jobs", JOB).status_code == 200
    assert not Task.objects.filter(name="now").exists()


# -- one job ---------------------------------------------------------------------------------


def test_get_job_and_404(viewer: Client) -> None:
    make_task("path/with/slashes")
    response = call(viewer, "GET", "jobs/path/with/slashes")
    assert response.status_code == 200
    assert response.json()["id"] == "path/with/slashes"
    assert response["ETag"]
    body = assert_error(call(viewer, "GET", "jobs/missing"), 404)
    assert body["error_message"] == "Job missing not found"
    assert_error(call(viewer, "GET", "jobs/nul%00byte"), 404)


def test_get_job_needs_a_login(anonymous: Client) -> None:
    make_task("job")
    assert_denied(call(anonymous, "GET", "jobs/job"), anonymous=True)


def test_patch_merges_trigger_fields_like_modify_job(admin: Client) -> None:
    make_task("job", trigger_config={"minutes": 5, "jitter": 2})
    response = call(admin, "PATCH", "jobs/job", {"minutes": 10, "timeout": 30})
    assert response.status_code == 200, response.content
    task = Task.objects.get(name="job")
    assert task.trigger_config == {"minutes": 10, "jitter": 2}
    assert task.timeout == 30
    # With a trigger, the trigger's fields replace the schedule.
    call(admin, "PATCH", "jobs/job", {"trigger": "cron", "crontab": "0 4 * * *"})
    task.refresh_from_db()
    assert (task.trigger, task.trigger_config) == ("cron", {"crontab": "0 4 * * *"})


def test_patch_refuses_bad_input_and_keeps_the_row(admin: Client) -> None:
    make_task("job")
    assert_error(call(admin, "PATCH", "jobs/job", {"minutes": 0}), 400, "trigger_config")
    assert_error(call(admin, "PATCH", "jobs/job", {"id": "renamed"}), 400, "id")
    assert_error(call(admin, "PATCH", "jobs/job", [1]), 400)
    assert_error(call(admin, "PATCH", "jobs/job", {"kwargs": {"\x00": 1}}), 400, "kwargs")
    assert Task.objects.get(name="job").trigger_config == {"minutes": 5}
    assert_error(call(admin, "PATCH", "jobs/missing", {"minutes": 1}), 404)


def test_patch_with_a_stale_etag_is_412(admin: Client) -> None:
    make_task("job")
    etag = call(admin, "GET", "jobs/job")["ETag"]
    first = call(admin, "PATCH", "jobs/job", {"minutes": 7}, HTTP_IF_MATCH=etag)
    assert first.status_code == 200
    assert first["ETag"] != etag
    # A second client that read the same version is refused, not silently overwriting.
    assert_error(call(admin, "PATCH", "jobs/job", {"minutes": 9}, HTTP_IF_MATCH=etag), 412)
    assert Task.objects.get(name="job").trigger_config == {"minutes": 7}
    current = call(admin, "GET", "jobs/job")["ETag"]
    # If-Match compares strongly: the weak form of the current tag does not match.
    assert_error(
        call(admin, "PATCH", "jobs/job", {"minutes": 9}, HTTP_IF_MATCH=f"W/{current}"), 412
    )
    assert call(admin, "PATCH", "jobs/job", {"minutes": 9}, HTTP_IF_MATCH="*").status_code == 200


def make_declared(source: str, ref: str) -> Task:
    """A task declared in code or settings, owning its callable and schedule."""
    return make_task(
        "declared",
        source=source,
        source_ref=ref,
        declared_fields=["func", "args", "kwargs", "trigger", "trigger_config"],
    )


def test_patch_of_a_declared_field_is_409_and_the_rest_is_allowed(admin: Client) -> None:
    make_declared(Task.Source.DECORATOR, "tests.testapp.jobs:noop")
    assert_error(call(admin, "PATCH", "jobs/declared", {"minutes": 1}), 409, "trigger_config")
    assert_error(call(admin, "PATCH", "jobs/declared", {"func": "x:y"}), 409, "func")
    assert call(admin, "PATCH", "jobs/declared", {"timeout": 5}).status_code == 200
    assert call(admin, "POST", "jobs/declared/pause").status_code == 200


def test_patch_needs_the_change_permission(viewer: Client) -> None:
    make_task("job")
    assert_denied(call(viewer, "PATCH", "jobs/job", {"minutes": 1}))
    assert Task.objects.get(name="job").trigger_config == {"minutes": 5}


def test_delete_job(admin: Client, viewer: Client) -> None:
    task = make_task("job")
    TaskRun.objects.create(task=task, status=TaskRun.Status.SUCCESSFUL)
    assert_denied(call(viewer, "DELETE", "jobs/job"))
    assert_error(call(admin, "DELETE", "jobs/job", HTTP_IF_MATCH='"stale"'), 412)
    assert call(admin, "DELETE", "jobs/job").status_code == 204
    assert not Task.objects.exists()
    assert not TaskRun.objects.exists()
    assert_error(call(admin, "DELETE", "jobs/job"), 404)


def test_pause_and_resume_job(admin: Client, viewer: Client) -> None:
    make_task("job")
    assert_denied(call(viewer, "POST", "jobs/job/pause"))
    paused = call(admin, "POST", "jobs/job/pause")
    assert paused.status_code == 200
    assert paused.json()["active"] is False
    assert paused.json()["next_run_time"] is None
    resumed = call(admin, "POST", "jobs/job/resume")
    assert resumed.status_code == 200
    assert resumed.json()["active"] is True
    assert resumed.json()["next_run_time"] is not None
    assert_error(call(admin, "POST", "jobs/missing/pause"), 404)
    assert_error(call(admin, "POST", "jobs/missing/resume"), 404)


def test_pause_job_with_a_reason_says_who_and_why(admin: Client) -> None:
    task = make_task("job")
    paused = call(admin, "POST", "jobs/job/pause", {"reason": "deploy freeze"})
    assert paused.status_code == 200
    assert paused.json()["inactive_reason"] == "deploy freeze"
    task.refresh_from_db()
    assert (task.active, task.inactive_reason, task.paused_by) == (False, "deploy freeze", "admin")
    assert task.paused_at is not None
    for body in ({"reason": "x" * 256}, {"reason": "a\x00b"}, {"reason": 5}, {"why": "x"}, [1]):
        assert_error(call(admin, "POST", "jobs/job/pause", body), 400, "reason")
    task.refresh_from_db()
    assert task.inactive_reason == "deploy freeze"


def test_resume_that_would_run_at_once_needs_the_run_permission() -> None:
    make_task("job", trigger="interval", trigger_config={"seconds": 5}, active=False)
    changer = client_for(user("changer", "view_task", "change_task"))
    assert_error(call(changer, "POST", "jobs/job/resume"), 403)
    assert Task.objects.get(name="job").active is False


def test_run_job_queues_a_run_and_points_at_it(admin: Client, viewer: Client) -> None:
    make_task("job")
    assert_denied(call(viewer, "POST", "jobs/job/run"))
    response = call(admin, "POST", "jobs/job/run")
    assert response.status_code == 200
    assert response.json()["id"] == "job"
    run = TaskRun.objects.get()
    assert (run.status, run.origin) == (TaskRun.Status.QUEUED, TaskRun.Origin.API)
    assert response["Location"].endswith(f"{PREFIX}runs/{run.pk}")
    assert call(admin, "GET", response["Location"].split(PREFIX, 1)[1]).json()["id"] == run.pk
    assert_error(call(admin, "POST", "jobs/missing/run"), 404)


# -- runs ------------------------------------------------------------------------------------


def make_runs(task: Task, count: int, **fields: Any) -> list[TaskRun]:
    start = timezone.now() - timedelta(hours=1)
    return [
        TaskRun.objects.create(task=task, enqueued_at=start + timedelta(seconds=i), **fields)
        for i in range(count)
    ]


def test_job_runs_are_paginated_newest_first(viewer: Client) -> None:
    task = make_task("job")
    runs = make_runs(task, 7, status=TaskRun.Status.SUCCESSFUL)
    page = call(viewer, "GET", "jobs/job/runs?limit=3").json()
    assert [r["id"] for r in page["results"]] == [r.pk for r in runs[::-1][:3]]
    assert page["results"][0]["job_id"] == "job"
    seen = [r["id"] for r in page["results"]]
    while page["next"]:
        page = viewer.get(page["next"]).json()
        seen += [r["id"] for r in page["results"]]
    assert seen == [r.pk for r in runs[::-1]]


def test_runs_filters(viewer: Client) -> None:
    task = make_task("job")
    ok = make_runs(task, 2, status=TaskRun.Status.SUCCESSFUL)
    failed = make_runs(task, 1, status=TaskRun.Status.FAILED)
    other = make_runs(make_task("other"), 1, status=TaskRun.Status.FAILED)
    ids = lambda path: [r["id"] for r in call(viewer, "GET", path).json()["results"]]  # noqa: E731
    assert set(ids("jobs/job/runs?status=FAILED")) == {failed[0].pk}
    assert set(ids("runs?status=FAILED")) == {failed[0].pk, other[0].pk}
    assert set(ids("runs?status=FAILED&status=SUCCESSFUL&job=job")) == {r.pk for r in ok + failed}
    since = (timezone.now() + timedelta(minutes=1)).isoformat()
    assert ids(f"runs?since={since.replace('+', '%2B')}") == []
    assert len(ids("runs?since=2000-01-01T00:00:00")) == 4
    assert_error(call(viewer, "GET", "runs?status=BOGUS"), 400, "status")
    assert_error(call(viewer, "GET", "runs?since=yesterday"), 400, "since")
    assert_error(call(viewer, "GET", "runs?since=2026-13-45T00:00"), 400, "since")
    assert_error(call(viewer, "GET", "jobs/missing/runs"), 404)
    assert_error(call(viewer, "GET", "runs?job=missing"), 404)
    assert_error(call(viewer, "GET", "runs?cursor=garbage"), 400, "cursor")
    assert_error(call(viewer, "GET", "runs?limit=0"), 400, "limit")
    assert_error(call(viewer, "GET", "runs?limit=1001"), 400, "limit")
    assert_error(call(viewer, "GET", "runs?limit=ten"), 400, "limit")
    assert_error(call(viewer, "GET", "runs?limit=%C2%B2"), 400, "limit")  # a superscript 2
    assert_error(call(viewer, "GET", "runs?limit=" + "9" * 5000), 400, "limit")


def test_runs_need_a_task_or_run_history_permission(anonymous: Client) -> None:
    task = make_task("job")
    run = make_runs(task, 1)[0]
    # As in the admin, where a task's page lists its recent runs.
    tasks_only = client_for(user("tasks-only", "view_task"))
    runs_only = client_for(user("runs-only", "view_taskrun"))
    nobody = client_for(user("nobody"))
    for path in ("runs", "jobs/job/runs", f"runs/{run.pk}"):
        assert call(tasks_only, "GET", path).status_code == 200
        assert call(runs_only, "GET", path).status_code == 200
        assert_denied(call(nobody, "GET", path))
        assert_denied(call(anonymous, "GET", path), anonymous=True)


def test_one_run(viewer: Client) -> None:
    run = make_runs(make_task("job"), 1, status=TaskRun.Status.SUCCESSFUL)[0]
    body = call(viewer, "GET", f"runs/{run.pk}").json()
    assert body["id"] == run.pk
    assert body["status"] == "SUCCESSFUL"
    assert body["job_id"] == "job"
    assert_error(call(viewer, "GET", "runs/999999"), 404)
    assert_error(call(viewer, "GET", f"runs/{10**30}"), 404)


def test_cancel_a_queued_run(admin: Client, viewer: Client) -> None:
    task = make_task("job")
    queued = task.run_now()
    assert_denied(call(viewer, "POST", f"runs/{queued.pk}/cancel"))
    response = call(admin, "POST", f"runs/{queued.pk}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "CANCELLED"
    assert_error(call(admin, "POST", f"runs/{queued.pk}/cancel"), 409)
    assert_error(call(admin, "POST", "runs/999999/cancel"), 404)


# -- authentication ---------------------------------------------------------------------------


def test_basic_and_token_authentication() -> None:
    from rest_framework.authtoken.models import Token

    account = user("script", "view_task")
    basic = base64.b64encode(b"script:pw").decode()
    assert call(Client(), "GET", "jobs", HTTP_AUTHORIZATION=f"Basic {basic}").status_code == 200
    wrong = base64.b64encode(b"script:nope").decode()
    assert_denied(
        call(Client(), "GET", "jobs", HTTP_AUTHORIZATION=f"Basic {wrong}"), anonymous=True
    )
    token = Token.objects.create(user=account)
    assert call(Client(), "GET", "jobs", HTTP_AUTHORIZATION=f"Token {token.key}").status_code == 200


def test_session_requests_need_the_csrf_token() -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user("browser", *ALL))
    assert call(client, "GET", "jobs").status_code == 200  # safe methods need none
    assert_denied(call(client, "POST", "jobs", JOB))
    assert not Task.objects.exists()


def test_schema_is_served(anonymous: Client) -> None:
    schema = call(anonymous, "GET", "openapi.json").json()
    assert schema["openapi"].startswith("3.")
    assert "/jobs/{job_id}" in schema["paths"]


def test_throttles_from_settings_answer_429_in_the_api_shape(
    viewer: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.core.cache import cache
    from rest_framework.throttling import ScopedRateThrottle

    rates = {"django_tasks_sched": "2/minute"}
    throttled = {
        "DEFAULT_THROTTLE_CLASSES": ["rest_framework.throttling.ScopedRateThrottle"],
        "DEFAULT_THROTTLE_RATES": rates,
    }
    # REST framework copies the rates into the class when it is defined (settings.py order).
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", rates)
    cache.clear()
    with override_settings(REST_FRAMEWORK=throttled):
        assert call(viewer, "GET", "jobs").status_code == 200
        assert call(viewer, "GET", "jobs").status_code == 200
        body = assert_error(call(viewer, "GET", "jobs"), 429)
        assert "throttled" in body["error_message"]
    cache.clear()
    assert call(viewer, "GET", "jobs").status_code == 200  # off by default


def test_the_browsable_api_renders_for_a_browser(viewer: Client) -> None:
    make_task("job")
    response = viewer.get(PREFIX + "jobs/job", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert "text/html" in response["Content-Type"]


def test_unknown_paths_under_the_prefix_answer_json_404(viewer: Client) -> None:
    for path in ("nope", "runs/abc", "jobs/job/unknown-action/x/"):
        body = assert_error(call(viewer, "GET", path), 404)
        assert "No such endpoint" in body["error_message"] or "not found" in body["error_message"]


def test_a_method_an_endpoint_lacks_is_405(admin: Client) -> None:
    make_task("job")
    assert_error(call(admin, "PUT", "jobs/job", JOB), 405)
    assert_error(call(admin, "GET", "pause"), 405)
    assert_error(call(admin, "DELETE", "jobs"), 405)


def test_a_declared_job_read_can_be_sent_back_unchanged(admin: Client) -> None:
    make_declared(Task.Source.SETTINGS, "TASKS_SCHED['TASKS'][0]")
    job = call(admin, "GET", "jobs/declared").json()
    response = call(admin, "PATCH", "jobs/declared", job)
    assert response.status_code == 200, response.content
    assert Task.objects.get(name="declared").description == ""  # name == id sets none


def test_a_paused_and_a_finished_job_keep_their_state_when_sent_back(admin: Client) -> None:
    make_task("paused", active=False)
    job = call(admin, "GET", "jobs/paused").json()
    assert call(admin, "PATCH", "jobs/paused", job).status_code == 200
    assert Task.objects.get(name="paused").active is False
    # A date task that has fired: active, but next_run_time null.
    make_task("fired", trigger="date", trigger_config={"run_date": "2020-01-01T00:00:00+00:00"})
    job = call(admin, "GET", "jobs/fired").json()
    assert job["next_run_time"] is None
    assert call(admin, "PATCH", "jobs/fired", job).status_code == 200
    assert Task.objects.get(name="fired").active is True


def test_flask_apschedulers_trigger_dict_form_is_accepted(admin: Client) -> None:
    body = {
        "id": "old-style",
        "func": "tests.testapp.jobs:noop",
        "trigger": {"type": "cron", "hour": "3"},
    }
    response = call(admin, "POST", "jobs", body)
    assert response.status_code == 200, response.content
    task = Task.objects.get(name="old-style")
    assert (task.trigger, task.trigger_config) == ("cron", {"hour": "3"})


def test_nul_in_credentials_is_refused_not_a_database_error() -> None:
    user("root", *ALL)
    basic = base64.b64encode(b"ro\x00ot:pw").decode()
    assert_denied(
        call(Client(), "GET", "jobs", HTTP_AUTHORIZATION=f"Basic {basic}"), anonymous=True
    )
    assert_denied(
        call(Client(), "GET", "jobs", HTTP_AUTHORIZATION="Token abc\x00def"), anonymous=True
    )
    client = Client()
    client.cookies["sessionid"] = "abcdefgh\x00ijk"
    assert_denied(call(client, "GET", "jobs"), anonymous=True)


def test_the_schema_is_public_and_errors_keep_the_shape() -> None:
    wrong = base64.b64encode(b"nobody:wrong").decode()
    response = call(Client(), "GET", "openapi.json", HTTP_AUTHORIZATION=f"Basic {wrong}")
    assert response.status_code == 200
    assert_error(call(Client(), "POST", "openapi.json"), 405)
