"""The one run path: outcome, value, error, log and summary recorded for every run."""

from __future__ import annotations

import io
import logging

import pytest
from django.core.management import call_command

from django_tasks_sched.execution import execute_run, to_json_value
from django_tasks_sched.models import Task, TaskRun

pytestmark = pytest.mark.django_db


def make_task(func: str, *, args: list | None = None, kwargs: dict | None = None) -> Task:
    return Task.objects.create(
        name=func,
        func=func,
        args=args or [],
        kwargs=kwargs or {},
        trigger=Task.Trigger.INTERVAL,
        trigger_config={"minutes": 5},
    )


def test_successful_run_records_value_timing_and_summary() -> None:
    task = make_task("tests.testapp.jobs:add", args=[2, 3])
    run = task.run_now(inline=True)
    run.refresh_from_db()
    assert run.status == TaskRun.Status.SUCCESSFUL
    assert run.return_value == 5
    assert run.result() == 5
    assert run.started_at is not None
    assert run.finished_at is not None
    assert run.started_at <= run.finished_at
    assert run.worker_id
    task.refresh_from_db()
    assert task.last_run_status == TaskRun.Status.SUCCESSFUL
    assert task.last_run_at == run.started_at
    assert task.consecutive_failures == 0


def test_failing_run_records_error_and_traceback_and_counts_failures() -> None:
    task = make_task("tests.testapp.jobs:fail", kwargs={"message": "disk full"})
    for _ in range(2):
        run = task.run_now(inline=True)
    assert run.status == TaskRun.Status.FAILED
    assert run.error == "RuntimeError: disk full"
    assert "Traceback" in run.traceback
    assert "raise RuntimeError(message)" in run.traceback
    task.refresh_from_db()
    assert task.consecutive_failures == 2
    assert task.last_run_status == TaskRun.Status.FAILED


def test_non_json_return_value_is_stored_as_repr() -> None:
    run = make_task("tests.testapp.jobs:returns_object").run_now(inline=True)
    assert run.status == TaskRun.Status.SUCCESSFUL
    assert str(run.return_value).startswith("<object object at ")
    assert to_json_value({"a": [1, 2]}) == {"a": [1, 2]}


def test_policy_is_rechecked_before_running() -> None:
    task = make_task("tests.testapp.jobs:noop")
    # A row edited past validation (raw UPDATE) to a callable the policy refuses.
    Task.objects.filter(pk=task.pk).update(func="os:system", args=["true"])
    task.refresh_from_db()
    run = task.run_now(inline=True)
    assert run.status == TaskRun.Status.FAILED
    assert "not allowed" in run.error


def test_cancelled_run_is_not_executed() -> None:
    task = make_task("tests.testapp.jobs:noop")
    run = task.run_now()
    assert run.cancel() is True
    run = execute_run(run)
    assert run.status == TaskRun.Status.CANCELLED
    assert run.started_at is None


def test_run_log_output_is_captured(caplog: pytest.LogCaptureFixture) -> None:
    # Records are captured at the levels logging is configured for (runscheduler: INFO).
    caplog.set_level(logging.INFO)
    run = make_task("tests.testapp.jobs:log_lines", args=[3]).run_now(inline=True)
    assert run.status == TaskRun.Status.SUCCESSFUL
    assert run.log.count("line ") == 3
    assert "INFO tests.testapp.jobs: line 0" in run.log


@pytest.mark.parametrize("how", ["run_now", "runtask"])
def test_a_run_asked_for_here_is_never_queued_for_a_scheduler(how: str) -> None:
    # A QUEUED row, however briefly, is one a scheduler process may start before the caller
    # does: the run asked for here must be claimed by this process in its INSERT.
    from django.db.models.signals import post_save

    from django_tasks_sched.execution import default_worker_id

    task = make_task("tests.testapp.jobs:add", args=[1, 2])
    inserted: list[tuple[str, str]] = []

    def seen(sender: object, instance: TaskRun, created: bool, **kwargs: object) -> None:
        if created:
            inserted.append((instance.status, instance.worker_id))

    post_save.connect(seen, sender=TaskRun, dispatch_uid="test-created")
    try:
        if how == "run_now":
            task.run_now(inline=True)
        else:
            call_command("runtask", task.name, stdout=io.StringIO())
    finally:
        post_save.disconnect(dispatch_uid="test-created", sender=TaskRun)
    assert inserted == [(TaskRun.Status.RUNNING, default_worker_id())]
    assert TaskRun.objects.get().status == TaskRun.Status.SUCCESSFUL


def test_runtask_command_prints_outcome_and_exits_nonzero_on_failure() -> None:
    make_task("tests.testapp.jobs:add", args=[20, 22])
    out = io.StringIO()
    call_command("runtask", "tests.testapp.jobs:add", stdout=out)
    assert "SUCCESSFUL" in out.getvalue()
    assert "42" in out.getvalue()
    assert TaskRun.objects.get().origin == TaskRun.Origin.CLI

    make_task("tests.testapp.jobs:fail")
    err = io.StringIO()
    with pytest.raises(SystemExit) as exc:
        call_command("runtask", "tests.testapp.jobs:fail", stdout=io.StringIO(), stderr=err)
    assert exc.value.code == 1
    assert "RuntimeError: boom" in err.getvalue()


