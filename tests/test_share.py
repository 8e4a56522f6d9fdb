"""Sharing the window: each task in exactly one part, the parts balanced, and a change of
part drops and takes over tasks without losing a fire. Real processes:
tests/test_share_processes.py."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import datetime, timedelta

import pytest
import time_machine
from django.db import DatabaseError

from django_tasks_sched.lifecycle import KEEP
from django_tasks_sched.models import Task, TaskRun
from django_tasks_sched.service.claims import Fire
from django_tasks_sched.service.executor import FiringExecutor, earlier
from django_tasks_sched.service.jobs import Jobs
from django_tasks_sched.service.reconcile import Reconciler, ReconcileResult
from django_tasks_sched.service.share import SPREAD, WHOLE, Share, share_of
from tests.factories import paused_jobs
from tests.test_window import MONDAY, WINDOW


def parts(count: int) -> list[Share]:
    return [Share(index, count) for index in range(count)]


@pytest.mark.parametrize("stride", [1, 2, 7, 60, 100, 1024])
@pytest.mark.parametrize("count", [2, 3, 5])
def test_the_parts_are_balanced_for_any_stride_of_ids(stride: int, count: int) -> None:
    """Busy tasks are often every n-th id (made in a loop): no part may get all of them."""
    ids = range(1, 1 + 3000 * stride, stride)
    sizes = Counter(
        index for index, part in enumerate(parts(count)) for pk in ids if part.holds(pk)
    )
    assert sum(sizes.values()) == len(ids)  # each id in exactly one part
    assert max(sizes.values()) <= 1.1 * len(ids) / count, sizes


def test_every_bucket_is_in_exactly_one_part() -> None:
    for count in range(1, 8):
        bounds = [part.bounds() for part in parts(count)]
        assert bounds[0][0] == 0
        assert bounds[-1][1] == SPREAD
        assert all(high == low for (_, high), (low, _) in itertools.pairwise(bounds))


def test_a_part_is_the_live_processes_in_id_order() -> None:
    live = ["scheduler:b", "scheduler:a", "scheduler:c"]
    assert share_of("scheduler:a", live) == Share(0, 3)
    assert share_of("scheduler:c", live) == Share(2, 3)
    assert share_of("scheduler:c", ["scheduler:c"]) == WHOLE
    # Its own row missing for a moment: it holds everything rather than nothing.
    assert share_of("scheduler:d", live) == WHOLE
    assert str(Share(1, 3)) == "part 2 of 3"
    assert str(WHOLE) == "all tasks"


@pytest.mark.django_db
def test_the_database_computes_the_same_parts_as_python() -> None:
    """The load reads a part in SQL, a recheck decides by id in Python: they must agree, for
    small, large and (forced in by raw SQL) negative primary keys, on every database."""
    ids = [*range(1, 40), 65535, 65536, 1 << 20, (1 << 20) + 7, 2**40 + 3, 2**62, -5, -(2**63)]
    Task.objects.bulk_create(
        Task(
            pk=pk,
            name=f"t{pk}",
            func="tests.testapp.jobs:noop",
            trigger="interval",
            trigger_config={"minutes": 1},
        )
        for pk in ids
    )
    for count in (1, 2, 3, 4):
        seen: list[int] = []
        for part in parts(count):
            in_sql = set(part.filter(Task.objects.all()).values_list("pk", flat=True))
            assert in_sql == {pk for pk in ids if part.holds(pk)}, (part, sorted(in_sql))
            seen += in_sql
        assert sorted(seen) == sorted(ids)


def make(name: str, **fields: object) -> Task:
    return Task.objects.create(
        name=name,
        func="tests.testapp.jobs:noop",
        trigger="interval",
        trigger_config={"minutes": 1},
        **fields,
    )


def held(jobs: Jobs) -> set[int]:
    return {int(job.id) for job in jobs.all()}


@pytest.mark.django_db
def test_two_parts_load_disjoint_tasks_that_cover_the_window() -> None:
    with time_machine.travel(MONDAY + timedelta(hours=8), tick=False):
        tasks = [make(f"t{n}") for n in range(40)]
        far = Task.objects.create(
            name="far", func="tests.testapp.jobs:noop", trigger="cron",
            trigger_config={"crontab": "0 0 1 1 *"},
        )  # fmt: skip
        loaded = []
        for part in parts(2):
            with paused_jobs() as jobs:
                Reconciler(jobs, window=WINDOW, share=part).load()
                loaded.append(held(jobs))
    assert loaded[0]
    assert loaded[1]
    assert not loaded[0] & loaded[1]
    assert loaded[0] | loaded[1] == {task.pk for task in tasks}
    assert far.pk not in loaded[0] | loaded[1]


@pytest.mark.django_db
def test_a_taken_over_part_catches_up_the_fires_its_holder_left(jobs: Jobs) -> None:
    """The other process died at 08:00 with its tasks' next fire (08:01) in the table: the
    process that takes its part over at 08:02:30 hands that fire over at once, as at start-up,
    and a fire beyond the grace time is recorded MISSED, never dropped."""
    start = MONDAY + timedelta(hours=8)
    with time_machine.travel(start, tick=False) as clock:
        tasks = [make(f"t{n}", misfire_grace_time=3600) for n in range(20)]
        mine = Share(0, 2)
        left = {task.pk for task in tasks if not mine.holds(task.pk)}
        assert left
        # One of them with a grace time shorter than the gap.
        strict = min(left)
        Task.objects.filter(pk=strict).update(misfire_grace_time=30)
        reconciler = Reconciler(jobs, window=WINDOW, share=mine)
        reconciler.load()
        assert not left & held(jobs)
        clock.move_to(start + timedelta(minutes=2, seconds=30))
        result = reconciler.reshare(WHOLE)
    assert held(jobs) == {task.pk for task in tasks}
    assert result.added == len(left)
    for task_id in left - {strict}:
        job = jobs.get(task_id)
        assert job is not None
        assert job.next_run_time == start + timedelta(minutes=1)  # the first fire it left
    # Beyond its grace time: recorded MISSED (by the executor), and it resumes in the grace.
    assert [(fire.task_id, fire.scheduled_for) for fire in result.missed] == [
        (strict, start + timedelta(minutes=1))
    ]
    job = jobs.get(strict)
    assert job is not None
    assert job.next_run_time == start + timedelta(minutes=2)


@pytest.mark.django_db
def test_a_smaller_part_hands_over_and_its_passes_leave_the_rest_alone(jobs: Jobs) -> None:
    with time_machine.travel(MONDAY + timedelta(hours=8), tick=True):
        tasks = [make(f"t{n}") for n in range(20)]
        reconciler = Reconciler(jobs, window=WINDOW)
        reconciler.load()
        assert held(jobs) == {task.pk for task in tasks}
        mine = Share(1, 2)
        # Next fires a pass queued for the table before the change: only ours are written.
        reconciler.pending_next_run = dict.fromkeys((task.pk for task in tasks), None)
        result = reconciler.reshare(mine)
        assert set(reconciler.pending_next_run) == {t.pk for t in tasks if mine.holds(t.pk)}
        ours = {task.pk for task in tasks if mine.holds(task.pk)}
        assert held(jobs) == ours == set(reconciler.known)
        assert result.moved == len(tasks) - len(ours)
        # Edits of the other part's tasks change nothing here: no job, no write.
        other = next(task for task in tasks if not mine.holds(task.pk))
        other.trigger_config = {"seconds": 30}
        other.save()
        stored = Task.objects.get(pk=other.pk).next_run_time
        reconciler.incremental()
        reconciler.full()
        # Read by id (as a recheck reads a row): dropped by the same rule, in Python.
        reconciler._apply_ids([other.pk], ReconcileResult())
        reconciler.flush_next_runs()
        assert held(jobs) == ours
        assert Task.objects.get(pk=other.pk).next_run_time == stored


@pytest.mark.django_db
def test_a_change_of_part_that_fails_is_tried_again(
    jobs: Jobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database went away halfway: the old part stands, so the next heartbeat sees a
    change again and loads the new part's tasks with their catch-up."""
    with time_machine.travel(MONDAY + timedelta(hours=8), tick=True):
        tasks = [make(f"t{n}") for n in range(10)]
        reconciler = Reconciler(jobs, window=WINDOW, share=Share(0, 2))
        reconciler.load()

        def away(*args: object, **kwargs: object) -> None:
            raise DatabaseError("server closed the connection")

        with monkeypatch.context() as patched:
            patched.setattr(reconciler, "_apply", away)
            with pytest.raises(DatabaseError):
                reconciler.reshare(WHOLE)
        assert reconciler.share == Share(0, 2)
        reconciler.reshare(WHOLE)
    assert held(jobs) == {task.pk for task in tasks}


