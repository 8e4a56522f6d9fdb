"""Real scheduler processes sharing the window: each holds its part, a dead one's part is
taken over within the heartbeat timeout with the fires it left caught up, and edits made
while the parts change take effect once."""

from __future__ import annotations

import signal
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from django_tasks_sched.models import Task, TaskRun
from tests.history import fire_gaps
from tests.processes import FAST_HEARTBEAT, wait_until
from tests.processes import SchedulerProcess as Proc

pytestmark = pytest.mark.django_db(transaction=True)

#: What FAST_HEARTBEAT gives: a process silent this long has its part taken over.
TIMEOUT = FAST_HEARTBEAT["HEARTBEAT_TIMEOUT"]
#: Heartbeats as quick, but a process counts as dead only after 10 s: on a loaded machine a
#: stall of a few seconds must not make the parts overlap where a test counts who claimed.
STEADY = {**FAST_HEARTBEAT, "HEARTBEAT_TIMEOUT": 10}


def every(seconds: int, count: int) -> list[Task]:
    # Every fire runs (no coalescing, room for all), so each second leaves its own record.
    return [
        Task.objects.create(
            name=f"tick-{n}",
            func="tests.testapp.jobs:noop",
            trigger="interval",
            trigger_config={"seconds": seconds},
            coalesce=False,
            max_instances=10,
        )
        for n in range(count)
    ]


def holding(proc: Proc, part: str) -> None:
    """Wait until ``proc`` says its part changed to ``part`` ("part", "all tasks")."""
    wait_until(lambda: f"now holds {part}" in proc.output(), 15, proc)


def sharing(first: Proc, second: Proc, tasks: list[Task], count: int) -> datetime:
    """Wait until ``second`` (started after ``first``) is ready and the two share the tasks,
    then until each task has run ``count`` times since; return when they had settled."""
    second.wait_ready()
    holding(first, "part")
    settled = timezone.now() + timedelta(seconds=1)
    wait_until(lambda: run_after(tasks, settled, count), 20, first)
    return settled


def run_after(tasks: list[Task], since: datetime, count: int) -> bool:
    runs = TaskRun.objects.filter(task__in=tasks, scheduled_for__gt=since, status="SUCCESSFUL")
    per_task = {task.pk: 0 for task in tasks}
    for task_id in runs.values_list("task_id", flat=True):
        per_task[task_id] += 1
    return min(per_task.values()) >= count


def holders(tasks: list[Task], since: datetime) -> dict[int, set[str]]:
    """Which processes claimed each task's fires after ``since``."""
    claims = TaskRun.objects.filter(task__in=tasks, scheduled_for__gt=since)
    found: dict[int, set[str]] = {task.pk: set() for task in tasks}
    for task_id, worker_id in claims.values_list("task_id", "worker_id"):
        found[task_id].add(worker_id)
    return found


def worker_of(proc: Proc) -> str:
    return f":{proc.proc.pid}:"


def assert_every_fire_recorded(tasks: list[Task], seconds: float, log: str) -> None:
    for task in tasks:
        assert fire_gaps(task.runs.all()) == {seconds}, (task.name, log)
        odd = task.runs.exclude(status__in=["SUCCESSFUL", "INTERRUPTED"])
        assert not odd.exists(), list(odd.values_list("scheduled_for", "status", "error"))


def test_two_schedulers_each_claim_only_their_part(tmp_path: Path) -> None:
    tasks = every(1, 8)
    first = Proc(tmp_path / "a.log", settings=STEADY)
    first.wait_ready()
    second = Proc(tmp_path / "b.log", settings=STEADY)
    try:
        settled = sharing(first, second, tasks, 3)
    finally:
        codes = [first.stop(), second.stop()]
    assert codes == [0, 0], first.output() + second.output()
    found = holders(tasks, settled)
    # One holder per task, and both processes hold some.
    assert all(len(workers) == 1 for workers in found.values()), found
    by = {worker for workers in found.values() for worker in workers}
    assert any(worker_of(first) in worker for worker in by), found
    assert any(worker_of(second) in worker for worker in by), found
    assert_every_fire_recorded(tasks, 1.0, first.output() + second.output())


