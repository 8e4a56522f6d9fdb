"""The audit trail: every path that changes a task records when, who, through what, old and new.

One test per path (the admin through the test client, ``save()``, the facade, the REST API,
``synctasks``, the migration operations, the queryset's bulk writes, a real scheduler process
switching a task off), then what is not recorded, rollback, deletion, pruning, the admin pages,
capped values and the cost of a save.
"""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.db import connection, transaction
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_tasks_sched import audit, scheduler
from django_tasks_sched.models import Task, TaskChange, TaskRun
from django_tasks_sched.retention import prune_runs
from tests.factories import make_task
from tests.processes import SchedulerProcess, wait_until
from tests.test_admin import form_data, post_action

Via, Action = TaskChange.Via, TaskChange.Action


def changes(name: str = "job", **filters: Any) -> list[TaskChange]:
    return list(TaskChange.objects.filter(task_name=name, **filters).order_by("at", "id"))


def last(name: str = "job") -> TaskChange:
    found = changes(name)
    assert found, f"no change recorded for {name!r}"
    return found[-1]


@pytest.fixture
def superuser() -> User:
    return User.objects.create_superuser("root", "root@example.com", "pw")


@pytest.fixture
def admin(superuser: User) -> Client:
    client = Client()
    client.force_login(superuser)
    return client


# -- each path ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_save_in_code_records_created_then_only_changed_fields() -> None:
    before = timezone.now()
    task = make_task(description="first")
    created = last()
    assert (created.action, created.via, created.who, created.task_id) == (
        Action.CREATED,
        Via.CODE,
        "",
        task.pk,
    )
    assert created.at >= before
    assert created.fields["description"] == [None, "first"]
    assert created.fields["trigger_config"] == [None, {"minutes": 5}]
    assert "max_instances" not in created.fields  # the default: not repeated

    task.description = "second"
    task.max_instances = 3
    task.save()
    changed = last()
    assert (changed.action, changed.via) == (Action.CHANGED, Via.CODE)
    assert changed.fields == {"description": ["first", "second"], "max_instances": [1, 3]}

    task.save()  # nothing changed: nothing recorded
    assert len(changes()) == 2


@pytest.mark.django_db
def test_admin_edit_delete_and_actions_record_the_user(admin: Client) -> None:
    response = admin.post(reverse("admin:django_tasks_sched_task_add"), form_data(name="job"))
    assert response.status_code == 302, response.content
    task = Task.objects.get(name="job")
    assert (last().action, last().via, last().who) == (Action.CREATED, Via.ADMIN, "root")

    url = reverse("admin:django_tasks_sched_task_change", args=[task.pk])
    response = admin.post(url, form_data(name="job", max_instances="4", priority="0"))
    assert response.status_code == 302, response.content
    edit = last()
    assert (edit.action, edit.via, edit.who) == (Action.CHANGED, Via.ADMIN, "root")
    assert edit.fields == {"max_instances": [1, 4]}

    post_action(admin, "deactivate_tasks", [task], reason="maintenance")
    paused = last()
    assert (paused.via, paused.who) == (Via.ADMIN, "root")
    assert paused.fields["active"] == [True, False]
    assert paused.fields["inactive_reason"] == ["", "maintenance"]
    assert paused.fields["paused_by"] == ["", "root"]

    post_action(admin, "activate_tasks", [task])
    assert last().fields["active"] == [False, True]

    delete_url = reverse("admin:django_tasks_sched_task_delete", args=[task.pk])
    assert admin.post(delete_url, {"post": "yes"}).status_code == 302
    deleted = last()
    assert (deleted.action, deleted.via, deleted.who, deleted.task_id) == (
        Action.DELETED,
        Via.ADMIN,
        "root",
        None,
    )
    assert deleted.fields["max_instances"] == [4, None]
    # The deleted task keeps its whole trail, by name.
    assert [c.action for c in changes()] == ["created", "changed", "changed", "changed", "deleted"]
    assert all(c.task_id is None for c in changes())


