"""Batched claiming in real scheduler processes: bursts run once each, whoever claims them."""

from __future__ import annotations

import itertools
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from django_tasks_sched.models import Task, TaskRun
from django_tasks_sched.service.claims import Fire
from django_tasks_sched.service.executor import FiringExecutor, batch_bounds
from tests.processes import SchedulerProcess as Proc
from tests.processes import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def burst(count: int, due_in: float) -> None:
    """``count`` no-op date tasks, all due ``due_in`` seconds from now."""
    due = (timezone.now() + timedelta(seconds=due_in)).isoformat()
    Task.objects.bulk_create(
        Task(
            name=f"burst-{i:03d}",
            func="tests.testapp.jobs:noop",
            trigger="date",
            trigger_config={"run_date": due},
        )
        for i in range(count)
    )


def test_two_schedulers_run_a_burst_exactly_once(tmp_path: Path) -> None:
    schedulers = [Proc(tmp_path / f"{name}.log") for name in "ab"]
    for proc in schedulers:
        proc.wait_ready()
    burst(300, due_in=3)
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


def test_a_burst_starts_functions_before_its_last_fires_are_claimed(tmp_path: Path) -> None:
    """Claims and calls in a pipeline: the first small batch's functions are called while
    later batches are still being claimed (one batch of 400 would start none before all)."""
    proc = Proc(tmp_path / "scheduler.log")
    proc.wait_ready()
    burst(400, due_in=2)
    done = TaskRun.objects.filter(status=TaskRun.Status.SUCCESSFUL)
    wait_until(lambda: done.count() >= 400, 30, proc)
    assert proc.stop() == 0
    claimed = sorted({when for when in done.values_list("enqueued_at", flat=True) if when})
    first_call = min(when for when in done.values_list("started_at", flat=True) if when)
    assert len(claimed) > 1, "one claim for the whole burst"
    assert first_call < claimed[-1]


def test_claim_batches_start_small_and_grow() -> None:
    bounds = list(batch_bounds(1000))
    assert [end - start for start, end in bounds] == [25, 50, 100, 200, 400, 225]
    assert bounds[0][0] == 0
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    assert list(batch_bounds(0)) == []
    assert list(batch_bounds(3)) == [(0, 3)]
    # A pass that continues a burst starts where the last one had grown to.
    assert [end - start for start, end in batch_bounds(700, 200)] == [200, 400, 100]


def test_fires_handed_over_during_a_burst_claim_go_on_in_grown_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """APScheduler hands over the rest of a burst while its first batches are claimed: the
    next pass starts at twice the last batch, not at the first batch's size again."""
    executor = FiringExecutor(
        "scheduler:test", 1, next_fire_time=lambda task_id: None, coalesces=lambda task_id: True
    )
    due = timezone.now()
    sizes: list[int] = []

    def claim(fires: list[Fire], worker_id: str) -> list[TaskRun]:
        if not sizes:  # the rest of the burst arrives while the first batch is claimed
            executor.add_fires([Fire(1000 + i, due, None) for i in range(300)])
        sizes.append(len(fires))
        return []

    monkeypatch.setattr("django_tasks_sched.service.executor.claim_fires", claim)
    executor.add_fires([Fire(i, due, None) for i in range(75)])
    executor._claim_fires()
    assert sizes == [25, 50, 100, 200]
