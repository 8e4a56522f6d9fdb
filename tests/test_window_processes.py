"""The window with real ``runscheduler`` processes: edits, edges, and a replica that dies.

A window of 0.1 minute (6 s, advanced every 1.5 s) and tasks every 7 s: each fire's next one
lies beyond the edge, so every task leaves the window after each fire and comes back before
the next, while full passes (every second here) run across those moves.
"""

from __future__ import annotations

import itertools
import signal
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from pathlib import Path

import pytest
from django.utils import timezone

from django_tasks_sched.models import Task, TaskRun
from tests.processes import FAST_HEARTBEAT, wait_until
from tests.processes import SchedulerProcess as Proc

pytestmark = pytest.mark.django_db(transaction=True)

PERIOD = 7
SMALL_WINDOW = {"WINDOW_MINUTES": 0.1, "RECONCILE_INTERVAL": 1}


def every_period(count: int) -> list[Task]:
    """Tasks every PERIOD seconds, their phases spread over the period."""
    origin = timezone.now().replace(microsecond=0) - timedelta(seconds=PERIOD)
    return [
        Task.objects.create(
            name=f"every {PERIOD}s #{i}",
            func="tests.testapp.jobs:noop",
            trigger="interval",
            trigger_config={
                "seconds": PERIOD,
                "start_date": (origin + timedelta(seconds=i * PERIOD / count)).isoformat(),
            },
        )
        for i in range(count)
    ]


def fires(task: Task) -> list[datetime]:
    runs = TaskRun.objects.filter(task=task).values_list("scheduled_for", flat=True)
    return sorted(when for when in runs if when is not None)


def assert_no_gap(tasks: list[Task], since: datetime) -> None:
    """Every fire of each task from ``since`` on has its run, one per fire, none MISSED."""
    for task in tasks:
        times = [when for when in fires(task) if when >= since]
        assert len(times) >= 3, (task.name, times)
        steps = {(b - a).total_seconds() for a, b in itertools.pairwise(times)}
        assert steps == {PERIOD}, (task.name, times)
    missed = TaskRun.objects.filter(task__in=tasks, status=TaskRun.Status.MISSED)
    assert not missed.exists(), list(missed.values_list("task__name", "scheduled_for", "error"))


def test_a_far_off_task_edited_to_due_now_fires_at_once(tmp_path: Path) -> None:
    task = Task.objects.create(
        name="yearly",
        func="tests.testapp.jobs:noop",
        trigger="cron",
        trigger_config={"crontab": "0 0 1 1 *"},
    )
    proc = Proc(tmp_path / "scheduler.log")
    proc.wait_ready()
    assert "0 task(s) in the window" in proc.output()
    task.trigger, task.trigger_config = "date", {"run_date": timezone.now().isoformat()}
    task.save()
    wait_until(lambda: TaskRun.objects.filter(task=task, status="SUCCESSFUL").exists(), 5, proc)
    assert proc.stop() == 0


def test_tasks_crossing_the_edge_on_every_fire_miss_nothing(tmp_path: Path) -> None:
    tasks = every_period(12)
    proc = Proc(tmp_path / "scheduler.log", settings=SMALL_WINDOW)
    proc.wait_ready()
    since = timezone.now() + timedelta(seconds=1)
    last = tasks[-1]
    wait_until(lambda: len([w for w in fires(last) if w >= since]) >= 4, 45, proc)
    assert proc.stop() == 0
    assert_no_gap(tasks, since)
    assert "left the window" in proc.output()
    assert "Traceback" not in proc.output()


