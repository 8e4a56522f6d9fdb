"""runscheduler as a real process: it fires, follows every kind of change, and stops cleanly."""

from __future__ import annotations

import signal
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from django_tasks_sched.models import SchedulerProcess, Task, TaskRun
from django_tasks_sched.service.runner import SWITCH_INTERVAL
from tests.history import dropped_by_the_scheduler, fires_of_a_twin
from tests.processes import SchedulerProcess as Proc
from tests.processes import manage, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def every_second(name: str, func: str = "tests.testapp.jobs:noop", **fields: object) -> Task:
    return Task.objects.create(
        name=name, func=func, trigger="interval", trigger_config={"seconds": 1}, **fields
    )


def runs(task: Task, **filters: object) -> int:
    return TaskRun.objects.filter(task=task, **filters).count()


def test_task_created_from_another_process_fires_and_is_recorded(scheduler: Proc) -> None:
    task = every_second("tick", func="tests.testapp.jobs:add", args=[1, 2])
    wait_until(lambda: runs(task, status="SUCCESSFUL") >= 2, 10, scheduler)
    run = TaskRun.objects.filter(task=task, status="SUCCESSFUL").first()
    assert run is not None
    assert run.return_value == 3
    assert run.origin == TaskRun.Origin.SCHEDULE
    assert run.scheduled_for is not None
    assert run.worker_id.startswith("scheduler:")
    task.refresh_from_db()
    assert task.last_run_status == "SUCCESSFUL"
    assert task.next_run_time is not None


def test_a_scheduler_hands_the_interpreter_round_every_half_millisecond(scheduler: Proc) -> None:
    # Not Python's 5 ms: a thread running a long pass would hold the firing threads up.
    task = every_second("switch", func="tests.testapp.jobs:switch_interval")
    wait_until(lambda: runs(task, status="SUCCESSFUL") >= 1, 10, scheduler)
    values = set(
        TaskRun.objects.filter(task=task, status="SUCCESSFUL").values_list(
            "return_value", flat=True
        )
    )
    assert values == {SWITCH_INTERVAL}
    assert SWITCH_INTERVAL < 0.005  # Python's default


def test_queryset_update_deactivation_stops_fires(scheduler: Proc) -> None:
    task, twin = every_second("tick"), every_second("twin")
    wait_until(lambda: runs(task) >= 1, 10, scheduler)
    Task.objects.filter(pk=task.pk).update(active=False)
    dropped_by_the_scheduler(task, scheduler)
    settled = runs(task)
    fires_of_a_twin(twin, scheduler)
    assert runs(task) == settled


def test_queryset_update_reactivation_and_edit_take_effect(scheduler: Proc) -> None:
    task, twin = every_second("tick", active=False), every_second("twin")
    fires_of_a_twin(twin, scheduler)
    assert runs(task) == 0
    Task.objects.filter(pk=task.pk).update(active=True)
    wait_until(lambda: runs(task) >= 1, 5, scheduler)


def test_deleted_task_stops_and_scheduler_survives(scheduler: Proc) -> None:
    task = every_second("doomed")
    wait_until(lambda: runs(task) >= 1, 10, scheduler)
    Task.objects.filter(pk=task.pk).delete()
    other = every_second("survivor")
    wait_until(lambda: runs(other) >= 1, 10, scheduler)
    assert "Traceback" not in scheduler.output()


def test_run_now_from_another_process_is_started_fast(scheduler: Proc) -> None:
    task = Task.objects.create(
        name="manual",
        func="tests.testapp.jobs:greet",
        args=["Ada"],
        trigger="date",
        trigger_config={"run_date": "2099-01-01T00:00:00"},
    )
    queued_at = time.monotonic()
    run = task.run_now()
    run.wait(timeout=5)
    assert run.status == TaskRun.Status.SUCCESSFUL
    assert run.result() == "Hello, Ada!"
    assert time.monotonic() - queued_at < 3
    assert run.worker_id.startswith("scheduler:")


def test_failing_task_is_recorded_and_scheduler_keeps_going(scheduler: Proc) -> None:
    bad = every_second("bad", func="tests.testapp.jobs:fail")
    good = every_second("good")
    wait_until(lambda: runs(bad, status="FAILED") >= 2, 10, scheduler)
    wait_until(lambda: runs(good, status="SUCCESSFUL") >= 2, 10, scheduler)
    failed = TaskRun.objects.filter(task=bad, status="FAILED").first()
    assert failed is not None
    assert failed.error == "RuntimeError: boom"
    assert "Traceback" in failed.traceback


def test_invalid_row_is_refused_without_stopping_the_scheduler(scheduler: Proc) -> None:
    broken = every_second("broken")
    # Past validation, as raw SQL or a careless migration could.
    Task.objects.filter(pk=broken.pk).update(trigger_config={"seconds": "soon"})
    good = every_second("good")
    wait_until(lambda: runs(good) >= 1, 10, scheduler)
    wait_until(lambda: "is not scheduled" in scheduler.output(), 5, scheduler)
    # Recorded in its history as well, once, however often the scheduler looks at it.
    refusal = wait_until(lambda: broken.runs.filter(status="FAILED").first(), 5, scheduler)
    assert "Not scheduled: " in refusal.error
    assert refusal.error.endswith("Nothing fires until the task is corrected.")