def test_a_finished_run_keeps_a_fire_still_queued_as_its_task_next_fire() -> None:
    """The row's next_run_time is where a process taking the task over resumes: a fire of
    the task still waiting in the queue (APScheduler moved the job past it) must come first,
    or a process dying before it claims that fire would lose it."""
    queued, job_next = MONDAY + timedelta(minutes=1), MONDAY + timedelta(minutes=2)
    next_fires: dict[int, object] = {1: job_next, 2: job_next, 3: KEEP, 4: None}
    executor = FiringExecutor(
        "scheduler:test", 1, next_fire_time=next_fires.__getitem__, coalesces=lambda _: True
    )
    # Not started: no dispatcher thread takes the queue meanwhile.
    executor._fires.extend(Fire(task_id, queued, None) for task_id in (1, 3, 4))
    executor._fires.append(Fire(1, queued + timedelta(seconds=30), None))
    runs = [TaskRun(task_id=task_id, scheduled_for=MONDAY) for task_id in (1, 2, 3, 4)]
    run_now = TaskRun(task_id=1, scheduled_for=None)
    found = {run.task_id: when for run, when in executor._with_next_fires(runs)}
    assert found == {1: queued, 2: job_next, 3: KEEP, 4: queued}
    # A run-now's outcome never touches the row's next fire.
    assert executor._with_next_fires([run_now]) == [(run_now, KEEP)]
    assert earlier(job_next, None) == job_next
    assert earlier(queued, job_next) == queued


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("claimed", "record"),
    [
        # The old holder claimed 08:01 and 08:02, then died: the stretch is 08:03 and 08:04.
        (2, MONDAY + timedelta(hours=8, minutes=3)),
        # It claimed up to 08:04: nothing before the grace window was missed.
        (4, None),
        # It claimed nothing: the stretch starts at the stored 08:01.
        (0, MONDAY + timedelta(hours=8, minutes=1)),
    ],
)
def test_a_stretch_missed_past_the_grace_time_is_recorded_after_the_last_run(
    jobs: Jobs, claimed: int, record: datetime | None
) -> None:
    """A task whose outcomes do not move its row (a backend's), taken over at 08:05:30 with
    a 30 s grace time: the MISSED record that stands for the stretch must land on a fire with
    no run, or the claim's unique constraint drops it and the stretch has no record."""
    start = MONDAY + timedelta(hours=8)
    with time_machine.travel(start, tick=False) as clock:
        task = make("every minute", misfire_grace_time=30)
        for minute in range(1, claimed + 1):
            TaskRun.objects.create(
                task=task,
                scheduled_for=start + timedelta(minutes=minute),
                status=TaskRun.Status.SUCCESSFUL,
                worker_id="scheduler:gone",
            )
        mine = next(part for part in parts(2) if not part.holds(task.pk))
        reconciler = Reconciler(jobs, window=WINDOW, share=mine)
        reconciler.load()
        clock.move_to(start + timedelta(minutes=5, seconds=30))
        result = reconciler.reshare(WHOLE)
    assert [fire.scheduled_for for fire in result.missed] == ([record] if record else [])
    job = jobs.get(task.pk)
    assert job is not None
    assert job.next_run_time == start + timedelta(minutes=5)  # within the grace: caught up