def test_runtask_says_when_it_queued_a_retry_for_the_scheduler() -> None:
    task = make_task("tests.testapp.jobs:fail")
    Task.objects.filter(pk=task.pk).update(max_retries=2, retry_delay=30)
    out = io.StringIO()
    with pytest.raises(SystemExit):
        call_command("runtask", task.name, stdout=out, stderr=io.StringIO())
    retry = TaskRun.objects.get(status=TaskRun.Status.QUEUED)
    assert retry.attempt == 2
    assert f"Retry {retry.pk} (attempt 2) queued for a scheduler process, not before " in (
        out.getvalue()
    )


def test_runtask_without_retries_says_nothing_of_one() -> None:
    make_task("tests.testapp.jobs:fail")
    out = io.StringIO()
    with pytest.raises(SystemExit):
        call_command("runtask", "tests.testapp.jobs:fail", stdout=out, stderr=io.StringIO())
    assert "Retry" not in out.getvalue()


def test_a_late_outcome_never_overwrites_a_final_status() -> None:
    # The watchdog ended the run TIMED_OUT while its thread was still going; the thread's
    # outcome, even one the database refuses, must leave that record as it is.
    from django.utils import timezone

    from django_tasks_sched.execution import Outcome
    from django_tasks_sched.lifecycle import KEEP, finish_or_fail

    task = make_task("tests.testapp.jobs:noop")
    now = timezone.now()
    run = TaskRun.objects.create(task=task, status=TaskRun.Status.TIMED_OUT, started_at=now)
    outcome = Outcome(str(TaskRun.Status.SUCCESSFUL), now, now, return_value=1)
    for name in ("status", "started_at", "finished_at", "return_value"):
        setattr(run, name, getattr(outcome, name))
    finish_or_fail((run, KEEP))
    run.refresh_from_db()
    assert run.status == TaskRun.Status.TIMED_OUT
    assert run.return_value is None


@pytest.mark.parametrize("stored", [TaskRun.Status.RUNNING, TaskRun.Status.TIMED_OUT])
def test_an_outcome_the_database_refuses_ends_the_run_failed_through_the_guard(
    monkeypatch: pytest.MonkeyPatch, stored: str
) -> None:
    from django.db import DataError
    from django.utils import timezone

    from django_tasks_sched import lifecycle

    def refuse(finished: object) -> None:
        raise DataError("value refused")

    monkeypatch.setattr(lifecycle, "finish", refuse)
    task = make_task("tests.testapp.jobs:noop")
    Task.objects.filter(pk=task.pk).update(max_retries=1)
    now = timezone.now()
    run = TaskRun.objects.create(task=task, status=stored, started_at=now)
    run.status = TaskRun.Status.SUCCESSFUL
    lifecycle.finish_or_fail((run, lifecycle.KEEP))
    run.refresh_from_db()
    if stored == TaskRun.Status.TIMED_OUT:
        # Another verb ended it first: that record stands, and no second retry is queued.
        assert run.status == TaskRun.Status.TIMED_OUT
        assert not TaskRun.objects.filter(status=TaskRun.Status.QUEUED).exists()
    else:
        assert run.status == TaskRun.Status.FAILED
        assert run.error == "Could not record the outcome: DataError: value refused"
        assert TaskRun.objects.get(status=TaskRun.Status.QUEUED).attempt == 2


def test_inline_runs_of_processes_that_died_are_recovered() -> None:
    import subprocess
    import sys

    from django_tasks_sched.execution import default_worker_id, process_scope
    from django_tasks_sched.service.housekeeping import recover_orphaned_runs

    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    here = process_scope()
    task = make_task("tests.testapp.jobs:noop")

    def running(worker_id: str) -> TaskRun:
        return TaskRun.objects.create(task=task, status=TaskRun.Status.RUNNING, worker_id=worker_id)

    dead = running(f"inline:{here}:{finished.stdout.strip()}")
    alive = running(default_worker_id())
    elsewhere = running("inline:another-host:0:1")
    other_namespace = running(f"inline:{here}1:{finished.stdout.strip()}")
    forged = running(f"inline:{here}:{'9' * 30}")
    assert recover_orphaned_runs(30, "scheduler:me") == 1
    dead.refresh_from_db()
    assert dead.status == TaskRun.Status.INTERRUPTED
    assert "inline" in dead.error
    left = {alive.pk, elsewhere.pk, other_namespace.pk, forged.pk}
    assert set(TaskRun.objects.running().values_list("pk", flat=True)) == left


def test_a_run_whose_task_was_deleted_while_it_ran_is_dropped_quietly() -> None:
    from django.utils import timezone

    from django_tasks_sched.lifecycle import KEEP, finish

    task = make_task("tests.testapp.jobs:noop")
    Task.objects.filter(pk=task.pk).update(max_retries=1)
    gone = TaskRun.objects.create(task=task, status=TaskRun.Status.RUNNING)
    other = make_task("tests.testapp.jobs:fail")
    Task.objects.filter(pk=other.pk).update(max_retries=1)
    failed = TaskRun.objects.create(task=other, status=TaskRun.Status.RUNNING)
    Task.objects.filter(pk=task.pk).delete()  # and its runs with it
    now = timezone.now()
    gone.status, gone.started_at, gone.finished_at = TaskRun.Status.SUCCESSFUL, now, now
    failed.status, failed.started_at, failed.finished_at = TaskRun.Status.FAILED, now, now
    finish([(gone, KEEP), (failed, KEEP)])
    # The other run of the batch is recorded and followed up (its retry queued).
    failed.refresh_from_db()
    assert failed.status == TaskRun.Status.FAILED
    assert TaskRun.objects.get(status=TaskRun.Status.QUEUED).attempt == 2
