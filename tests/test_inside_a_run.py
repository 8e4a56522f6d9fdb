"""Inside a run: current_run(), progress and meta, heartbeats, stuck runs, async functions.

Under every executor that runs code: inline, ``runtask``, and real ``runscheduler`` processes
with the thread and the process executor. (Workers of a fleet: tests/test_fleet.py.)
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db.models import F
from django.utils import timezone

from django_tasks_sched import current_run
from django_tasks_sched.exceptions import TaskConfigError
from django_tasks_sched.models import Task, TaskRun
from django_tasks_sched.service.housekeeping import interrupt_silent_runs, interrupt_stuck_runs
from tests.factories import make_task
from tests.processes import SchedulerProcess as Proc
from tests.processes import manage, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

FAST_BEAT = {"HEARTBEAT_INTERVAL": 0.3, "HEARTBEAT_TIMEOUT": 3}
EXECUTORS = [[], ["--executor", "process", "--threads", "2"]]


def reporting_task(name: str = "reports", **fields: object) -> Task:
    fields.setdefault("func", "tests.testapp.jobs:reports_back")
    return make_task(name, **fields)


def assert_reported(run: TaskRun) -> None:
    run.refresh_from_db()
    assert run.status == TaskRun.Status.SUCCESSFUL, run.error
    assert run.progress == 1.0
    assert run.meta == {"step": 2}
    assert run.heartbeat_at is not None
    assert run.started_at is not None
    assert run.heartbeat_at >= run.started_at
    assert run.result() == {**run.result(), "run": run.pk, "task": run.task.name}


# -- current_run() and what it reports ---------------------------------------------------------


def test_no_current_run_outside_a_run() -> None:
    assert current_run() is None


def test_an_inline_run_reports_progress_and_meta() -> None:
    run = reporting_task().run_now(inline=True)
    assert_reported(run)
    reported = run.result()
    assert reported["scheduled_for"] is None  # a manual run has no fire time
    assert reported["attempt"] == 1
    assert current_run() is None  # reset after the run


def test_runtask_reports_progress_and_meta() -> None:
    task = reporting_task()
    result = manage("runtask", task.name)
    assert result.returncode == 0, result.stderr
    assert_reported(task.runs.get())


@pytest.mark.parametrize("executor", EXECUTORS, ids=["threads", "processes"])
def test_scheduled_runs_learn_their_fire_time(tmp_path: Path, executor: list[str]) -> None:
    task = reporting_task(trigger_config={"seconds": 1})
    proc = Proc(tmp_path / "s.log", *executor)
    try:
        proc.wait_ready()
        run = wait_until(lambda: task.runs.filter(status="SUCCESSFUL").first(), 15, proc)
    finally:
        assert proc.stop() == 0
    assert_reported(run)
    # The nominal fire time, as stored on the run: what makes a job idempotent per fire.
    assert run.scheduled_for is not None
    assert datetime.fromisoformat(run.result()["scheduled_for"]) == run.scheduled_for


def test_update_refuses_what_it_cannot_store() -> None:
    task = make_task()
    run = TaskRun.objects.create(task=task, status=TaskRun.Status.RUNNING)
    for progress in (-0.1, 1.5, math.nan, math.inf, "half", True):
        with pytest.raises(TaskConfigError, match="progress"):
            run.update(progress=progress)  # type: ignore[arg-type]
    for meta in ([1, 2], "text", {"x": math.nan}, {"x": "\x00"}, {"x": "y" * 70_000}):
        with pytest.raises(TaskConfigError, match="meta"):
            run.update(meta=meta)  # type: ignore[arg-type]
    nested: dict[str, object] = {}
    deep = nested
    for _ in range(100):
        deep["x"] = deep = {}
    with pytest.raises(TaskConfigError, match="nested"):
        run.update(meta=nested)
    run.refresh_from_db()
    assert run.progress is None
    assert run.meta == {}


def test_update_merges_meta_and_says_when_the_run_has_ended() -> None:
    task = make_task()
    run = TaskRun.objects.create(task=task, status=TaskRun.Status.RUNNING)
    assert run.update(progress=0.25, meta={"a": 1, "b": 1})
    assert run.update(meta={"b": 2})
    run.refresh_from_db()
    assert (run.progress, run.meta) == (0.25, {"a": 1, "b": 2})
    TaskRun.objects.filter(pk=run.pk).update(status=TaskRun.Status.TIMED_OUT)
    assert not run.update(progress=0.5)
    assert not run.heartbeat()
    run.refresh_from_db()
    assert run.progress == 0.25


# -- liveness and stuck runs -------------------------------------------------------------------


@pytest.mark.parametrize("executor", EXECUTORS, ids=["threads", "processes"])
def test_a_running_run_is_stamped_alive(tmp_path: Path, executor: list[str]) -> None:
    task = make_task(func="tests.testapp.jobs:sleep", args=[30])
    proc = Proc(tmp_path / "s.log", *executor, "--grace-period", "0", settings=FAST_BEAT)
    try:
        proc.wait_ready()
        run = task.run_now()
        # Stamped by the process's liveness thread while the function sleeps: no call of its own.
        wait_until(
            lambda: TaskRun.objects.filter(
                pk=run.pk, status="RUNNING", alive_at__gt=F("started_at") + timedelta(seconds=0.5)
            ).exists(),
            10,
            proc,
        )
    finally:
        proc.stop()
    run.refresh_from_db()
    assert run.heartbeat_at is None  # the function itself sent none


def test_runs_silent_past_the_timeout_are_interrupted() -> None:
    task = make_task(max_retries=1)
    now = timezone.now()
    old = now - timedelta(seconds=60)
    silent = TaskRun.objects.create(
        task=task, status="RUNNING", started_at=old, alive_at=old, worker_id="fleet:gone"
    )
    never_stamped = TaskRun.objects.create(
        task=task, status="RUNNING", started_at=old, worker_id="fleet:gone"
    )
    fresh = TaskRun.objects.create(
        task=task, status="RUNNING", started_at=old, alive_at=now, worker_id="fleet:alive"
    )
    own = TaskRun.objects.create(
        task=task, status="RUNNING", started_at=old, alive_at=old, worker_id="scheduler:me"
    )
    ended = interrupt_silent_runs(30, "scheduler:me")
    assert {run.pk for run in ended} == {silent.pk, never_stamped.pk}
    silent.refresh_from_db()
    assert silent.status == "INTERRUPTED"
    assert "fleet:gone" in silent.error
    assert "30s" in silent.error
    assert set(TaskRun.objects.running().values_list("pk", flat=True)) == {fresh.pk, own.pk}
    # Each counts as a failure, and the task's retry policy follows.
    assert TaskRun.objects.filter(origin=TaskRun.Origin.RETRY).count() == 2


def test_stuck_runs_are_found_by_their_functions_heartbeat() -> None:
    task = make_task(heartbeat_timeout=10)
    now = timezone.now()
    long_ago = now - timedelta(seconds=60)
    stuck = TaskRun.objects.create(
        task=task, status="RUNNING", started_at=long_ago, heartbeat_at=now - timedelta(seconds=11)
    )
    never_beat = TaskRun.objects.create(task=task, status="RUNNING", started_at=long_ago)
    beating = TaskRun.objects.create(
        task=task, status="RUNNING", started_at=long_ago, heartbeat_at=now - timedelta(seconds=5)
    )
    young = TaskRun.objects.create(task=task, status="RUNNING", started_at=now)
    other = make_task("no-bound")
    unbounded = TaskRun.objects.create(task=other, status="RUNNING", started_at=long_ago)
    ended = interrupt_stuck_runs(now)
    assert {run.pk for run in ended} == {stuck.pk, never_beat.pk}
    stuck.refresh_from_db()
    assert stuck.status == "INTERRUPTED"
    assert "stuck" in stuck.error
    running = set(TaskRun.objects.running().values_list("pk", flat=True))
    assert running == {beating.pk, young.pk, unbounded.pk}
    task.refresh_from_db()
    assert task.consecutive_failures == 2


@pytest.mark.parametrize("executor", EXECUTORS, ids=["threads", "processes"])
def test_a_stuck_function_is_interrupted_and_retried(tmp_path: Path, executor: list[str]) -> None:
    task = make_task(
        func="tests.testapp.jobs:beats_then_hangs",
        kwargs={"beats": 4, "interval": 0.5, "hang": 60},
        heartbeat_timeout=2,
        max_retries=1,
    )
    proc = Proc(tmp_path / "s.log", *executor, "--grace-period", "0", settings=FAST_BEAT)
    try:
        proc.wait_ready()
        run = task.run_now()
        wait_until(lambda: TaskRun.objects.get(pk=run.pk).status == "INTERRUPTED", 20, proc)
        run.refresh_from_db()
        assert "stuck" in run.error
        assert run.heartbeat_at is not None
        # Not before its last heartbeat plus the bound: the beats held it off.
        assert run.finished_at is not None
        assert run.finished_at >= run.heartbeat_at + timedelta(seconds=2)
        wait_until(lambda: task.runs.filter(attempt=2).exists(), 10, proc)
    finally:
        proc.stop()


# -- async def -------------------------------------------------------------------------------


def test_an_async_function_is_awaited_inline() -> None:
    run = make_task(func="tests.testapp.jobs:async_job").run_now(inline=True)
    assert run.result() == "awaited"


def test_an_async_function_sees_its_run() -> None:
    run = make_task(func="tests.testapp.jobs:async_reports_back").run_now(inline=True)
    assert run.result() == {"run": run.pk}
    run.refresh_from_db()
    assert run.progress == 1.0
    assert run.meta == {"async": True}


def test_an_async_function_is_cancelled_at_its_timeout() -> None:
    task = make_task(func="tests.testapp.jobs:async_sleep", args=[30], timeout=1)
    run = task.run_now(inline=True)
    assert run.status == TaskRun.Status.TIMED_OUT
    assert "coroutine was cancelled" in run.error
    assert run.duration is not None
    assert run.duration < timedelta(seconds=5)


def test_runtask_awaits_an_async_function() -> None:
    task = make_task(func="tests.testapp.jobs:async_job")
    result = manage("runtask", task.name)
    assert result.returncode == 0, result.stderr
    assert task.runs.get().return_value == "awaited"


@pytest.mark.parametrize("executor", EXECUTORS, ids=["threads", "processes"])
def test_a_scheduler_awaits_async_functions(tmp_path: Path, executor: list[str]) -> None:
    task = make_task(func="tests.testapp.jobs:async_job", trigger_config={"seconds": 1})
    timed = make_task("slow", func="tests.testapp.jobs:async_sleep", args=[30], timeout=1)
    proc = Proc(tmp_path / "s.log", *executor)
    try:
        proc.wait_ready()
        run = wait_until(lambda: task.runs.filter(status="SUCCESSFUL").first(), 15, proc)
        assert run.return_value == "awaited"
        slow = timed.run_now()
        wait_until(lambda: TaskRun.objects.get(pk=slow.pk).is_done(), 15, proc)
        slow.refresh_from_db()
        assert slow.status == TaskRun.Status.TIMED_OUT
    finally:
        assert proc.stop() == 0


# -- the admin --------------------------------------------------------------------------------


def test_the_admin_shows_progress_meta_durations_and_where_a_run_ran(admin_client: Any) -> None:
    task = make_task()
    now = timezone.now()
    run = TaskRun.objects.create(
        task=task,
        status="RUNNING",
        scheduled_for=now - timedelta(seconds=3),
        enqueued_at=now - timedelta(seconds=2),
        started_at=now,
        progress=0.42,
        meta={"rows": 1200},
        worker_id="worker:celery:host:1:77",
        backend="celery",
        backend_result_id="9f0c-result",
        handoffs=1,
    )
    page = admin_client.get(f"/admin/django_tasks_sched/taskrun/{run.pk}/change/").content.decode()
    assert 'value="42.0"' in page  # the bar
    assert "42%" in page
    assert "&quot;rows&quot;: 1200" in page
    assert "9f0c-result" in page
    assert "worker:celery:host:1:77" in page.replace("<wbr>", "")  # may break after a colon
    assert "3.00 s" in page  # lateness: scheduled -> started
    assert "2.00 s" in page  # waiting: enqueued -> started
    listing = admin_client.get("/admin/django_tasks_sched/taskrun/").content.decode()
    assert 'value="42.0"' in listing
    task_page = admin_client.get(f"/admin/django_tasks_sched/task/{task.pk}/change/")
    assert 'value="42.0"' in task_page.content.decode()


def test_a_stuck_inline_run_is_interrupted_by_a_scheduler(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.processes import ROOT, subprocess_env

    task = make_task(
        "stuck-inline",
        func="tests.testapp.jobs:beats_then_hangs",
        kwargs={"beats": 2, "interval": 0.3, "hang": 6},
        heartbeat_timeout=2,
    )
    scheduler = Proc(tmp_path / "s.log", settings=FAST_BEAT)
    inline = subprocess.Popen(
        [sys.executable, "-m", "django", "runtask", task.name],
        env=subprocess_env(),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        scheduler.wait_ready()
        run = wait_until(lambda: task.runs.filter(status="RUNNING").first(), 30, scheduler)
        wait_until(lambda: TaskRun.objects.get(pk=run.pk).status == "INTERRUPTED", 30, scheduler)
        # The function wakes up later and returns: its outcome is dropped, the record stands.
        assert inline.wait(timeout=30) == 1  # runtask: the run did not succeed
    finally:
        if inline.poll() is None:
            inline.kill()
            inline.wait()
        assert scheduler.stop() == 0
    run.refresh_from_db()
    assert run.status == "INTERRUPTED"
    assert "stuck" in run.error
    assert run.worker_id.startswith("inline:")


def test_update_inside_the_functions_transaction_is_seen_at_once() -> None:
    from django.db import connection, connections, transaction

    from django_tasks_sched.autonomous import close_side_connections

    task = make_task()
    run = TaskRun.objects.create(task=task, status="RUNNING", started_at=timezone.now())
    other = connections.create_connection("default")  # another process's view
    try:
        with transaction.atomic():
            assert run.update(progress=0.5, meta={"inside": True})
            with other.cursor() as cursor:
                cursor.execute(
                    f"SELECT progress FROM {TaskRun._meta.db_table} WHERE id = %s", [run.pk]
                )
                seen = cursor.fetchone()[0]
            if connection.vendor == "sqlite":
                assert seen is None  # one writer at a time: it shows at the commit
            else:
                assert seen == 0.5
    finally:
        other.close()
        close_side_connections()  # what the run path does when a run ends
    run.refresh_from_db()
    assert (run.progress, run.meta) == (0.5, {"inside": True})


def test_a_coroutine_that_raises_cancelled_error_fails_its_run() -> None:
    run = make_task(func="tests.testapp.jobs:async_cancels").run_now(inline=True)
    assert run.status == TaskRun.Status.FAILED
    assert "CancelledError" in run.error


def test_a_claimed_run_ended_while_it_waited_is_not_called(tmp_path: Path) -> None:
    from django_tasks_sched.execution import execute_run

    trace = tmp_path / "trace"
    task = make_task(func="tests.testapp.jobs:trace_run", args=[str(trace)], heartbeat_timeout=5)
    run = TaskRun.objects.create(task=task, status="RUNNING", started_at=timezone.now())
    TaskRun.objects.filter(pk=run.pk).update(status="INTERRUPTED")  # stuck while it waited
    run.status = "RUNNING"  # what the executor holds since the claim
    finished = execute_run(run, worker_id="scheduler:test", record=lambda run: None)
    assert finished.status == "INTERRUPTED"
    assert not trace.exists()