def test_a_replica_dying_leaves_no_gap(tmp_path: Path) -> None:
    """Every replica holds the whole window (claims make each fire once), so the one left
    fires everything on its own from the moment the other dies."""
    tasks = every_period(8)
    settings = {**SMALL_WINDOW, **FAST_HEARTBEAT}
    doomed, survivor = (Proc(tmp_path / f"{n}.log", settings=settings) for n in ("a", "b"))
    doomed.wait_ready()
    survivor.wait_ready()
    since = timezone.now() + timedelta(seconds=1)
    wait_until(lambda: TaskRun.objects.filter(worker_id__contains=":").count() >= 8, 20, doomed)
    doomed.stop(signal.SIGKILL)
    killed = timezone.now()
    last = tasks[-1]
    wait_until(lambda: len([w for w in fires(last) if w >= killed]) >= 3, 45, survivor)
    assert survivor.stop() == 0
    assert_no_gap(tasks, since)
    # A fire the dead one had claimed is recovered as interrupted, not lost; the rest ran.
    statuses = set(TaskRun.objects.filter(task__in=tasks).values_list("status", flat=True))
    assert statuses <= {"SUCCESSFUL", "INTERRUPTED"}


#: libfaketime (Debian's faketime package): the scheduler's clock, and only its clock, starts
#: where the test says and runs at real speed. Every timestamp the scheduler writes comes from
#: its own clock (no database NOW()), so the rows it writes are in its time.
FAKETIME = next(iter(sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))), None)


@pytest.mark.skipif(FAKETIME is None, reason="needs libfaketime: apt-get install faketime")
def test_fires_at_berlins_spring_change_cross_the_edge_and_run_once(tmp_path: Path) -> None:
    """Berlin moves its clocks from 02:00 to 03:00 at 2026-03-29 01:00 UTC. The scheduler's
    clock starts 20 s before, with a 6 s window: each fire at the change comes into the window
    by an advance across the jump, and runs once, at the instant the trigger gives."""
    berlin = {"timezone": "Europe/Berlin"}
    tasks = [
        Task.objects.create(
            name=name,
            func="tests.testapp.jobs:noop",
            trigger="cron",
            trigger_config={"crontab": crontab, **berlin},
        )
        for name, crontab in [
            ("02:30, which the change skips", "30 2 * * *"),
            ("03:00, the change itself", "0 3 * * *"),
            ("every 20 minutes", "*/20 * * * *"),
        ]
    ]
    # Worked out afresh by the scheduler, from its own clock (the test's is in December).
    Task.objects.filter(pk__in=[task.pk for task in tasks]).update(next_run_time=None)
    change = datetime(2026, 3, 29, 1, 0, tzinfo=dt_timezone.utc)
    # The wall clock only: waits with a timeout count on the real monotonic clock.
    env = {
        "LD_PRELOAD": str(FAKETIME),
        "FAKETIME": "@2026-03-29 00:59:40",
        "TZ": "UTC",  # the time above is read in the process's local time
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }
    proc = Proc(tmp_path / "scheduler.log", settings=SMALL_WINDOW, env=env)
    proc.wait_ready()
    assert "0 task(s) in the window" in proc.output()  # 20 s away; the window is 6 s
    # What each fire leaves in the table: its next fire, worked out across the change.
    expected = {
        tasks[0].pk: datetime(2026, 3, 30, 0, 30, tzinfo=dt_timezone.utc),  # 02:30+02:00
        tasks[1].pk: datetime(2026, 3, 30, 1, 0, tzinfo=dt_timezone.utc),  # 03:00+02:00
        tasks[2].pk: datetime(2026, 3, 29, 1, 20, tzinfo=dt_timezone.utc),  # 03:20+02:00
    }
    wait_until(lambda: next_fires(tasks) == expected, 60, proc)
    assert proc.stop() == 0
    for task in tasks:
        assert fires(task) == [change], task.name
    runs = TaskRun.objects.filter(task__in=tasks)
    assert set(runs.values_list("status", flat=True)) == {"SUCCESSFUL"}
    assert "Traceback" not in proc.output()


def next_fires(tasks: list[Task]) -> dict[int, datetime | None]:
    rows = Task.objects.filter(pk__in=[task.pk for task in tasks])
    return dict(rows.values_list("pk", "next_run_time"))
