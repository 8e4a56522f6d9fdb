"""Task and TaskRun: next_run_time on save, fire previews, verbs, the run handle, constraints."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import time_machine
from django.db import IntegrityError, transaction

from django_tasks_sched import TaskRunFailed, TaskRunNotFinished
from django_tasks_sched.models import Task, TaskRun
from tests.factories import make_task as task

pytestmark = pytest.mark.django_db

UTC = timezone.utc
NOW = datetime(2030, 1, 1, 8, 0, tzinfo=UTC)  # a Tuesday


@pytest.fixture
def frozen() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


def run(job: Task, status: str = TaskRun.Status.QUEUED, **fields: Any) -> TaskRun:
    return TaskRun.objects.create(task=job, status=status, **fields)


# -- next_run_time --------------------------------------------------------------------------------


@pytest.mark.usefixtures("frozen")
class TestNextRunTime:
    def test_interval(self) -> None:
        job = task()
        assert job.next_run_time is not None
        assert NOW < job.next_run_time <= NOW + timedelta(minutes=5)
        job.refresh_from_db()
        assert NOW < job.next_run_time <= NOW + timedelta(minutes=5)

    def test_interval_with_start_date(self) -> None:
        config = {"minutes": 15, "start_date": "2029-12-31T00:05:00+00:00"}
        assert task(trigger_config=config).next_run_time == NOW + timedelta(minutes=5)

    def test_cron_fields(self) -> None:
        job = task(trigger="cron", trigger_config={"hour": 9, "minute": 30})
        assert job.next_run_time == datetime(2030, 1, 1, 9, 30, tzinfo=UTC)

    def test_crontab_in_a_time_zone(self) -> None:
        job = task(
            trigger="cron", trigger_config={"crontab": "0 10 * * *", "timezone": "Europe/Berlin"}
        )
        assert job.next_run_time == datetime(2030, 1, 1, 9, 0, tzinfo=UTC)  # CET is UTC+1

    def test_crontab_weekdays(self) -> None:
        # Friday 2030-01-04 17:00 is the last weekday slot this week; Monday 09:00 the next.
        config = {"crontab": "0 9-17 * * mon-fri"}
        with time_machine.travel(datetime(2030, 1, 4, 17, 30, tzinfo=UTC), tick=False):
            job = task(trigger="cron", trigger_config=config)
        assert job.next_run_time == datetime(2030, 1, 7, 9, 0, tzinfo=UTC)

    def test_date_in_the_future(self) -> None:
        job = task(trigger="date", trigger_config={"run_date": "2030-01-02T12:00:00+00:00"})
        assert job.next_run_time == datetime(2030, 1, 2, 12, tzinfo=UTC)

    def test_naive_date_is_read_in_time_zone(self) -> None:
        config = {"run_date": "2030-01-02T12:00:00", "timezone": "America/New_York"}
        job = task(trigger="date", trigger_config=config)
        assert job.next_run_time == datetime(2030, 1, 2, 17, tzinfo=UTC)

    def test_date_in_the_past_is_none(self) -> None:
        job = task(trigger="date", trigger_config={"run_date": "2020-01-01T00:00:00+00:00"})
        assert job.next_run_time is None

    def test_inactive_is_none(self) -> None:
        assert task(active=False).next_run_time is None

    def test_invalid_schedule_saves_with_none(self) -> None:
        # Rows can skip full_clean(); saving must not fail, the scheduler reports it later.
        assert task(trigger_config={"minutes": 0}).next_run_time is None

    def test_update_fields_active_recomputes(self) -> None:
        job = task(active=False)
        job.active = True
        job.save(update_fields=["active"])
        job.refresh_from_db()
        assert job.next_run_time is not None

    def test_update_fields_trigger_config_recomputes(self) -> None:
        job = task(trigger="cron", trigger_config={"hour": 9, "minute": 0})
        job.trigger_config = {"hour": 10, "minute": 0}
        job.save(update_fields=["trigger_config"])
        job.refresh_from_db()
        assert job.next_run_time == datetime(2030, 1, 1, 10, tzinfo=UTC)

    def test_unrelated_update_fields_leave_it_alone(self) -> None:
        job = task()
        sentinel = datetime(2031, 1, 1, tzinfo=UTC)
        Task.objects.filter(pk=job.pk).update(next_run_time=sentinel)
        job.refresh_from_db()
        job.description = "changed"
        job.save(update_fields=["description"])
        job.refresh_from_db()
        assert job.next_run_time == sentinel

    def test_pause_and_resume(self) -> None:
        job = task(inactive_reason="", consecutive_failures=0)
        job.pause()
        job.refresh_from_db()
        assert job.active is False
        assert job.next_run_time is None
        Task.objects.filter(pk=job.pk).update(inactive_reason="too many failures")
        Task.objects.filter(pk=job.pk).update(consecutive_failures=5)
        job.refresh_from_db()
        job.resume()
        job.refresh_from_db()
        assert job.active is True
        assert job.next_run_time is not None
        assert job.inactive_reason == ""
        assert job.consecutive_failures == 0


# -- next_fire_times ------------------------------------------------------------------------------


@pytest.mark.usefixtures("frozen")
class TestNextFireTimes:
    def test_interval_after(self) -> None:
        job = task(trigger_config={"minutes": 15, "start_date": "2030-01-01T00:00:00+00:00"})
        after = datetime(2030, 1, 1, 0, 20, tzinfo=UTC)
        assert job.next_fire_times(count=3, after=after) == [
            datetime(2030, 1, 1, 0, 30, tzinfo=UTC),
            datetime(2030, 1, 1, 0, 45, tzinfo=UTC),
            datetime(2030, 1, 1, 1, 0, tzinfo=UTC),
        ]

    def test_defaults_to_five_after_now(self) -> None:
        times = task(trigger="cron", trigger_config={"crontab": "@daily"}).next_fire_times()
        assert times == [datetime(2030, 1, d, tzinfo=UTC) for d in range(2, 7)]
        assert all(t.tzinfo is not None for t in times)

    def test_cron_both_day_fields_fire_on_either(self) -> None:
        # cron's rule: day-of-month 1 OR Sunday (0). Jan 2030: Sundays are the 6th, 13th ...
        job = task(trigger="cron", trigger_config={"crontab": "0 0 1 * 0"})
        times = job.next_fire_times(count=3, after=NOW)
        assert [t.day for t in times] == [6, 13, 20]

    def test_date_fires_once(self) -> None:
        job = task(trigger="date", trigger_config={"run_date": "2030-01-02T00:00:00+00:00"})
        assert job.next_fire_times(count=5) == [datetime(2030, 1, 2, tzinfo=UTC)]
        assert job.next_fire_times(after=datetime(2030, 1, 3, tzinfo=UTC)) == []

    def test_end_date_stops_the_list(self) -> None:
        config = {"hours": 1, "start_date": "2030-01-01T08:30:00Z", "end_date": "2030-01-01T10:00Z"}
        times = task(trigger_config=config).next_fire_times(count=10)
        assert times == [datetime(2030, 1, 1, h, 30, tzinfo=UTC) for h in (8, 9)]


# -- run_now and the run handle -------------------------------------------------------------------


def test_run_now_queues_a_manual_run() -> None:
    job = task()
    queued = job.run_now()
    assert queued.pk is not None
    assert queued.status == TaskRun.Status.QUEUED
    assert queued.origin == TaskRun.Origin.MANUAL
    assert queued.scheduled_for is None
    assert list(job.runs.all()) == [queued]
    assert not queued.is_done()


def test_status_values_equal_their_names() -> None:
    assert [s.value for s in TaskRun.Status] == [s.name for s in TaskRun.Status]
    assert set(TaskRun.Status.names) == {
        "QUEUED",
        "RUNNING",
        "SUCCESSFUL",
        "FAILED",
        "TIMED_OUT",
        "MISSED",
        "CANCELLED",
        "INTERRUPTED",
    }


@pytest.mark.parametrize(
    ("status", "done"),
    [
        (TaskRun.Status.QUEUED, False),
        (TaskRun.Status.RUNNING, False),
        (TaskRun.Status.SUCCESSFUL, True),
        (TaskRun.Status.FAILED, True),
        (TaskRun.Status.TIMED_OUT, True),
        (TaskRun.Status.MISSED, True),
        (TaskRun.Status.CANCELLED, True),
        (TaskRun.Status.INTERRUPTED, True),
    ],
)
def test_is_done(status: str, done: bool) -> None:
    assert run(task(), status).is_done() is done


def test_result_of_a_successful_run() -> None:
    finished = run(task(), TaskRun.Status.SUCCESSFUL, return_value={"rows": 3})
    finished.refresh_from_db()
    assert finished.result() == {"rows": 3}


@pytest.mark.parametrize(
    "status", [TaskRun.Status.FAILED, TaskRun.Status.TIMED_OUT, TaskRun.Status.INTERRUPTED]
)
def test_result_of_a_failed_run_raises(status: str) -> None:
    failed = run(task(), status, error="RuntimeError: boom")
    with pytest.raises(TaskRunFailed, match="RuntimeError: boom"):
        failed.result()


@pytest.mark.parametrize("status", [TaskRun.Status.QUEUED, TaskRun.Status.RUNNING])
def test_result_of_an_unfinished_run_raises(status: str) -> None:
    with pytest.raises(TaskRunNotFinished):
        run(task(), status).result()


def test_cancel_a_queued_run() -> None:
    queued = task().run_now()
    assert queued.cancel() is True
    assert queued.status == TaskRun.Status.CANCELLED
    assert queued.finished_at is not None
    queued.refresh_from_db()
    assert queued.status == TaskRun.Status.CANCELLED
    assert queued.is_done()


@pytest.mark.parametrize(
    "status", [TaskRun.Status.SUCCESSFUL, TaskRun.Status.FAILED, TaskRun.Status.RUNNING]
)
def test_cancel_leaves_a_started_or_finished_run_alone(status: str) -> None:
    finished_at = datetime(2030, 1, 1, tzinfo=UTC)
    other = run(task(), status, finished_at=finished_at, return_value=1)
    assert other.cancel() is False
    other.refresh_from_db()
    assert other.status == status
    assert other.finished_at == finished_at
    assert other.return_value == 1


def test_wait_returns_a_finished_run() -> None:
    finished = run(task(), TaskRun.Status.SUCCESSFUL)
    assert finished.wait(timeout=1) is finished


def test_wait_times_out_on_a_queued_run() -> None:
    with pytest.raises(TimeoutError):
        task().run_now().wait(timeout=0.05, poll_interval=0.01)


def test_duration() -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC)
    timed = run(task(), TaskRun.Status.SUCCESSFUL, started_at=start)
    assert timed.duration is None
    timed.finished_at = start + timedelta(seconds=3)
    assert timed.duration == timedelta(seconds=3)


# -- constraints, querysets, str -----------------------------------------------------------------


def test_one_run_per_fire() -> None:
    job = task()
    fire = datetime(2030, 1, 1, 9, tzinfo=UTC)
    run(job, scheduled_for=fire)
    with pytest.raises(IntegrityError), transaction.atomic():
        run(job, scheduled_for=fire)
    assert job.runs.count() == 1


def test_manual_runs_and_other_tasks_do_not_collide() -> None:
    job, other = task("a"), task("b")
    fire = datetime(2030, 1, 1, 9, tzinfo=UTC)
    run(job, scheduled_for=fire)
    run(other, scheduled_for=fire)
    run(job, scheduled_for=fire + timedelta(minutes=5))
    job.run_now()
    job.run_now()
    assert job.runs.count() == 4
    assert job.runs.filter(scheduled_for__isnull=True).count() == 2


def test_deleting_a_task_deletes_its_runs() -> None:
    job = task()
    job.run_now()
    run(job, TaskRun.Status.SUCCESSFUL)
    job.delete()
    assert TaskRun.objects.count() == 0


def test_querysets() -> None:
    on, off = task("on"), task("off", active=False)
    assert list(Task.objects.active()) == [on]
    assert list(Task.objects.inactive()) == [off]
    queued, running = on.run_now(), run(on, TaskRun.Status.RUNNING)
    done = run(on, TaskRun.Status.MISSED)
    assert list(TaskRun.objects.queued()) == [queued]
    assert list(TaskRun.objects.running()) == [running]
    assert list(TaskRun.objects.finished()) == [done]


def test_str() -> None:
    job = task("nightly-report")
    assert str(job) == "nightly-report"
    fired = run(job, scheduled_for=datetime(2030, 1, 1, 9, 30, tzinfo=UTC))
    assert str(fired) == "nightly-report @ 2030-01-01 09:30:00 UTC (Queued)"
    manual = run(job, TaskRun.Status.FAILED, enqueued_at=datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert str(manual) == "nightly-report @ 2030-01-02 03:04:05 UTC (Failed)"
    retry = run(job, TaskRun.Status.QUEUED, attempt=2, first_attempt=manual)
    assert str(retry).endswith(", attempt 2 (Queued)")
