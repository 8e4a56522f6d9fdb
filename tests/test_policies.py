"""Schedule policies with real ``runscheduler`` processes: overlap, remaining runs, @reboot,
backfill and catch-up, three schedulers at once where the policy is about several of them."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from django_tasks_sched.firing import switch_firing
from django_tasks_sched.models import Task, TaskRun
from django_tasks_sched.service.claims import NO_RUNS_LEFT
from tests.history import fire_gaps, runs_overlapped, started_in_fire_order
from tests.processes import FAST_HEARTBEAT, wait_until
from tests.processes import SchedulerProcess as Proc

pytestmark = pytest.mark.django_db(transaction=True)


def start(tmp_path: Path, count: int, **settings: Any) -> list[Proc]:
    procs = [
        Proc(tmp_path / f"s{i}.log", settings={**FAST_HEARTBEAT, **settings}) for i in range(count)
    ]
    for proc in procs:
        proc.wait_ready()
    return procs


@pytest.fixture
def three(tmp_path: Path) -> Iterator[list[Proc]]:
    procs = start(tmp_path, 3)
    yield procs
    for proc in procs:
        assert proc.stop() == 0


def spans(trace: Path) -> tuple[Counter[int], Counter[int]]:
    """How often each run's call started and ended, from a ``trace_span`` file."""
    lines = trace.read_text().split() if trace.exists() else []
    events: dict[str, Counter[int]] = {"start": Counter(), "end": Counter()}
    for event, run_id in zip(lines[::2], lines[1::2], strict=True):
        events[event][int(run_id)] += 1
    return events["start"], events["end"]


def slow_ticks(trace: Path, seconds: float, **fields: Any) -> Task:
    """A task firing every second whose run takes ``seconds``: its fires overlap."""
    return Task.objects.create(
        name="slow",
        func="tests.testapp.jobs:trace_span",
        args=[str(trace), seconds],
        trigger="interval",
        trigger_config={"seconds": 1},
        misfire_grace_time=60,
        **fields,
    )


def drained(task: Task) -> bool:
    return not task.runs.filter(status__in=["QUEUED", "RUNNING"]).exists()


def waits(task: Task) -> list[tuple[Any, Any]]:
    """The spans during which fires of ``task`` waited for a slot: claimed, and called more
    than a second later (a claimed fire's call follows its claim within milliseconds; a
    buffered one of ``slow_ticks(2.5)`` waits at least 1.5 s)."""
    runs = task.runs.filter(started_at__isnull=False).order_by("enqueued_at")
    late = timedelta(seconds=1)
    return [
        (r.enqueued_at, r.started_at)
        for r in runs
        if r.started_at is not None and r.started_at - r.enqueued_at > late
    ]


@pytest.mark.parametrize("overlap", ["skip", "buffer_one", "buffer_all"])
def test_overlap_policies_across_three_schedulers(
    tmp_path: Path, three: list[Proc], overlap: str
) -> None:
    trace = tmp_path / "trace.txt"
    task = slow_ticks(trace, 2.5, overlap=overlap)
    wait_until(lambda: task.runs.count() >= 6, 30, three[0])
    task.pause("enough")
    wait_until(lambda: drained(task), 40, three[0])
    # One run at a time across the three processes, each call made once, and the ones that
    # waited started in the order of their fire times.
    assert not runs_overlapped(task)
    started, ended = spans(trace)
    ran = task.runs.filter(started_at__isnull=False)
    assert set(started) == set(ran.values_list("pk", flat=True))
    assert set(started.values()) == {1}
    assert started == ended
    assert started_in_fire_order(ran)
    missed = list(task.runs.filter(status="MISSED").values_list("error", flat=True))
    if overlap == "skip":
        assert missed
        assert all("max_instances reached" in error for error in missed)
        assert not waits(task)  # nothing waited: a fire ran at once or not at all
    elif overlap == "buffer_one":
        assert missed
        assert all("a fire already waits" in error for error in missed)
        assert waits(task)
        # Never two waiting at once.
        for (_, first_started), (second_claimed, _) in itertools.pairwise(waits(task)):
            assert second_claimed >= first_started
    else:
        assert not missed  # every fire ran, in order, one after another
        assert fire_gaps(task.runs.all()) == {1.0}
        assert set(task.runs.values_list("status", flat=True)) == {"SUCCESSFUL"}


