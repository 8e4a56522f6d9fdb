"""Batched claiming in real scheduler processes: bursts run once each, whoever claims them."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from django_tasks_sched.models import Task, TaskRun
from tests.processes import SchedulerProcess as Proc
from tests.processes import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_schedulers_run_a_burst_exactly_once(tmp_path: Path) -> None:
    schedulers = [Proc(tmp_path / f"{name}.log") for name in "ab"]
    for proc in schedulers:
        proc.wait_ready()
    due = (timezone.now() + timedelta(seconds=3)).isoformat()
    Task.objects.bulk_create(
        Task(
            name=f"burst-{i:03d}",
            func="tests.testapp.jobs:noop",
            trigger="date",
            trigger_config={"run_date": due},
        )
        for i in range(300)
    )
    done = TaskRun.objects.filter(status=TaskRun.Status.SUCCESSFUL)
    wait_until(lambda: done.count() >= 300, 30, schedulers[0])
    # Stopped (each records what it ran first), so a duplicate would be in the table now.
    for proc in schedulers:
        assert proc.stop() == 0
        assert "Traceback" not in proc.log_path.read_text()
    assert TaskRun.objects.count() == 300
    assert set(TaskRun.objects.values_list("status", flat=True)) == {"SUCCESSFUL"}


def test_a_date_task_that_fired_fires_again_when_given_a_new_date(tmp_path: Path) -> None:
    proc = Proc(tmp_path / "s.log")
    proc.wait_ready()
    task = Task.objects.create(
        name="once",
        func="tests.testapp.jobs:noop",
        trigger="date",
        trigger_config={"run_date": timezone.now().isoformat()},
    )
    wait_until(lambda: TaskRun.objects.filter(task=task, status="SUCCESSFUL").exists(), 10, proc)
    # APScheduler dropped the job after its only fire; the edit must add it back.
    task.trigger_config = {"run_date": (timezone.now() + timedelta(seconds=1)).isoformat()}
    task.save()
    wait_until(
        lambda: TaskRun.objects.filter(task=task, status="SUCCESSFUL").count() == 2, 10, proc
    )
    assert proc.stop() == 0
    assert "Traceback" not in proc.log_path.read_text()
