"""APScheduler's per-task semantics, as a real runscheduler process applies them to Task rows.

max_instances, misfire grace time (a late fire is recorded as MISSED, not dropped), start and
end dates, and the changes no ORM signal reports: ``bulk_create`` from another process and raw
SQL, which only the periodic full reconcile can see.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from django_tasks_sched.models import Task, TaskRun
from django_tasks_sched.service.claims import Fire
from django_tasks_sched.service.runner import Options, SchedulerService, resume_points
from tests.factories import make_task
from tests.history import (
    dropped_by_the_scheduler,
    fire_gaps,
    fire_times,
    fires_of_a_twin,
    runs_overlapped,
)
from tests.processes import SchedulerProcess as Proc
from tests.processes import manage, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def statuses(task: Task) -> list[str]:
    return list(TaskRun.objects.filter(task=task).values_list("status", flat=True))


def test_max_instances_records_overlapping_fires_as_missed(scheduler: Proc) -> None:
    # Each run sleeps 2.5 s and the task fires every second: with max_instances=1, the fires
    # that land while it runs are recorded as MISSED, with the reason, and never overlap.
    task = Task.objects.create(
        name="slow",
        func="tests.testapp.jobs:sleep",
        args=[2.5],
        trigger="interval",
        trigger_config={"seconds": 1},
        max_instances=1,
    )
    wait_until(lambda: statuses(task).count("MISSED") >= 2, 15, scheduler)
    missed = TaskRun.objects.filter(task=task, status="MISSED").first()
    assert missed is not None
    assert "max_instances" in missed.error
    assert missed.scheduled_for is not None
    # At no time were two runs of the task started and not yet finished together.
    assert not runs_overlapped(task)


def test_fire_later_than_its_grace_time_is_recorded_as_missed(scheduler: Proc) -> None:
    # A one-off fire that was due a minute ago, with a 5 s grace time: too late to run.
    due = (timezone.now() - timedelta(minutes=1)).replace(microsecond=0)
    task = Task.objects.create(
        name="too-late",
        func="tests.testapp.jobs:noop",
        trigger="date",
        trigger_config={"run_date": due.isoformat()},
        misfire_grace_time=5,
    )
    # save() left next_run_time at the past fire, as APScheduler's date trigger would.
    run = wait_until(lambda: TaskRun.objects.filter(task=task).first(), 10, scheduler)
    assert run.status == TaskRun.Status.MISSED
    assert run.scheduled_for == due
    assert run.started_at is None
    assert "grace" in run.error


def test_start_and_end_dates_bound_the_fires(scheduler: Proc) -> None:
    now = timezone.now()
    start, end = now + timedelta(seconds=2), now + timedelta(seconds=5)
    task = Task.objects.create(
        name="bounded",
        func="tests.testapp.jobs:noop",
        trigger="interval",
        trigger_config={
            "seconds": 1,
            "start_date": start.isoformat(),
            "end_date": end.isoformat(),
        },
    )
    wait_until(lambda: timezone.now() > end + timedelta(seconds=2), 15)
    fires = fire_times(task.runs.all())
    assert 2 <= len(fires) <= 4, fires
    assert all(start <= fire <= end for fire in fires), fires
    task.refresh_from_db()
    assert task.next_run_time is None  # finished: nothing left to fire


def test_bulk_create_from_another_process_fires(scheduler: Proc) -> None:
    created = manage(
        "shell",
        "-c",
        "from django_tasks_sched.models import Task\n"
        "Task.objects.bulk_create([Task(name=f'bulk-{i}', func='tests.testapp.jobs:noop',"
        " trigger='interval', trigger_config={'seconds': 1}) for i in range(3)])",
    )
    assert created.returncode == 0, created.stderr
    wait_until(
        lambda: (
            TaskRun.objects.filter(task__name__startswith="bulk-").values("task").distinct().count()
            == 3
        ),
        10,
        scheduler,
    )


def test_raw_sql_change_is_caught_by_the_full_reconcile(tmp_path: Path) -> None:
    # Raw SQL moves no change stamp; only the full reconcile (here every 2 s) can see it.
    proc = Proc(tmp_path / "s.log", settings={"RECONCILE_INTERVAL": 2})
    try:
        proc.wait_ready()
        task = Task.objects.create(
            name="raw",
            func="tests.testapp.jobs:noop",
            trigger="interval",
            trigger_config={"seconds": 1},
            active=False,
        )
        twin = Task.objects.create(
            name="twin",
            func="tests.testapp.jobs:noop",
            trigger="interval",
            trigger_config={"seconds": 1},
        )
        fires_of_a_twin(twin, proc)
        assert not TaskRun.objects.filter(task=task).exists()
        table = connection.ops.quote_name(Task._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {table} SET active = %s WHERE id = %s", [True, task.pk])
        wait_until(lambda: TaskRun.objects.filter(task=task).exists(), 10, proc)
    finally:
        assert proc.stop() == 0


def test_schedulerstatus_shows_host_pid_and_version(scheduler: Proc) -> None:
    status = manage("schedulerstatus")
    assert status.returncode == 0, status.stderr
    assert str(scheduler.proc.pid) in status.stdout
    from django_tasks_sched import __version__

    assert __version__ in status.stdout


def test_scheduler_prunes_old_run_history(tmp_path: Path) -> None:
    task = Task.objects.create(
        name="old-history",
        func="tests.testapp.jobs:noop",
        trigger="date",
        trigger_config={"run_date": "2099-01-01T00:00:00"},
    )
    long_ago = timezone.now() - timedelta(days=90)
    old = TaskRun.objects.create(
        task=task, status="SUCCESSFUL", enqueued_at=long_ago, finished_at=long_ago
    )
    recent = TaskRun.objects.create(task=task, status="SUCCESSFUL", finished_at=timezone.now())
    proc = Proc(tmp_path / "s.log", settings={"PRUNE_INTERVAL": 1, "RUN_RETENTION_DAYS": 30})
    try:
        proc.wait_ready()
        wait_until(lambda: not TaskRun.objects.filter(pk=old.pk).exists(), 10, proc)
        assert TaskRun.objects.filter(pk=recent.pk).exists()
        wait_until(lambda: "Pruned 1 run(s)" in proc.output(), 5, proc)
    finally:
        assert proc.stop() == 0


FAST_BEAT = {"HEARTBEAT_INTERVAL": 0.5, "HEARTBEAT_TIMEOUT": 3}


def test_failed_run_is_retried_with_its_attempt_number(scheduler: Proc) -> None:
    task = Task.objects.create(
        name="flaky",
        func="tests.testapp.jobs:fail",
        trigger="date",
        trigger_config={"run_date": "2099-01-01T00:00:00"},
        max_retries=2,
    )
    first = task.run_now()
    wait_until(lambda: task.runs.filter(status="FAILED").count() == 3, 15, scheduler)
    # The scheduler records each run before it queues the retry: once it has stopped, every
    # retry it would queue is there.
    assert scheduler.stop() == 0
    runs = list(task.runs.order_by("attempt"))
    assert [(r.attempt, r.status) for r in runs] == [(1, "FAILED"), (2, "FAILED"), (3, "FAILED")]
    assert [r.origin for r in runs[1:]] == ["RETRY", "RETRY"]
    assert all(r.first_attempt_id == first.pk for r in runs[1:])


def test_failure_limit_deactivates_a_task_in_the_scheduler(scheduler: Proc) -> None:
    twin = Task.objects.create(
        name="twin",
        func="tests.testapp.jobs:noop",
        trigger="interval",
        trigger_config={"seconds": 1},
    )
    task = Task.objects.create(
        name="broken",
        func="tests.testapp.jobs:fail",
        trigger="interval",
        trigger_config={"seconds": 1},
        max_consecutive_failures=2,
    )
    wait_until(lambda: not Task.objects.get(pk=task.pk).active, 15, scheduler)
    task.refresh_from_db()
    assert "2 failed runs in a row" in task.inactive_reason
    dropped_by_the_scheduler(task, scheduler)
    settled = task.runs.count()
    fires_of_a_twin(twin, scheduler)
    assert task.runs.count() == settled


def test_run_past_its_timeout_is_timed_out_and_frees_its_slot(tmp_path: Path) -> None:
    proc = Proc(tmp_path / "s.log", "--grace-period", "0.5", settings=FAST_BEAT)
    try:
        proc.wait_ready()
        task = Task.objects.create(
            name="hangs",
            func="tests.testapp.jobs:sleep",
            args=[30],
            trigger="date",
            trigger_config={"run_date": "2099-01-01T00:00:00"},
            timeout=1,
        )
        run = task.run_now()
        wait_until(lambda: TaskRun.objects.get(pk=run.pk).status == "TIMED_OUT", 10, proc)
        run.refresh_from_db()
        assert "timeout of 1s" in run.error
        assert not TaskRun.objects.running().filter(task=task).exists()
    finally:
        assert proc.stop() == 0


@pytest.mark.parametrize("coalesce", [False, True])
def test_fires_missed_while_no_scheduler_ran_are_caught_up(tmp_path: Path, coalesce: bool) -> None:
    task = Task.objects.create(
        name="steady",
        func="tests.testapp.jobs:noop",
        trigger="interval",
        trigger_config={"seconds": 1},
        coalesce=coalesce,
        misfire_grace_time=60,
        # Caught-up fires start together: room for all, or max_instances records them MISSED.
        max_instances=10,
    )
    first = Proc(tmp_path / "first.log")
    first.wait_ready()
    wait_until(lambda: task.runs.count() >= 2, 10, first)
    assert first.stop() == 0
    time.sleep(3.5)  # three or four fires come due with no scheduler up
    before = task.runs.count()
    second = Proc(tmp_path / "second.log")
    try:
        second.wait_ready()
        wait_until(lambda: task.runs.count() >= before + 5, 10, second)
    finally:
        assert second.stop() == 0
    # Every fire of the downtime has its record: no gap in the fire times.
    assert fire_gaps(task.runs.all()) == {1.0}
    coalesced = task.runs.filter(status="MISSED", error__startswith="Coalesced").count()
    if coalesce:
        assert coalesced >= 2  # the downtime's fires folded into one run
    else:
        assert coalesced == 0
        assert not task.runs.filter(status="MISSED").exists()  # each caught up and run


def test_a_run_finishing_during_shutdown_keeps_where_its_task_resumes(tmp_path: Path) -> None:
    # APScheduler's memory store forgets its jobs at shutdown: a run that finishes in the
    # grace period must still store the task's next fire, or the next scheduler to start
    # would not know where to catch up from.
    task = Task.objects.create(
        name="slow",
        func="tests.testapp.jobs:sleep",
        args=[1],
        trigger="interval",
        trigger_config={"seconds": 2},
        misfire_grace_time=60,
    )
    first = Proc(tmp_path / "first.log")
    first.wait_ready()
    run = wait_until(lambda: task.runs.filter(status="RUNNING").first(), 10, first)
    # Called, not only claimed: a claimed run not yet started is cancelled at shutdown.
    wait_until(lambda: f"Run {run.pk} of task 'slow' started" in first.output(), 5, first)
    assert first.stop() == 0
    run.refresh_from_db()
    task.refresh_from_db()
    assert run.status == TaskRun.Status.SUCCESSFUL
    assert task.next_run_time == run.scheduled_for + timedelta(seconds=2)
    time.sleep(3)  # a fire or two come due with no scheduler up
    before = task.runs.count()
    second = Proc(tmp_path / "second.log")
    try:
        second.wait_ready()
        wait_until(lambda: task.runs.count() >= before + 2, 10, second)
    finally:
        assert second.stop() == 0
    assert fire_gaps(task.runs.all()) == {2.0}


def test_resume_points_start_at_the_earliest_fire_dropped_at_shutdown() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=dt_timezone.utc)
    second = timedelta(seconds=1)
    dropped = [
        Fire(1, t0 + 3 * second, None),
        Fire(1, t0 + 2 * second, None, "Coalesced"),
        Fire(3, t0, None),  # a fire handed over for a task whose job is gone since
    ]
    points = resume_points({1: t0 + 4 * second, 2: t0 + 9 * second, 4: None}, dropped)
    assert points == {1: t0 + 2 * second, 2: t0 + 9 * second, 3: t0, 4: None}


def test_a_run_recorded_while_the_jobs_are_dropped_keeps_its_resume_point(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A run finishing between APScheduler emptying its store and the resume points being
    # taken used to store "no next fire", and the next scheduler caught nothing up (seen in
    # CI as a four-second gap in the fires of a coalescing task).
    # Five minutes: a fire within the window (WINDOW_MINUTES), so the task has a job.
    task = make_task("steady", trigger_config={"minutes": 5})
    service = SchedulerService(Options.from_settings())
    service.start()
    expected = service.jobs.next_fire(task.pk)
    assert expected is not None
    seen = []
    shutdown = service.jobs.shutdown

    def shutdown_then_record() -> None:
        shutdown()
        seen.append(service._next_fire_time(task.pk))  # what a run finishing now stores

    monkeypatch.setattr(service.jobs, "shutdown", shutdown_then_record)
    service.shutdown()
    assert seen == [expected]


def test_fires_missed_beyond_the_grace_time_while_down_are_recorded(tmp_path: Path) -> None:
    task = Task.objects.create(
        name="strict",
        func="tests.testapp.jobs:noop",
        trigger="interval",
        trigger_config={"seconds": 1},
        coalesce=False,
        misfire_grace_time=1,
    )
    first = Proc(tmp_path / "first.log")
    first.wait_ready()
    wait_until(lambda: task.runs.count() >= 2, 10, first)
    assert first.stop() == 0
    time.sleep(5)
    second = Proc(tmp_path / "second.log")
    try:
        second.wait_ready()
        down = wait_until(
            lambda: task.runs.filter(error__contains="no scheduler was running").first(), 10, second
        )
    finally:
        assert second.stop() == 0
    assert down.status == TaskRun.Status.MISSED
