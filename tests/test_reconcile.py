"""The reconciler in-process: the start-up load, full passes over raw SQL, the display column."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
from django.db import connection

from django_tasks_sched.models import Task, TaskRun
from django_tasks_sched.service.guard import GuardedTrigger
from django_tasks_sched.service.jitter import DeterministicJitter
from django_tasks_sched.service.reconcile import Reconciler
from tests.factories import paused_jobs

pytestmark = pytest.mark.django_db

NIGHTLY = {"crontab": "30 2 * * *", "timezone": "Europe/Berlin"}


@pytest.fixture
def reconciler() -> Iterator[Reconciler]:
    # A window of a year holds every task here: these tests are about the passes, not the
    # window (tests/test_window.py).
    with paused_jobs() as jobs:
        yield Reconciler(jobs, window=timedelta(days=366))


def make(name: str, trigger: str = "cron", config: object = NIGHTLY, **fields: object) -> Task:
    return Task.objects.create(
        name=name, func="tests.testapp.jobs:noop", trigger=trigger, trigger_config=config, **fields
    )


def job_of(reconciler: Reconciler, task: Task) -> object:
    return reconciler.jobs.get(task.pk)


def test_load_shares_one_trigger_per_schedule_and_orders_the_store(reconciler: Reconciler) -> None:
    first, second = make("a"), make("b")
    jittered = [make(name, config={**NIGHTLY, "jitter": 30}) for name in "cd"]
    every = make("e", "interval", {"minutes": 5})
    off = make("f", active=False)
    result = reconciler.load()
    assert (result.added, result.changed, result.removed) == (5, 0, 0)
    a, b, c, d = (job_of(reconciler, task) for task in (first, second, *jittered))
    # Each job's trigger is guarded on its own (see service.guard); what it guards is shared.
    assert all(isinstance(job.trigger, GuardedTrigger) for job in (a, b, c, d))  # type: ignore[attr-defined]
    assert a.trigger.inner is b.trigger.inner  # type: ignore[attr-defined]
    # Jitter is each task's own (it holds state); what it wraps is shared.
    c_jitter, d_jitter = c.trigger.inner, d.trigger.inner  # type: ignore[attr-defined]
    assert isinstance(c_jitter, DeterministicJitter)
    assert c_jitter is not d_jitter
    assert c_jitter.inner is d_jitter.inner
    assert job_of(reconciler, off) is None
    # The interval counts from the task's creation, as every other process would.
    job = job_of(reconciler, every)
    assert job.next_run_time > every.created_at  # type: ignore[attr-defined]
    assert (job.next_run_time - every.created_at.replace(microsecond=0)) % timedelta(  # type: ignore[attr-defined]
        minutes=5
    ) == timedelta(0)
    times = [job.next_run_time for job in reconciler.jobs.all()]
    assert times == sorted(times)
    # What save() stored as next_run_time agrees, but for jitter (save() stores the nominal
    # time): only those are written back.
    assert set(reconciler.pending_next_run) == {task.pk for task in jittered}


def test_a_full_pass_sees_raw_sql_that_left_updated_at_alone(reconciler: Reconciler) -> None:
    task = make("nightly")
    Task.objects.filter(pk=task.pk).update_quietly(updated_at=task.updated_at - timedelta(hours=1))
    task.refresh_from_db()
    reconciler.load()
    table = Task._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET trigger_config = %s WHERE id = %s",
            ['{"crontab": "0 12 * * *", "timezone": "UTC"}', task.pk],
        )
    assert not reconciler.incremental()
    result = reconciler.full()
    assert (result.added, result.changed, result.removed) == (0, 1, 0)
    job = job_of(reconciler, task)
    assert (job.next_run_time.hour, job.next_run_time.minute) == (12, 0)  # type: ignore[attr-defined]
    # The display column follows, written without moving updated_at.
    reconciler.flush_next_runs()
    stored = Task.objects.get(pk=task.pk)
    assert stored.next_run_time == job.next_run_time  # type: ignore[attr-defined]
    assert stored.updated_at == task.updated_at
    # Unchanged rows cost nothing on the next pass.
    assert not reconciler.full()


def test_a_full_pass_drops_deleted_and_deactivated_tasks(reconciler: Reconciler) -> None:
    gone, off = make("gone"), make("off")
    reconciler.load()
    Task.objects.filter(pk=gone.pk).delete()
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Task._meta.db_table} SET active = %s WHERE id = %s", [False, off.pk]
        )
    result = reconciler.full()
    assert result.removed == 2
    assert reconciler.jobs.all() == []


def test_an_invalid_row_is_not_scheduled(
    reconciler: Reconciler, caplog: pytest.LogCaptureFixture
) -> None:
    good = make("good")
    bad = make("bad")
    Task.objects.filter(pk=bad.pk).update(trigger_config={"crontab": "61 * * * *"})
    reconciler.load()
    assert job_of(reconciler, good) is not None
    assert job_of(reconciler, bad) is None
    assert "is not scheduled" in caplog.text


def test_a_date_in_the_past_still_fires_once(reconciler: Reconciler) -> None:
    past = datetime(2020, 1, 1, tzinfo=dt_timezone.utc)
    task = make("late", "date", {"run_date": past.isoformat()})
    reconciler.load()
    # APScheduler fires it at once; the claim then applies the misfire grace time.
    assert job_of(reconciler, task).next_run_time == past  # type: ignore[attr-defined]


class _Raising:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def get_next_fire_time(self, previous: object, now: object) -> None:
        raise self.error


def test_a_trigger_that_raises_ends_its_own_job_and_says_so_once() -> None:
    task = make("broken")
    guarded = GuardedTrigger(_Raising(RuntimeError("boom")), task.pk)
    now = datetime.now(dt_timezone.utc)
    assert guarded.get_next_fire_time(None, now) is None
    assert guarded.get_next_fire_time(None, now) is None  # asked again: no second record
    (run,) = TaskRun.objects.filter(task=task)
    assert run.status == TaskRun.Status.FAILED
    assert run.error.startswith("Not scheduled: its schedule failed: RuntimeError: boom")


def test_a_trigger_past_the_year_9999_just_ends() -> None:
    task = make("ancient")
    guarded = GuardedTrigger(_Raising(OverflowError("date value out of range")), task.pk)
    assert guarded.get_next_fire_time(None, datetime.now(dt_timezone.utc)) is None
    assert not TaskRun.objects.filter(task=task).exists()


@pytest.mark.parametrize(
    ("trigger", "config"),
    [
        ("interval", {"minutes": 5, "start_date": "2026-01-01T00:00:00+00:00"}),
        ("cron", {"minute": "*/5", "timezone": "UTC"}),
    ],
)
def test_jitter_never_moves_a_fire_past_the_end_date(
    trigger: str, config: dict[str, object]
) -> None:
    from django_tasks_sched.triggers import build_trigger

    end = datetime(2026, 1, 1, 0, 10, tzinfo=dt_timezone.utc)
    inner = build_trigger(trigger, {**config, "end_date": end.isoformat()})
    jittered = DeterministicJitter(inner, 3600, seed=1)
    fire = jittered.get_next_fire_time(None, end - timedelta(seconds=1))
    assert fire == end  # the nominal fire is the end itself; an hour of jitter cannot pass it
    start = datetime(2026, 1, 1, tzinfo=dt_timezone.utc)
    fires: list[datetime] = []
    fire = jittered.get_next_fire_time(None, start)
    while fire is not None and len(fires) < 10:
        fires.append(fire)
        fire = jittered.get_next_fire_time(fire, fire)
    assert fires
    assert all(fire <= end for fire in fires)