def test_a_dead_replica_part_is_taken_over_within_the_heartbeat_timeout(tmp_path: Path) -> None:
    tasks = every(1, 8)
    survivor = Proc(tmp_path / "survivor.log", settings=FAST_HEARTBEAT)
    survivor.wait_ready()
    victim = Proc(tmp_path / "victim.log", settings=FAST_HEARTBEAT)
    try:
        settled = sharing(survivor, victim, tasks, 2)
        held = [task for task, workers in holders(tasks, settled).items() if any(
            worker_of(victim) in worker for worker in workers)]  # fmt: skip
        assert held, "the victim held no task"
        killed_at = timezone.now()
        assert victim.stop(signal.SIGKILL) == -signal.SIGKILL
        holding(survivor, "all tasks")
        taken = [task for task in tasks if task.pk in held]
        wait_until(lambda: run_after(taken, killed_at + timedelta(seconds=TIMEOUT + 1), 2), 20)
    finally:
        code = survivor.stop()
    log = survivor.output()
    assert code == 0, log
    # The victim's tasks: the survivor's first run of each started within the timeout (and
    # a little for the load and the claim), and every fire of the gap has its record.
    for task in taken:
        theirs = task.runs.filter(worker_id__contains=worker_of(survivor), started_at__gt=killed_at)
        first = theirs.order_by("started_at").first()
        assert first is not None, log
        assert first.started_at is not None, log  # (for the type checker)
        assert first.started_at - killed_at < timedelta(seconds=TIMEOUT + 3), (first, log)
    assert_every_fire_recorded(tasks, 1.0, log)


def test_edits_while_the_parts_change_take_effect_once(tmp_path: Path) -> None:
    """Edited as a process joins, and again as one leaves: from each edit on, every fire is
    the new schedule's, none missed and none twice."""
    tasks = every(1, 6)
    first = Proc(tmp_path / "a.log", settings=STEADY)
    first.wait_ready()
    started = timezone.now()
    wait_until(lambda: run_after(tasks, started, 1), 20, first)
    # A second process starts loading, and the schedule changes meanwhile.
    second = Proc(tmp_path / "b.log", settings=STEADY)
    try:
        edited = reschedule(tasks, 2)
        second.wait_ready()
        holding(first, "part")
        wait_until(lambda: run_after(tasks, edited, 3), 20, first)
        assert_gaps_after(tasks, edited, 2.0, first.output() + second.output())
        # Edited again, and the second process stops gracefully at the same moment.
        edited = reschedule(tasks, 1)
        assert second.stop() == 0, second.output()
        holding(first, "all tasks")
        wait_until(lambda: run_after(tasks, edited, 4), 20, first)
    finally:
        code = first.stop()
        second.stop()
    log = first.output() + second.output()
    assert code == 0, log
    assert_gaps_after(tasks, edited, 1.0, log)


def reschedule(tasks: list[Task], seconds: int) -> datetime:
    """Every task to every ``seconds``; the moment after which only the new fires count."""
    for task in tasks:
        task.trigger_config = {"seconds": seconds}
        task.save()
    # Fires already claimed under the old schedule may end meanwhile.
    return timezone.now() + timedelta(seconds=1)


def assert_gaps_after(tasks: list[Task], since: datetime, seconds: float, log: str) -> None:
    for task in tasks:
        runs = task.runs.filter(scheduled_for__gt=since)
        assert fire_gaps(runs) == {seconds}, (task.name, list(runs.values_list(
            "scheduled_for", "status", "worker_id")), log)  # fmt: skip
        assert not runs.exclude(status="SUCCESSFUL").exists(), log
