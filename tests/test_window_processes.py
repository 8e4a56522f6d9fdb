"""The window with real ``runscheduler`` processes: edits, edges, and a replica that dies.

A window of 0.1 minute (6 s, advanced every 1.5 s) and tasks every 7 s: each fire's next one
lies beyond the edge, so every task leaves the window after each fire and comes back before
the next, while full passes (every second here) run across those moves.
"""

from __future__ import annotations

import itertools
import signal
from datetime import datetime, timedelta
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