@pytest.mark.django_db
def test_facade_records_each_method() -> None:
    scheduler.add_job("job", "tests.testapp.jobs:noop", trigger="interval", seconds=30)
    assert (last().action, last().via) == (Action.CREATED, Via.FACADE)
    scheduler.modify_job("job", seconds=60)
    assert last().fields == {"trigger_config": [{"seconds": 30}, {"seconds": 60}]}
    scheduler.pause_job("job", reason="deploy", by="alice")
    assert (last().via, last().who, last().fields["active"]) == (Via.FACADE, "alice", [True, False])
    scheduler.resume_job("job")
    assert last().fields["active"] == [False, True]
    scheduler.remove_job("job")
    assert (last().action, last().via) == (Action.DELETED, Via.FACADE)
    assert {c.via for c in changes()} == {Via.FACADE}


@pytest.mark.django_db
def test_api_records_the_authenticated_user() -> None:
    pytest.importorskip("rest_framework")
    User.objects.create_superuser("api-user", "api@example.com", "pw")
    client = Client()
    client.force_login(User.objects.get(username="api-user"))

    def call(method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body) if body is not None else ""
        return client.generic(method, f"/scheduler/{path}", data, content_type="application/json")

    body = {"id": "job", "func": "tests.testapp.jobs:noop", "trigger": "interval", "seconds": 5}
    assert call("POST", "jobs", body).status_code == 200
    assert (last().action, last().via, last().who) == (Action.CREATED, Via.API, "api-user")
    assert call("PATCH", "jobs/job", {"seconds": 9}).status_code == 200
    assert last().fields == {"trigger_config": [{"seconds": 5}, {"seconds": 9}]}
    assert call("POST", "jobs/job/pause").status_code == 200
    assert (last().via, last().fields["paused_by"]) == (Via.API, ["", "api-user"])
    assert call("DELETE", "jobs/job").status_code == 204
    assert (last().action, last().via, last().who) == (Action.DELETED, Via.API, "api-user")


@pytest.mark.django_db
def test_synctasks_records_created_updated_and_retired() -> None:
    declared = {
        "id": "declared",
        "func": "tests.testapp.jobs:noop",
        "trigger": "interval",
        "seconds": 10,
    }
    conf = {**settings.TASKS_SCHED, "TASKS": [declared]}
    with override_settings(TASKS_SCHED=conf):
        call_command("synctasks", stdout=StringIO())
    assert (last("declared").action, last("declared").via) == (Action.CREATED, Via.SYNCTASKS)
    with override_settings(TASKS_SCHED={**conf, "TASKS": [{**declared, "seconds": 20}]}):
        call_command("synctasks", stdout=StringIO())
    assert last("declared").fields["trigger_config"] == [{"seconds": 10}, {"seconds": 20}]
    with override_settings(TASKS_SCHED={**conf, "TASKS": []}):
        call_command("synctasks", stdout=StringIO())
    retired = last("declared")
    assert (retired.via, retired.fields["active"]) == (Via.SYNCTASKS, [True, False])


@pytest.mark.django_db
def test_bulk_update_switch_off_delete_and_bulk_create() -> None:
    Task.objects.bulk_create(
        [
            Task(
                name=name,
                func="tests.testapp.jobs:noop",
                trigger="interval",
                trigger_config={"minutes": 5},
            )
            for name in ("a", "b")
        ]
    )
    assert [(c.action, c.via, c.task_id is not None) for c in changes("a")] == [
        (Action.CREATED, Via.BULK, True)
    ]
    Task.objects.filter(name__in=["a", "b"]).update(priority=5, next_run_time=None)
    assert last("a").fields == {"priority": [0, 5]}  # next_run_time is bookkeeping
    assert last("b").via == Via.BULK

    from django.db.models import F

    Task.objects.filter(name="a").update(priority=F("priority") + 1)
    assert last("a").fields == {"priority": [5, 6]}

    Task.objects.filter(name="a").switch_off("enough")
    off = last("a")
    assert (off.via, off.fields["active"], off.fields["inactive_reason"]) == (
        Via.BULK,
        [True, False],
        ["", "enough"],
    )
    Task.objects.filter(name__in=["a", "b"]).delete()
    assert (last("a").action, last("b").action) == (Action.DELETED, Action.DELETED)
    assert last("b").fields["priority"] == [5, None]


