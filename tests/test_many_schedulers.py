"""Several runscheduler processes on one database: each fire and each queued run once.

Short versions of the fault-injection runs (the long soaks are scripts, see
docs/reliability.md): three schedulers share the work, max_instances holds across all of
them, a queued run is executed by exactly one, and after kill -9 the survivors mark the dead
process's runs INTERRUPTED and keep every task firing.
"""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from django_tasks_sched.models import Task, TaskRun
from tests.history import fire_gaps, runs_overlapped
from tests.processes import FAST_HEARTBEAT, wait_until
from tests.processes import SchedulerProcess as Proc

pytestmark = pytest.mark.django_db(transaction=True)

# Quick failure detection, so the kill -9 test takes seconds, not the default half minute.


@pytest.fixture
def three(tmp_path: Path) -> Iterator[list[Proc]]:
    procs = [Proc(tmp_path / f"s{i}.log", settings=FAST_HEARTBEAT) for i in range(3)]
    for proc in procs:
        proc.wait_ready()
    yield procs
    for proc in procs:
        proc.stop()


def traces(path: Path) -> Counter[str]:
    return Counter(path.read_text().splitlines()) if path.exists() else Counter()


def traced_ticks(trace: Path, prefix: str, count: int, **fields: object) -> list[Task]:
    """Tasks firing every second, each writing its name to ``trace`` when it really runs."""
    return [
        Task.objects.create(
            name=f"{prefix}-{i}",
            func="tests.testapp.jobs:append_line",
            args=[str(trace), f"{prefix}-{i}"],
            trigger="interval",
            trigger_config={"seconds": 1},
            **fields,
        )
        for i in range(count)
    ]


def all_have_runs(tasks: list[Task], count: int) -> bool:
    return all(task.runs.count() >= count for task in tasks)


def test_each_fire_runs_once_across_three_schedulers(three: list[Proc], tmp_path: Path) -> None:
    trace = tmp_path / "trace.txt"
    tasks = traced_ticks(trace, "tick", 4)
    wait_until(lambda: all(t.runs.filter(status="SUCCESSFUL").count() >= 5 for t in tasks), 20)
    # The claims race, and one process can win them all for a while: wait until a second one
    # has won one too, so that the fires below were really contended.
    wait_until(lambda: TaskRun.objects.order_by().values("worker_id").distinct().count() >= 2, 30)
    for proc in three:
        proc.stop()
    for task in tasks:
        fires = list(task.runs.exclude(status="MISSED").values_list("scheduled_for", flat=True))
        assert len(fires) == len(set(fires)), f"{task.name}: a fire time ran twice"
        # No fire lost between the first and the last: consecutive fires are one second apart.
        gaps = fire_gaps(task.runs.exclude(status="MISSED"))
        assert gaps == {1.0}, f"{task.name}: gaps {sorted(gaps)}"
        # Every recorded successful run executed exactly once (the trace counts executions).
        assert traces(trace)[task.name] == task.runs.filter(status="SUCCESSFUL").count()
    workers = set(TaskRun.objects.values_list("worker_id", flat=True))
    assert len(workers) >= 2, f"one process did all the work: {workers}"


def test_max_instances_holds_across_processes(three: list[Proc]) -> None:
    task = Task.objects.create(
        name="slow",
        func="tests.testapp.jobs:sleep",
        args=[2.5],
        trigger="interval",
        trigger_config={"seconds": 1},
        max_instances=1,
    )
    wait_until(lambda: task.runs.filter(status="SUCCESSFUL").count() >= 2, 20)
    assert not runs_overlapped(task), "two runs of a max_instances=1 task overlapped"
    assert task.runs.filter(status="MISSED", error__contains="max_instances").exists()


def test_queued_runs_are_each_executed_by_exactly_one(three: list[Proc], tmp_path: Path) -> None:
    trace = tmp_path / "trace.txt"
    task = Task.objects.create(
        name="manual",
        func="tests.testapp.jobs:append_line",
        args=[str(trace), "x"],
        trigger="date",
        trigger_config={"run_date": "2099-01-01T00:00:00"},
    )
    runs = [task.run_now() for _ in range(30)]
    for run in runs:
        run.wait(timeout=20)
        assert run.status == TaskRun.Status.SUCCESSFUL
    assert traces(trace)["x"] == 30