@pytest.mark.parametrize("executor", ["process", "thread"])
def test_cancel_other_replaces_the_running_run(tmp_path: Path, executor: str) -> None:
    trace = tmp_path / "trace.txt"
    procs = start(tmp_path, 3, EXECUTOR=executor, THREADS=2)
    try:
        task = Task.objects.create(
            name="replaced",
            func="tests.testapp.jobs:trace_span",
            args=[str(trace), 3],
            trigger="interval",
            trigger_config={"seconds": 2},
            overlap="cancel_other",
        )
        # Replaced while it ran (its call had started): a run cancelled while it still waited
        # for a thread or a worker process (one being started again, under load) is never
        # called, and replaces nothing running.
        wait_until(lambda: cancelled_calls(task, trace), 30, procs[0])
        task.pause()
        wait_until(lambda: drained(task), 30, procs[0])
        # The last run was replaced by nothing: it ran to its end, and so did any call of a
        # cancelled run that was going to (its record stays CANCELLED).
        last = task.runs.filter(status="SUCCESSFUL").latest("scheduled_for")
        wait_until(lambda: spans(trace)[1][last.pk] == 1, 10, procs[0])
    finally:
        for proc in procs:
            assert proc.stop() == 0
    cancelled = task.runs.filter(status="CANCELLED")
    assert all("replaced it (overlap cancel_other)" in run.error for run in cancelled)
    assert not runs_overlapped(task)  # by the record: each ended when the next started
    _, ended = spans(trace)
    called = cancelled_calls(task, trace)
    assert called
    if executor == "process":
        # Stopped for real: its worker process was killed before the call could end.
        assert not called & set(ended)
    else:
        # A thread cannot be stopped: the calls went on to their end (see docs/policies.md).
        assert called <= set(ended)


def cancelled_calls(task: Task, trace: Path) -> set[int]:
    """The task's CANCELLED runs whose call had started."""
    started, _ = spans(trace)
    return set(task.runs.filter(status="CANCELLED").values_list("pk", flat=True)) & set(started)


def test_remaining_runs_are_used_once_across_three_schedulers(three: list[Proc]) -> None:
    task = Task.objects.create(
        name="thrice",
        func="tests.testapp.jobs:noop",
        trigger="interval",
        trigger_config={"seconds": 1},
        remaining_runs=3,
    )
    wait_until(lambda: not Task.objects.get(pk=task.pk).active, 20, three[0])
    wait_until(lambda: drained(task), 10, three[0])
    task.refresh_from_db()
    assert (task.remaining_runs, task.inactive_reason, task.paused_by) == (0, NO_RUNS_LEFT, "")
    assert task.next_run_time is None
    assert task.runs.filter(status="SUCCESSFUL").count() == 3
    assert fire_gaps(task.runs.all()) == {1.0}


def test_reboot_fires_once_per_start_of_scheduling(tmp_path: Path) -> None:
    task = Task.objects.create(
        name="on-start",
        func="tests.testapp.jobs:noop",
        trigger="cron",
        trigger_config={"crontab": "@reboot"},
    )
    assert task.next_run_time is None
    # Three replicas starting together: one start of scheduling, one run.
    procs = [Proc(tmp_path / f"a{i}.log", settings=FAST_HEARTBEAT) for i in range(3)]
    for proc in procs:
        proc.wait_ready()
    wait_until(lambda: task.runs.filter(status="SUCCESSFUL").count() == 1, 10, procs[0])
    # A replica joining live ones starts nothing.
    joiner = Proc(tmp_path / "joiner.log", settings=FAST_HEARTBEAT)
    joiner.wait_ready()
    for proc in [*procs, joiner]:
        assert proc.stop() == 0
    assert task.runs.count() == 1
    # All stopped gracefully: the next start is a start of scheduling again.
    again = Proc(tmp_path / "again.log", settings=FAST_HEARTBEAT)
    again.wait_ready()
    wait_until(lambda: task.runs.filter(status="SUCCESSFUL").count() == 2, 10, again)
    assert again.stop() == 0
    assert all(run.origin == "SCHEDULE" for run in task.runs.all())


@pytest.mark.parametrize("edit", ["save", "update", "stale"])
def test_a_task_edited_to_reboot_fires_at_the_next_start(tmp_path: Path, edit: str) -> None:
    task = Task.objects.create(
        name="was-daily",
        func="tests.testapp.jobs:noop",
        trigger="cron",
        trigger_config={"crontab": "0 3 * * *"},
    )
    assert task.next_run_time is not None
    if edit == "save":
        task.trigger_config = {"crontab": "@reboot"}
        task.save()
    elif edit == "update":
        Task.objects.filter(pk=task.pk).update(trigger_config={"crontab": "@reboot"})
    else:
        # The column set by hand to a past time, as a resume point stored at a stop leaves
        # it: the start's load clears it, and the @reboot lookup takes past times too.
        Task.objects.filter(pk=task.pk).update(
            trigger_config={"crontab": "@reboot"}, next_run_time=timezone.now()
        )
    task.refresh_from_db()
    assert (task.next_run_time is None) == (edit != "stale")
    proc = Proc(tmp_path / "s.log", settings=FAST_HEARTBEAT)
    proc.wait_ready()
    wait_until(lambda: task.runs.filter(status="SUCCESSFUL").count() == 1, 10, proc)
    assert proc.stop() == 0
    task.refresh_from_db()
    assert task.next_run_time is None


