"""Firing switched off and on (the REST API's pause and resume) in real scheduler processes.

Two ``runscheduler`` processes share the database; the switch is flipped from the test, as the
API does. While off nothing fires and no queued run starts; back on, the fires that came due
meanwhile are caught up as after downtime.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from functools import partial
from pathlib import Path

import pytest
from django.db import DatabaseError
from django.utils import timezone

from django_tasks_sched.firing import switch_firing
from django_tasks_sched.models import Task, TaskRun
from django_tasks_sched.service.reconcile import Reconciler
from django_tasks_sched.service.runner import Options, SchedulerService
from tests.factories import make_task
from tests.processes import SchedulerProcess as Proc
from tests.processes import manage, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

#: How long "nothing happens" is watched for: three fires of a one-second task.
QUIET = 3.0


@pytest.fixture
def two(tmp_path: Path) -> Iterator[list[Proc]]:
    procs = [Proc(tmp_path / f"s{i}.log") for i in range(2)]
    for proc in procs:
        proc.wait_ready()
    yield procs
    for proc in procs:
        assert proc.stop() == 0, proc.output()


def every_second(name: str, **fields: object) -> Task:
    return Task.objects.create(
        name=name,
        func="tests.testapp.jobs:noop",
        trigger=Task.Trigger.INTERVAL,
        trigger_config={"seconds": 1},
        **fields,
    )


def fired(task: Task) -> int:
    return task.runs.filter(origin=TaskRun.Origin.SCHEDULE).count()


def switch_and_wait(procs: list[Proc], on: bool) -> None:
    """Switch firing, then wait until every process has logged that it saw the switch."""
    assert switch_firing(on, "test")
    said = "Firing resumed" if on else "Firing paused"
    for proc in procs:
        wait_until(partial(_logged, proc, said), 10, proc)


def _logged(proc: Proc, text: str) -> bool:
    return text in proc.output()


def pause_everywhere(procs: list[Proc]) -> None:
    switch_and_wait(procs, False)


def resume_everywhere(procs: list[Proc]) -> None:
    switch_and_wait(procs, True)


def test_paused_nothing_fires_and_resumed_the_stretch_is_caught_up(two: list[Proc]) -> None:
    # Two instances: the run-now request, let through at the resume, runs beside the catch-up.
    task = every_second("tick", coalesce=True, misfire_grace_time=60, max_instances=2)
    wait_until(lambda: fired(task) >= 2, 15, two[0])
    pause_everywhere(two)
    paused_at = timezone.now()
    before = fired(task)
    queued = task.run_now()
    time.sleep(QUIET)  # watching for something that must not happen
    # At most a fire already claimed as the switch was seen; nothing scheduled after.
    assert not task.runs.filter(scheduled_for__gt=paused_at + timedelta(seconds=1)).exists()
    assert fired(task) <= before + 1
    queued.refresh_from_db()
    assert queued.status == TaskRun.Status.QUEUED  # run-now requests wait too
    switched_on = timezone.now()
    resume_everywhere(two)
    # The paused stretch folds into one run (coalesce), then firing goes on; no fire twice.
    wait_until(lambda: queued.wait(10).status == TaskRun.Status.SUCCESSFUL, 15, two[0])
    wait_until(lambda: task.runs.filter(scheduled_for__gt=switched_on).exists(), 15, two[0])
    stretch = task.runs.filter(scheduled_for__gt=paused_at, scheduled_for__lte=switched_on)
    # Every whole second of the stretch has its record, one run and the rest folded into it.
    seconds = int(switched_on.timestamp()) - int(paused_at.timestamp())
    assert stretch.count() == seconds
    ran = stretch.exclude(status=TaskRun.Status.MISSED)
    assert ran.count() == 1, list(stretch.values_list("scheduled_for", "status", "error"))
    assert ran.get().scheduled_for == stretch.latest("scheduled_for").scheduled_for
    folded = stretch.filter(status=TaskRun.Status.MISSED).values_list("error", flat=True)
    assert all(error.startswith("Coalesced") for error in folded)


def test_a_pause_beyond_the_grace_time_is_recorded_missed_once(two: list[Proc]) -> None:
    task = every_second("strict", misfire_grace_time=1)
    wait_until(lambda: fired(task) >= 1, 15, two[0])
    pause_everywhere(two)
    time.sleep(QUIET)
    resume_everywhere(two)
    missed = wait_until(
        lambda: task.runs.filter(error__contains="firing was paused").first(), 10, two[0]
    )
    assert missed.status == TaskRun.Status.MISSED
    resumed_at = timezone.now()
    wait_until(
        lambda: task.runs.filter(
            scheduled_for__gt=resumed_at, status=TaskRun.Status.SUCCESSFUL
        ).exists(),
        15,
        two[0],
    )
    assert task.runs.filter(error__contains="firing was paused").count() == 1


def test_a_scheduler_started_while_paused_waits_for_the_resume(tmp_path: Path) -> None:
    task = every_second("late-start")
    switch_firing(False, "test")
    proc = Proc(tmp_path / "s.log")
    proc.wait_ready()
    assert "Firing is paused" in proc.output()
    status = manage("schedulerstatus")
    assert status.returncode == 0, status.stderr  # alive: paused is not a failed health check
    assert "Firing is paused in every scheduler process (by test at" in status.stdout
    time.sleep(QUIET)
    assert fired(task) == 0
    switch_firing(True, "test")
    wait_until(lambda: fired(task) >= 1, 15, proc)
    assert proc.stop() == 0, proc.output()


def test_runs_of_worker_fleet_tasks_are_not_handed_off_while_paused(two: list[Proc]) -> None:
    from django.conf import settings

    task = Task.objects.create(
        name="fleet",
        func="tests.testapp.jobs:noop",
        trigger=Task.Trigger.DATE,
        trigger_config={"run_date": "2099-01-01T00:00:00+00:00"},
        backend="db",
        queue_name=settings.FLEET_QUEUE,
    )
    pause_everywhere(two)
    run = task.run_now()
    time.sleep(QUIET)  # watching for something that must not happen
    run.refresh_from_db()
    assert (run.status, run.handed_at) == (TaskRun.Status.QUEUED, None)
    resume_everywhere(two)
    # No db_worker runs here: handed off is as far as it goes, and it goes once resumed.
    wait_until(lambda: TaskRun.objects.filter(pk=run.pk, handed_at__isnull=False).exists(), 15)


def test_a_task_edited_while_paused_resumes_from_its_new_schedule(two: list[Proc]) -> None:
    task = Task.objects.create(
        name="slow",
        func="tests.testapp.jobs:sleep",
        args=[2],
        trigger=Task.Trigger.INTERVAL,
        trigger_config={"seconds": 1},
    )
    running = wait_until(lambda: task.runs.filter(status=TaskRun.Status.RUNNING).first(), 15)
    pause_everywhere(two)
    task.trigger_config = {"hours": 1}
    task.save()
    edited_next = Task.objects.get(pk=task.pk).next_run_time
    assert edited_next is not None
    assert edited_next > timezone.now() + timedelta(minutes=30)
    # The run going on at the pause finishes now: it must not store the old schedule's point.
    running.wait(15)
    assert Task.objects.get(pk=task.pk).next_run_time == edited_next
    resume_everywhere(two)
    time.sleep(QUIET)  # watching for something that must not happen
    assert not task.runs.filter(scheduled_for__gt=running.scheduled_for).exists()
    assert Task.objects.get(pk=task.pk).next_run_time == edited_next


def test_pausing_in_a_burst_leaves_the_scheduler_firing_after_resume(tmp_path: Path) -> None:
    Task.objects.bulk_create(
        Task(
            name=f"burst-{i}",
            func="tests.testapp.jobs:noop",
            trigger=Task.Trigger.INTERVAL,
            trigger_config={"seconds": 1},
        )
        for i in range(200)
    )
    proc = Proc(tmp_path / "s.log")
    proc.wait_ready()
    for cycle in range(1, 4):
        # Paused while a burst of 200 fires is being handed over.
        fired_by = TaskRun.objects.count()
        wait_until(partial(_more_runs_than, fired_by), 15, proc)
        assert switch_firing(False, "test")
        wait_until(partial(_logged_times, proc, "Firing paused", cycle), 15, proc)
        assert switch_firing(True, "test")
        wait_until(partial(_logged_times, proc, "Firing resumed", cycle), 15, proc)
    resumed = timezone.now()
    # APScheduler's thread is alive: fires after the last resume keep coming, every second.
    wait_until(
        lambda: (
            TaskRun.objects.filter(scheduled_for__gt=resumed + timedelta(seconds=2)).count() >= 200
        ),
        20,
        proc,
    )
    assert proc.stop() == 0, proc.output()


def _more_runs_than(count: int) -> bool:
    return TaskRun.objects.count() > count


def _logged_times(proc: Proc, text: str, times: int) -> bool:
    return proc.output().count(text) >= times


# -- in one process: the service's own switch handling ---------------------------------------


def test_a_resume_whose_load_fails_stays_paused_and_retries(
    service: SchedulerService, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Five minutes: a fire within the window (WINDOW_MINUTES), so the task has a job.
    task = make_task("steady", trigger_config={"minutes": 5})
    service.reconcile()
    expected = service.jobs.next_fire(task.pk)
    assert expected is not None
    switch_firing(False)
    service.reconcile()
    assert not service.firing
    assert service.jobs.all() == []
    assert service._next_fire_time(task.pk) == expected  # what a run finishing now stores

    def database_away(self: Reconciler) -> None:
        raise DatabaseError("the database went away")

    switch_firing(True)
    monkeypatch.setattr(Reconciler, "load", database_away)
    with pytest.raises(DatabaseError):
        service.reconcile()  # the loop logs it and polls again
    assert not service.firing
    assert service.jobs.all() == []
    assert service._next_fire_time(task.pk) == expected
    monkeypatch.undo()
    service.reconcile()
    assert service.firing
    assert service.jobs.next_fire(task.pk) == expected


def test_a_scheduler_stopped_while_paused_leaves_the_pause_points() -> None:
    # Five minutes: a fire within the window (WINDOW_MINUTES), so the task has a job.
    task = make_task("steady", trigger_config={"minutes": 5})
    service = SchedulerService(Options.from_settings())
    service.start()
    service.reconciler.flush_next_runs()
    expected = Task.objects.get(pk=task.pk).next_run_time
    assert expected is not None
    switch_firing(False)
    service.reconcile()
    service.shutdown()
    # What the next scheduler catches up from once firing is back on.
    assert Task.objects.get(pk=task.pk).next_run_time == expected


def test_a_shutdown_waits_for_the_housekeeping_threads_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Not cut off at exit: the database would finish a cut-off statement alone, holding its
    # locks after the process had gone (a CI flake: the test database's flush deadlocked).
    from django_tasks_sched.service.alerting import AlertWatch

    passing = threading.Event()

    def slow_pass(self: AlertWatch) -> None:
        passing.set()
        time.sleep(1)

    monkeypatch.setattr(AlertWatch, "resolve_no_scheduler", slow_pass)
    service = SchedulerService(Options.from_settings())
    service.start()
    assert passing.wait(10)
    service.shutdown()
    assert [thread.name for thread in service.housekeepers] == ["dts-pruner", "dts-alerts"]
    assert not any(thread.is_alive() for thread in service.housekeepers)


def test_a_stop_signal_that_lands_while_the_loop_holds_its_events_lock_still_stops_it() -> None:
    # A signal handler runs in the main thread between two bytecodes, maybe inside
    # Event.wait() or clear() with the event's lock held: setting that event from the handler
    # waited for the lock forever, and the process fired on until it was killed (seen in CI).
    service = SchedulerService(Options.from_settings())
    returned = threading.Event()

    def main_thread_interrupted() -> None:
        with service.wake._cond, service.stopping._cond:  # type: ignore[attr-defined]
            service.request_stop(signal.SIGTERM, None)  # the handler, here
            returned.set()

    # In a thread of its own, so that the old deadlock fails the test instead of hanging it.
    threading.Thread(target=main_thread_interrupted, daemon=True).start()
    assert returned.wait(10)
    assert service.stopping.wait(10)
    assert service.wake.wait(10)