@pytest.mark.django_db
def test_bulk_create_of_many_tasks_stays_batched() -> None:
    tasks = [
        Task(
            name=f"bulk-{i}",
            func="tests.testapp.jobs:noop",
            trigger="interval",
            trigger_config={"minutes": 5},
        )
        for i in range(1200)
    ]
    with CaptureQueriesContext(connection) as queries:
        Task.objects.bulk_create(tasks, batch_size=600)
    inserts = [q for q in queries.captured_queries if q["sql"].startswith("INSERT")]
    # Batched as the database's parameter limit allows (SQLite: a few dozen rows a
    # statement), the records as the tasks: never one INSERT per row.
    assert len(inserts) < 1200 / 10, len(inserts)
    records = [q for q in inserts if "taskchange" in q["sql"]]
    assert len(records) >= 1200 / audit.BATCH_SIZE
    assert TaskChange.objects.filter(action=Action.CREATED, via=Via.BULK).count() == 1200
    assert not TaskChange.objects.filter(task__isnull=True).exists()


@pytest.mark.django_db
def test_bulk_create_ignoring_conflicts_records_only_new_tasks() -> None:
    make_task("old")
    Task.objects.bulk_create(
        [
            Task(
                name=name,
                func="tests.testapp.jobs:noop",
                trigger="interval",
                trigger_config={"minutes": 5},
            )
            for name in ("old", "new")
        ],
        ignore_conflicts=True,
    )
    assert [c.action for c in changes("old")] == [Action.CREATED]  # from make_task only
    assert changes("old")[0].via == Via.CODE
    assert [c.via for c in changes("new")] == [Via.BULK]


@pytest.mark.django_db(transaction=True)
def test_migration_operations_record_as_migration() -> None:
    with override_settings(INSTALLED_APPS=[*settings.INSTALLED_APPS, "tests.migrating"]):
        try:
            call_command("migrate", "migrating", "0002", verbosity=0)
            tick = changes("migrated-tick")
            assert [(c.action, c.via) for c in tick] == [(Action.CREATED, Via.MIGRATION)]
            assert tick[0].task_id == Task.objects.get(name="migrated-tick").pk
            assert tick[0].fields["args"] == [None, [20, 22]]
            doomed = changes("migrated-doomed")
            assert [(c.action, c.via) for c in doomed] == [
                (Action.CREATED, Via.MIGRATION),
                (Action.DELETED, Via.MIGRATION),
            ]
            assert all(c.task_id is None for c in doomed)
        finally:
            call_command("migrate", "migrating", "zero", verbosity=0)
    TaskChange.objects.all().delete()


@pytest.mark.django_db(transaction=True)
def test_scheduler_switching_a_task_off_after_its_failure_limit(tmp_path: Path) -> None:
    try:
        task = make_task(
            "failing",
            func="tests.testapp.jobs:fail",
            trigger_config={"seconds": 1},
            max_consecutive_failures=2,
        )
        limited = make_task("limited", trigger_config={"seconds": 1}, remaining_runs=2)
        proc = SchedulerProcess(tmp_path / "scheduler.log")
        try:
            proc.wait_ready()
            switched = TaskChange.objects.filter(task__in=[task, limited], via=Via.SCHEDULER)
            wait_until(lambda: switched.count() == 2, 20, proc)
        finally:
            proc.stop()
        off = last("failing")
        assert (off.action, off.via) == (Action.CHANGED, Via.SCHEDULER)
        assert off.fields["active"] == [True, False]
        assert "2 failed runs in a row" in off.fields["inactive_reason"][1]
        used_up = last("limited")
        assert used_up.fields["active"] == [True, False]
        # Counting remaining_runs down is bookkeeping: only the switch-off is recorded.
        assert "remaining_runs" not in used_up.fields
        # The scheduler's bookkeeping (next_run_time, last run, failures) recorded nothing.
        assert [c.via for c in changes("failing")] == [Via.CODE, Via.SCHEDULER]
        assert [c.via for c in changes("limited")] == [Via.CODE, Via.SCHEDULER]
    finally:
        Task.objects.all().delete()
        TaskChange.objects.all().delete()


@pytest.mark.django_db
def test_importcelerybeat_is_recorded_as_a_command() -> None:
    if not getattr(settings, "HAS_CELERY_BEAT", False):
        pytest.skip("django-celery-beat is not installed")
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    every = IntervalSchedule.objects.create(every=10, period="minutes")
    PeriodicTask.objects.create(
        name="beat", task="tests.testapp.jobs.add", args="[1, 2]", interval=every
    )
    call_command("importcelerybeat", stdout=StringIO())
    imported = last("beat")
    assert (imported.action, imported.via) == (Action.CREATED, Via.COMMAND)
    assert imported.fields["args"] == [None, [1, 2]]