def test_a_refused_row_is_recorded_once_by_many_schedulers_and_again_after_each_edit(
    tmp_path: Path,
) -> None:
    # Each process holds every task (not a part of them), so both meet the broken row.
    fast = {"RECONCILE_INTERVAL": 0.5, "SHARE_WINDOW": False}
    procs = [Proc(tmp_path / f"s{i}.log", "--log-level", "DEBUG", settings=fast) for i in range(2)]
    for proc in procs:
        proc.wait_ready()
    broken = every_second("broken")
    Task.objects.filter(pk=broken.pk).update(trigger_config={"seconds": "soon"})
    wait_until(lambda: runs(broken, status="FAILED") == 1, 10, procs[0])
    # Both processes refuse it on every full pass (at DEBUG after the first); the record
    # stays one, and each process logs the error once, not on every pass.
    refused = f"Task 'broken' (id {broken.pk}) is not scheduled"
    again = f"DEBUG django_tasks_sched.service.reconcile: {refused}"
    wait_until(lambda: all(p.output().count(again) >= 2 for p in procs), 10, procs[0])
    assert runs(broken) == 1
    error = f"ERROR django_tasks_sched.service.reconcile: {refused}"
    assert [proc.output().count(error) for proc in procs] == [1, 1]
    # Another broken version of the row is another record, and another error in each log.
    Task.objects.filter(pk=broken.pk).update(trigger_config={"minutes": "later"})
    wait_until(lambda: runs(broken, status="FAILED") == 2, 10, procs[0])
    wait_until(lambda: all(p.output().count(error) == 2 for p in procs), 5, procs[0])
    for proc in procs:
        assert proc.stop() == 0


def test_sigterm_exits_zero_and_removes_heartbeat(tmp_path: Path) -> None:
    proc = Proc(tmp_path / "s.log")
    proc.wait_ready()
    assert SchedulerProcess.objects.count() == 1
    status = manage("schedulerstatus")
    assert status.returncode == 0, status.stderr
    assert "1 live scheduler" in status.stdout
    assert proc.stop(signal.SIGTERM) == 0
    assert SchedulerProcess.objects.count() == 0
    status = manage("schedulerstatus")
    assert status.returncode == 1
    assert "No live scheduler" in status.stderr


def test_shutdown_interrupts_runs_past_the_grace_period(tmp_path: Path) -> None:
    proc = Proc(tmp_path / "s.log", "--grace-period", "0.5")
    proc.wait_ready()
    task = Task.objects.create(
        name="slow",
        func="tests.testapp.jobs:sleep",
        args=[30],
        trigger="date",
        trigger_config={"run_date": "2099-01-01T00:00:00"},
    )
    run = task.run_now()
    wait_until(lambda: TaskRun.objects.get(pk=run.pk).status == "RUNNING", 5, proc)
    assert proc.stop(signal.SIGTERM, timeout=10) == 0
    run.refresh_from_db()
    assert run.status == TaskRun.Status.INTERRUPTED
    assert "shut down" in run.error


def test_list_prints_what_would_fire_and_exits() -> None:
    Task.objects.create(
        name="nightly",
        func="tests.testapp.jobs:noop",
        trigger="cron",
        trigger_config={"crontab": "30 2 * * *", "timezone": "America/New_York"},
    )
    Task.objects.create(
        name="off",
        func="tests.testapp.jobs:noop",
        trigger="interval",
        trigger_config={"minutes": 1},
        active=False,
    )
    result = manage("runscheduler", "--list", "--count", "2")
    assert result.returncode == 0, result.stderr
    assert "nightly: " in result.stdout
    assert "02:30:00 E" in result.stdout  # EST or EDT, in the task's own zone
    assert "off" not in result.stdout
    assert "1 active task(s) would be scheduled." in result.stdout


def test_claimed_fires_never_started_at_shutdown_do_not_look_started(tmp_path: Path) -> None:
    proc = Proc(tmp_path / "s.log", "--threads", "1", "--grace-period", "0.5")
    proc.wait_ready()
    # Three fires due at once, one thread: one run starts, two wait for the thread.
    due = (timezone.now() + timedelta(seconds=1)).isoformat()
    tasks = [
        Task.objects.create(
            name=f"slow-{i}",
            func="tests.testapp.jobs:sleep",
            args=[30],
            trigger="date",
            trigger_config={"run_date": due},
        )
        for i in range(3)
    ]
    wait_until(lambda: TaskRun.objects.filter(status="RUNNING").count() == 3, 10, proc)
    wait_until(lambda: "' started" in proc.output(), 10, proc)
    assert proc.stop(signal.SIGTERM, timeout=10) == 0
    runs = TaskRun.objects.filter(task__in=tasks)
    called = [run for run in runs if run.started_at is not None]
    never = [run for run in runs if run.started_at is None]
    assert len(called) == 1
    assert called[0].status == TaskRun.Status.INTERRUPTED
    assert "shut down before the run finished" in called[0].error
    assert len(never) == 2
    for run in never:
        # Cancelled: it never ran, so it did not fail (no failure counted, no retry).
        assert run.status == TaskRun.Status.CANCELLED
        assert run.error.startswith("Not started: the scheduler shut down")
        task = Task.objects.get(pk=run.task_id)
        assert (task.consecutive_failures, task.last_run_status) == (0, "")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--threads", "0"], "--threads must be a whole number at least 1, not 0."),
        (["--workers", "0"], "--threads must be a whole number at least 1, not 0."),
        (["--grace-period", "-1"], "--grace-period must be a number at least 0, not -1."),
        (["--poll-interval", "0"], "--poll-interval must be a number greater than 0, not 0."),
        (["--list", "--count", "0"], "--count must be from 1 to 100."),
    ],
)
def test_bad_options_are_usage_errors_not_tracebacks(args: list[str], message: str) -> None:
    result = manage("runscheduler", *args)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
