"""Why didn't it run? ``explain()``, ``manage.py explaintask`` and the admin's "does it fire?"."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from django_tasks_sched.explain import explain
from django_tasks_sched.firing import switch_firing
from django_tasks_sched.models import SchedulerProcess, Task, TaskRun
from tests.factories import make_task
from tests.processes import SchedulerProcess as Proc

pytestmark = pytest.mark.django_db


@pytest.fixture
def alive() -> SchedulerProcess:
    """A scheduler process that says it is alive (its heartbeat row, as runscheduler writes)."""
    return SchedulerProcess.objects.create(worker_id="host:1", hostname="host", pid=1, version="0")


def codes(task: Task, at: datetime | None = None) -> dict[str, bool]:
    return {finding.code: finding.blocking for finding in explain(task, at).findings}


def messages(task: Task, at: datetime | None = None) -> str:
    return "\n".join(finding.message for finding in explain(task, at).findings)


def test_a_healthy_task_fires_and_its_next_fire_is_given(alive: SchedulerProcess) -> None:
    task = make_task()
    answer = explain(task)
    assert not answer.blocked
    assert codes(task) == {"next_fire": False, "last_fire": False}
    assert "Next fire time:" in messages(task)
    assert "It has never fired." in messages(task)
    assert answer.summary() == "Task job fires as scheduled."


def test_paused_by_a_person_says_who_when_and_why(alive: SchedulerProcess) -> None:
    task = make_task()
    task.pause("migrating the warehouse", by="alice")
    assert explain(task).blocked
    assert codes(task)["inactive"] is True
    assert "Paused by alice at " in messages(task)
    assert "migrating the warehouse" in messages(task)


def test_retired_and_out_of_runs(alive: SchedulerProcess) -> None:
    task = make_task(remaining_runs=0, active=False)
    Task.objects.filter(pk=task.pk).update(retired_at=timezone.now())
    task.refresh_from_db()
    assert {"inactive", "retired", "no_runs_left"} <= {
        code for code, blocking in codes(task).items() if blocking
    }


def test_a_row_forced_past_validation_is_explained_not_raised(alive: SchedulerProcess) -> None:
    task = make_task()
    table = connection.ops.quote_name(Task._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET trigger_config = %s WHERE id = %s",
            ['{"seconds": "soon"}', task.pk],
        )
    task.refresh_from_db()
    assert codes(task)["schedule"] is True
    assert "Its schedule is refused" in messages(task)


def test_a_function_the_policy_refuses(alive: SchedulerProcess) -> None:
    task = make_task()
    Task.objects.filter(pk=task.pk).update(func="tests.testapp.jobs:no_such_function")
    task.refresh_from_db()
    assert codes(task)["callable"] is True
    assert "Its function cannot run" in messages(task)


def test_firing_paused_and_no_scheduler_alive() -> None:
    task = make_task()
    assert codes(task)["no_scheduler"] is True
    switch_firing(False, by="ops")
    assert codes(task)["firing_paused"] is True
    assert "Firing is paused in every scheduler process by ops since " in messages(task)


def test_a_date_in_the_past_has_no_fire_time(alive: SchedulerProcess) -> None:
    task = make_task(trigger="date", trigger_config={"run_date": "2099-01-01T00:00:00"})
    Task.objects.filter(pk=task.pk).update(trigger_config={"run_date": "2001-01-01T00:00:00"})
    task.refresh_from_db()
    assert codes(task)["no_fire_time"] is True


@pytest.mark.parametrize(
    ("overlap", "blocking", "text"),
    [
        ("skip", True, "A fire now would not run (overlap skip): Skipped: 1 run(s) already"),
        ("buffer_all", False, "A fire now would wait for a slot (overlap buffer_all)."),
        ("cancel_other", False, "A fire now would cancel the oldest running run"),
    ],
)
def test_what_a_fire_now_would_do_by_the_overlap_policy(
    alive: SchedulerProcess, overlap: str, blocking: bool, text: str
) -> None:
    task = make_task(overlap=overlap)
    TaskRun.objects.create(task=task, status="RUNNING", started_at=timezone.now())
    assert codes(task)["overlap"] is blocking
    assert text in messages(task)


def test_asked_about_a_past_fire_it_says_what_became_of_it(alive: SchedulerProcess) -> None:
    task = make_task(trigger="cron", trigger_config={"crontab": "0 * * * *"})
    fire = datetime(2026, 1, 1, 9, 0, tzinfo=dt_timezone.utc)
    # Created after the fire: the schedule has it anyway (a cron schedule has no start).
    TaskRun.objects.create(
        task=task,
        scheduled_for=fire,
        status="MISSED",
        finished_at=fire,
        error="Not run: 40.0s late, past the misfire grace time of 30s.",
    )
    said = messages(task, fire)
    assert "is not a fire time" not in said
    assert (
        "The run at or before it: 2026-01-01 09:00:00 UTC, Missed - Not run: 40.0s late, "
        "past the misfire grace time of 30s. (run "
    ) in said
    assert "is not a fire time of the schedule; the next one is" in messages(
        task, fire + timedelta(minutes=1)
    )


def test_the_command_prints_the_answer_and_exits_1_when_blocked(
    alive: SchedulerProcess,
) -> None:
    task = make_task("nightly")
    out = StringIO()
    call_command("explaintask", "nightly", stdout=out)
    assert out.getvalue().startswith("Task nightly fires as scheduled.\n  - Next fire time:")
    task.pause("broken upstream", by="bob")
    out = StringIO()
    with pytest.raises(CommandError, match="Task nightly will not fire") as exited:
        call_command("explaintask", "nightly", "--json", stdout=out)
    assert exited.value.returncode == 1
    answer = json.loads(out.getvalue())
    assert answer["fires"] is False
    assert {key: answer["findings"][0][key] for key in ("code", "blocking")} == {
        "code": "inactive",
        "blocking": True,
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nowhere"], "No task named 'nowhere'"),
        (["job", "--at", "yesterday"], "is not an ISO 8601 datetime"),
        (["\x00"], "No task named"),
    ],
)
def test_the_command_refuses_bad_input_clearly(args: list[str], message: str) -> None:
    make_task()
    with pytest.raises(CommandError, match=message):
        call_command("explaintask", *args, stdout=StringIO())


def test_the_admin_page_answers_does_it_fire_even_for_a_broken_row(admin_client: Any) -> None:
    task = make_task()
    Task.objects.filter(pk=task.pk).update(trigger_config={"seconds": "soon"}, active=False)
    response = admin_client.get(f"/admin/django_tasks_sched/task/{task.pk}/change/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Does it fire?" in page
    assert "Task job will not fire:" in page
    assert 'class="dts-blocking"' in page


@pytest.mark.django_db(transaction=True)
def test_with_a_real_scheduler_running_then_stopped(tmp_path: Path) -> None:
    task = make_task()
    proc = Proc(tmp_path / "s.log")
    proc.wait_ready()
    try:
        assert "no_scheduler" not in codes(task)
    finally:
        assert proc.stop() == 0
    assert codes(task)["no_scheduler"] is True  # a graceful stop removes its heartbeat row