# -- what is not recorded, and transactions ----------------------------------------------------


@pytest.mark.django_db
def test_bookkeeping_writes_are_not_recorded() -> None:
    task = make_task()
    count = len(changes())
    task.last_run_status = TaskRun.Status.SUCCESSFUL
    task.last_run_at = timezone.now()
    task.consecutive_failures = 2
    task.save(update_fields=["last_run_status", "last_run_at", "consecutive_failures"])
    Task.objects.filter(pk=task.pk).update(next_run_time=None, last_run_status="FAILED")
    Task.objects.filter(pk=task.pk).update_quietly(remaining_runs=3)
    assert len(changes()) == count


@pytest.mark.django_db
def test_innermost_recording_wins() -> None:
    with audit.recording(Via.COMMAND, "outer"), audit.recording(Via.FACADE, lambda: "inner"):
        make_task()
    assert (last().via, last().who) == (Via.FACADE, "inner")

    def unknown() -> str:
        raise LookupError("no user")

    with audit.recording(Via.API, unknown):  # who cannot be known: still recorded
        Task.objects.filter(name="job").update(priority=1)
    assert (last().via, last().who) == (Via.API, "")


@pytest.mark.django_db
def test_rolled_back_change_leaves_no_record() -> None:
    task = make_task()
    count = len(changes())

    def change_then_fail() -> None:
        with transaction.atomic():
            task.description = "never"
            task.save()
            Task.objects.filter(pk=task.pk).update(priority=9)
            assert len(changes()) == count + 2  # recorded inside the transaction
            raise RuntimeError

    with pytest.raises(RuntimeError):
        change_then_fail()
    assert len(changes()) == count


# -- values ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_huge_values_are_capped_and_marked() -> None:
    task = make_task(func="tests.testapp.jobs:takes_anything", kwargs={"blob": "x" * 1_000_000})
    stored = last().fields["kwargs"][1]
    assert stored[audit.TRUNCATED].startswith('{"blob": "xxx')
    assert len(stored[audit.TRUNCATED]) == audit.VALUE_LIMIT
    assert stored["length"] > 1_000_000
    task.kwargs = {"blob": "y"}
    task.save()
    old, new = last().fields["kwargs"]
    assert audit.TRUNCATED in old
    assert new == {"blob": "y"}
    assert len(json.dumps(last().fields)) < 4 * audit.VALUE_LIMIT


@pytest.mark.django_db
def test_datetimes_are_stored_as_iso_strings() -> None:
    task = make_task()
    when = timezone.now().replace(microsecond=0)
    task.retired_at = when
    task.save(update_fields=["retired_at"])
    assert last().fields == {"retired_at": [None, when.isoformat()]}


@pytest.mark.django_db
def test_a_save_costs_a_bounded_number_of_queries() -> None:
    task = make_task()
    task.description = "edited"
    # Before the audit trail: the UPDATE. Now also one SELECT of the old values and one
    # INSERT of the record (and on SQLite, the write lock taken first: audit.writing).
    with CaptureQueriesContext(connection) as queries:
        task.save()
    statements = [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]
    on_sqlite = connection.vendor == "sqlite"
    assert len(statements) == (4 if on_sqlite else 3)
    assert ("WHERE 1 = 0" in statements[0]) == on_sqlite
    task.last_run_status = "FAILED"
    with CaptureQueriesContext(connection) as queries:
        task.save(update_fields=["last_run_status"])
    assert len(queries.captured_queries) == 1  # bookkeeping: the UPDATE alone


# -- pruning -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_pruning_deletes_records_older_than_the_run_retention() -> None:
    make_task()
    make_task("other")
    old = timezone.now() - timedelta(days=31)
    TaskChange.objects.filter(task_name="job").update(at=old)
    report = prune_runs(batch_size=1)
    assert report.changes == 1
    assert not changes("job")
    assert changes("other")
    assert "1 task change record deleted for its age." in report.lines()
    with override_settings(TASKS_SCHED={**settings.TASKS_SCHED, "RUN_RETENTION_DAYS": None}):
        TaskChange.objects.update(at=old)
        assert prune_runs().changes == 0