def test_kill_9_interrupts_the_dead_process_runs_and_others_carry_on(tmp_path: Path) -> None:
    victim = Proc(tmp_path / "victim.log", settings=FAST_HEARTBEAT)
    victim.wait_ready()
    slow = Task.objects.create(
        name="slow",
        func="tests.testapp.jobs:sleep",
        args=[60],
        trigger="date",
        trigger_config={"run_date": "2099-01-01T00:00:00"},
    )
    run = slow.run_now()
    wait_until(lambda: TaskRun.objects.get(pk=run.pk).status == "RUNNING", 10, victim)
    survivor = Proc(tmp_path / "survivor.log", settings=FAST_HEARTBEAT)
    survivor.wait_ready()
    tick = Task.objects.create(
        name="tick",
        func="tests.testapp.jobs:noop",
        trigger="interval",
        trigger_config={"seconds": 1},
    )
    assert victim.stop(signal.SIGKILL) == -signal.SIGKILL
    # The survivor sees the stale heartbeat (3 s) and records what the dead process cut off.
    wait_until(lambda: TaskRun.objects.get(pk=run.pk).status == "INTERRUPTED", 15, survivor)
    run.refresh_from_db()
    assert "has not been seen alive for 3s" in run.error
    # And the schedule goes on, with no gap: every second after the kill has its run.
    before = tick.runs.count()
    wait_until(lambda: tick.runs.count() >= before + 3, 10, survivor)
    assert fire_gaps(tick.runs.all()) == {1.0}
    assert survivor.stop() == 0


def test_repeated_kill_9_cycles_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    """The soak (scripts/soak.py) in small: kill -9 one of three schedulers again and again."""
    trace = tmp_path / "trace.txt"
    # A run cut off by a kill counts as RUNNING until the survivors notice (3 s): the fires
    # meanwhile must still run, not be recorded MISSED for max_instances. Without coalesce: a
    # restarted replica catches up from a next_run_time written a moment ago, and on a loaded
    # machine would fold a fire the others had not yet claimed into the next (recorded
    # "coalesced", which is that option's promise, not a loss; this test is about kills).
    tasks = traced_ticks(trace, "soak", 5, max_instances=10, coalesce=False)
    procs = [Proc(tmp_path / f"s{i}-0.log", settings=FAST_HEARTBEAT) for i in range(3)]
    for proc in procs:
        proc.wait_ready()
    killed = []
    for cycle in range(1, 5):
        victim = cycle % 3
        enough = 2 * cycle
        wait_until(partial(all_have_runs, tasks, enough), 20, procs[victim])
        killed.append(procs[victim].proc.pid)
        assert procs[victim].stop(signal.SIGKILL) == -signal.SIGKILL
        procs[victim] = Proc(tmp_path / f"s{victim}-{cycle}.log", settings=FAST_HEARTBEAT)
        procs[victim].wait_ready()
    before = {t.pk: t.runs.count() for t in tasks}
    wait_until(lambda: all(t.runs.count() >= before[t.pk] + 3 for t in tasks), 20)
    # The survivors must have recorded what the last kill cut off (after the 3 s heartbeat
    # timeout) before they stop: stopped too, nobody would until the next start.
    cut_off = TaskRun.objects.filter(task__in=tasks, status="RUNNING")
    wait_until(
        lambda: not any(cut_off.filter(worker_id__contains=f":{pid}:").exists() for pid in killed),
        20,
    )
    for proc in procs:
        assert proc.stop() == 0
    executed = traces(trace)
    for task in tasks:
        # Fires lost: none (every second from the first to the last has its record) ...
        gaps = fire_gaps(task.runs.all())
        assert gaps == {1.0}, f"{task.name}: gaps {sorted(gaps)}"
        # ... and executed at most once each: no more executions than runs that started.
        started = task.runs.filter(started_at__isnull=False).count()
        assert executed[task.name] <= started, f"{task.name}: {executed[task.name]} > {started}"
        odd = task.runs.exclude(status__in=["SUCCESSFUL", "INTERRUPTED"])
        assert not odd.exists(), list(odd.values_list("scheduled_for", "status", "error"))