def test_backfill_runs_each_past_fire_once_in_order(tmp_path: Path) -> None:
    trace = tmp_path / "trace.txt"
    task = Task.objects.create(
        name="every-ten",
        func="tests.testapp.jobs:trace_span",
        args=[str(trace), 0.2],
        trigger="cron",
        trigger_config={"crontab": "*/10 * * * *"},
        misfire_grace_time=1,
    )
    end = timezone.now().replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(hours=2)
    runs = task.backfill(start, end)
    assert len(runs) == 12
    assert all(run.buffered and run.origin == "BACKFILL" for run in runs)
    assert task.backfill(start, end) == []  # each fire once, however often it is asked
    procs = [Proc(tmp_path / f"s{i}.log") for i in range(2)]
    for proc in procs:
        proc.wait_ready()
    try:
        wait_until(lambda: task.runs.filter(status="SUCCESSFUL").count() == 12, 30, procs[0])
    finally:
        for proc in procs:
            assert proc.stop() == 0
    # Hours past the misfire grace time of 1 s, each ran, once, one after another, in order.
    ran = task.runs.filter(origin="BACKFILL")
    assert started_in_fire_order(ran)
    assert ran.count() == 12
    started, _ = spans(trace)
    assert sorted(started) == sorted(ran.values_list("pk", flat=True))
    assert set(started.values()) == {1}
    assert not runs_overlapped(task)
    # A wider range adds only the fire times that have no run yet.
    wider = task.backfill(start - timedelta(minutes=30), end)
    assert [run.scheduled_for for run in wider] == [
        start - timedelta(minutes=minutes) for minutes in (30, 20, 10)
    ]


def test_catch_up_without_coalescing_runs_every_missed_fire_in_order(tmp_path: Path) -> None:
    first = Proc(tmp_path / "first.log")
    first.wait_ready()
    task = Task.objects.create(
        name="steady",
        func="tests.testapp.jobs:sleep",
        args=[0.3],
        trigger="interval",
        trigger_config={"seconds": 1},
        coalesce=False,
        misfire_grace_time=60,
    )
    wait_until(lambda: task.runs.filter(status="SUCCESSFUL").count() >= 2, 10, first)
    assert first.stop() == 0
    stopped = timezone.now()
    # Three or four fires come due with no scheduler up: wait for them on the clock.
    wait_until(lambda: timezone.now() >= stopped + timedelta(seconds=3.5), 10)
    before = task.runs.count()
    last_fire = task.runs.latest("scheduled_for").scheduled_for
    restarted = timezone.now()
    second = Proc(tmp_path / "second.log")
    try:
        second.wait_ready()
        wait_until(lambda: task.runs.filter(status="SUCCESSFUL").count() >= before + 5, 15, second)
    finally:
        assert second.stop() == 0
    # With max_instances=1: every fire of the downtime ran, one after another, in order. (A
    # fire that comes due while the last of them runs meets the overlap policy, skip here.)
    downtime = task.runs.filter(scheduled_for__gt=last_fire, scheduled_for__lte=restarted)
    assert downtime.count() >= 3
    assert set(downtime.values_list("status", flat=True)) == {"SUCCESSFUL"}
    assert fire_gaps(task.runs.all()) == {1.0}
    assert not runs_overlapped(task)
    assert started_in_fire_order(task.runs.all())


def test_a_run_requested_respecting_overlap_waits_its_turn(three: list[Proc]) -> None:
    task = Task.objects.create(
        name="manual",
        func="tests.testapp.jobs:sleep",
        args=[1],
        trigger="date",
        trigger_config={"run_date": "2099-01-01T00:00:00"},
        overlap="buffer_all",
    )
    runs = [task.run_now(respect_overlap=True) for _ in range(3)]
    for run in runs:
        run.wait(timeout=30)
        assert run.status == TaskRun.Status.SUCCESSFUL
    assert not runs_overlapped(task)
    task.overlap = "skip"
    task.save()
    first = task.run_now(respect_overlap=True)
    wait_until(lambda: TaskRun.objects.get(pk=first.pk).status == "RUNNING", 10, three[0])
    skipped = task.run_now(respect_overlap=True)
    assert skipped.status == TaskRun.Status.MISSED
    assert "max_instances reached" in skipped.error
    # Overriding the policy (the default) runs it beside the running one.
    beside = task.run_now()
    beside.wait(timeout=30)
    first.wait(timeout=30)
    assert runs_overlapped(task)


def test_reboot_while_firing_is_paused_fires_once_at_the_resume(tmp_path: Path) -> None:
    task = Task.objects.create(
        name="on-start",
        func="tests.testapp.jobs:noop",
        trigger="cron",
        trigger_config={"crontab": "@reboot"},
    )
    switch_firing(False, "test")
    proc = Proc(tmp_path / "paused.log", settings=FAST_HEARTBEAT)
    try:
        proc.wait_ready()
        assert "Firing is paused" in proc.output()
        switch_firing(True, "test")
        wait_until(lambda: task.runs.filter(status="SUCCESSFUL").exists(), 10, proc)
        wait_until(lambda: "Firing resumed" in proc.output(), 10, proc)
    finally:
        assert proc.stop() == 0
    assert task.runs.count() == 1