# -- the admin ---------------------------------------------------------------------------------


@pytest.fixture
def edited_task() -> Task:
    task = make_task()
    for priority in range(1, 13):
        task.priority = priority
        task.save()
    return task


@pytest.mark.django_db
def test_task_page_shows_the_latest_changes(admin: Client, edited_task: Task) -> None:
    url = reverse("admin:django_tasks_sched_task_change", args=[edited_task.pk])
    page = admin.get(url).content.decode()
    assert "View all changes of this task" in page
    assert "11 → 12" in page.replace("</del> → <ins>", " → ")
    assert page.count("<del>") == 10  # the latest 10 changes, one field each
    all_url = reverse("admin:django_tasks_sched_taskchange_changelist")
    assert f"{all_url}?task__id__exact={edited_task.pk}" in page


@pytest.mark.django_db
def test_change_list_filters_and_is_read_only(admin: Client, edited_task: Task) -> None:
    with audit.recording(Via.API, "bob"):
        make_task("other")
    url = reverse("admin:django_tasks_sched_taskchange_changelist")
    response = admin.get(url, {"via__exact": "api"})
    assert [c.task_name for c in response.context["cl"].result_list] == ["other"]
    response = admin.get(url, {"q": "bob"})
    assert [c.who for c in response.context["cl"].result_list] == ["bob"]
    response = admin.get(url, {"task__id__exact": str(edited_task.pk), "action__exact": "changed"})
    assert len(response.context["cl"].result_list) == 12
    change = last("other")
    page = admin.get(reverse("admin:django_tasks_sched_taskchange_change", args=[change.pk]))
    assert page.status_code == 200
    assert not response.context["has_add_permission"]
    assert admin.get(reverse("admin:django_tasks_sched_taskchange_add")).status_code == 403


# -- what the review found -------------------------------------------------------------------


@pytest.mark.django_db
def test_a_change_another_process_made_first_is_not_recorded_twice() -> None:
    # Two schedulers switching one task off for its failure limit: the second UPDATE matches
    # nothing, and writes no record of a change it did not make.
    task = make_task()
    assert Task.objects.filter(pk=task.pk).switch_off("too many failures") == 1
    assert Task.objects.filter(pk=task.pk).switch_off("too many failures") == 0
    assert [c.fields.get("active") for c in changes()] == [None, [True, False]]
    task.delete()
    assert Task.objects.filter(pk=task.pk).delete()[0] == 0
    assert [c.action for c in changes()][-1:] == [Action.DELETED]
    assert len(changes(action=Action.DELETED)) == 1


@pytest.mark.django_db
def test_a_value_shaped_like_the_cut_marker_is_shown_as_it_is(admin: Client) -> None:
    task = make_task(func="tests.testapp.jobs:takes_anything")
    task.kwargs = {audit.TRUNCATED: 5}
    task.save()
    url = reverse("admin:django_tasks_sched_task_change", args=[task.pk])
    assert admin.get(url).status_code == 200
    listed = admin.get(reverse("admin:django_tasks_sched_taskchange_changelist"))
    assert listed.status_code == 200
    assert audit.truncated({audit.TRUNCATED: 5}) is None
    # The real marker: the value's JSON, cut (a string's JSON starts with its quote).
    assert audit.truncated(audit.storable("x" * 5000)) == (
        ('"' + "x" * 5000)[: audit.VALUE_LIMIT],
        5002,
    )


@pytest.mark.django_db
def test_the_task_page_shows_changes_only_to_who_may_read_the_trail(edited_task: Task) -> None:
    # Old values may hold what was since removed (a secret in kwargs).
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(*Permission.objects.filter(codename__in=["view_task"]))
    client = Client()
    client.force_login(viewer)
    url = reverse("admin:django_tasks_sched_task_change", args=[edited_task.pk])
    assert "View all changes of this task" not in client.get(url).content.decode()
    viewer.user_permissions.add(Permission.objects.get(codename="view_taskchange"))
    client.force_login(User.objects.get(pk=viewer.pk))
    assert "View all changes of this task" in client.get(url).content.decode()
