"""The window in-process: only tasks firing soon have jobs, and none is missed at its edges.

Time is moved with time-machine and fires are played the way APScheduler plays them (the job's
next fire moves to its trigger's next), so each edge is hit exactly. Real processes:
tests/test_window_processes.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
import time_machine
from django.db import connection

from django_tasks_sched.models import Task
from django_tasks_sched.service import reconcile
from django_tasks_sched.service.claims import Fire
from django_tasks_sched.service.jobs import Jobs
from django_tasks_sched.service.reboot import reboot_fires
from django_tasks_sched.service.reconcile import Reconciler
from django_tasks_sched.summaries import KEEP
from django_tasks_sched.triggers import next_fire_times

pytestmark = pytest.mark.django_db

UTC = dt_timezone.utc
#: 2024-06-03 00:00 UTC, a Monday far from any daylight saving change.
MONDAY = datetime(2024, 6, 3, tzinfo=UTC)
WINDOW = timedelta(minutes=10)


def make(name: str, trigger: str, config: object, **fields: object) -> Task:
    return Task.objects.create(
        name=name, func="tests.testapp.jobs:noop", trigger=trigger, trigger_config=config, **fields
    )


def loaded(jobs: Jobs) -> set[str]:
    return {Task.objects.get(pk=int(job.id)).name for job in jobs.all()}


def fire(jobs: Jobs, task: Task) -> datetime:
    """Play the task's due fire as APScheduler does: its job moves to the next fire time."""
    job = jobs.get(task.pk)
    assert job is not None, f"{task.name} has no job at its fire"
    fired = job.next_run_time
    now = datetime.now(UTC)
    assert fired <= now, f"{task.name} is not due: {fired} > {now}"
    job._modify(next_run_time=job.trigger.get_next_fire_time(fired, now))
    jobs.store.update_job(job)
    return fired


def fire_due(jobs: Jobs, task: Task, now: datetime) -> list[datetime]:
    """Play every fire of the task due by ``now``."""
    fired = []
    while (job := jobs.get(task.pk)) is not None and job.next_run_time <= now:
        fired.append(fire(jobs, task))
    return fired


def stored_next(task: Task) -> datetime | None:
    task.refresh_from_db(fields=["next_run_time"])
    return task.next_run_time


def test_only_tasks_firing_within_the_window_are_loaded(jobs: Jobs) -> None:
    with time_machine.travel(MONDAY + timedelta(hours=8, minutes=55), tick=False):
        make("at nine", "cron", {"crontab": "0 9 * * *"})
        make("at ten", "cron", {"crontab": "0 10 * * *"})
        make("every minute", "interval", {"minutes": 1})
        make("off", "interval", {"minutes": 1}, active=False)
        reconciler = Reconciler(jobs, window=WINDOW)
        result = reconciler.load()
    assert result.added == 2
    assert loaded(jobs) == {"at nine", "every minute"}
    assert set(reconciler.known) == {int(job.id) for job in jobs.all()}


def test_a_task_is_loaded_before_its_fire_and_leaves_after_it(jobs: Jobs) -> None:
    """Each fire is hit with the advance's cadence (a quarter window): never missed, and the
    next fire, beyond the edge, is written to the table, which brings the task back."""
    start = MONDAY + timedelta(hours=8)
    with time_machine.travel(start, tick=False) as clock:
        task = make("every 25 min", "interval", {"minutes": 25, "start_date": "2024-06-03 08:03"})
        reconciler = Reconciler(jobs, window=WINDOW)
        reconciler.load()
        expected = next_fire_times(task.build_trigger(), count=7, after=start)
        fired: list[datetime] = []
        now = start
        while len(fired) < 6 and now < start + timedelta(hours=4):
            # The main loop: an advance each quarter window, a flush after each pass.
            now += WINDOW / 4
            clock.move_to(now)
            fired += fire_due(jobs, task, now)
            reconciler.advance()
            reconciler.flush_next_runs()
            job, edge = jobs.get(task.pk), reconciler.until
            assert edge is not None
            if job is None:
                # Outside the window: the table holds the next fire, exactly.
                assert stored_next(task) == expected[len(fired)] > edge
            else:
                assert job.next_run_time <= edge
    assert fired == expected[:6]


def test_a_task_edited_from_far_off_to_due_soon_gets_a_job(jobs: Jobs) -> None:
    with time_machine.travel(MONDAY + timedelta(hours=8), tick=True):
        task = make("yearly", "cron", {"crontab": "0 0 1 1 *"})
        reconciler = Reconciler(jobs, window=WINDOW)
        reconciler.load()
        assert jobs.get(task.pk) is None
        task.trigger_config = {"seconds": 30}
        task.trigger = "interval"
        task.save()
        reconciler.incremental()
        job = jobs.get(task.pk)
        assert job is not None
        assert job.next_run_time <= reconciler.until
        # And back to far off: the job goes, the table keeps the fire.
        task.trigger, task.trigger_config = "cron", {"crontab": "0 0 1 1 *"}
        task.save()
        reconciler.incremental()
        reconciler.flush_next_runs()
        assert jobs.get(task.pk) is None
        assert stored_next(task) == datetime(2025, 1, 1, tzinfo=UTC)


def test_a_fire_that_crosses_the_edge_during_a_full_pass_is_kept(jobs: Jobs) -> None:
    """A task whose stored next fire is just past the edge when the window is read, and
    inside it once the full pass moves the edge: loaded once, by the advance in that pass."""
    start = MONDAY + timedelta(hours=8)
    with time_machine.travel(start, tick=False) as clock:
        reconciler = Reconciler(jobs, window=WINDOW)
        reconciler.load()
        edge = reconciler.until
        assert edge is not None
        task = make("at the edge", "date", {"run_date": (edge + timedelta(seconds=1)).isoformat()})
        # Saved without the stamp reaching this process: only the passes can find it.
        assert jobs.get(task.pk) is None
        clock.move_to(start + timedelta(seconds=2))
        result = reconciler.full()
        job = jobs.get(task.pk)
        assert job is not None
        assert job.next_run_time == edge + timedelta(seconds=1)
        assert result.added == 1
        assert reconciler.full().added == 0  # and not again


@pytest.mark.parametrize(
    ("zone", "day", "crontab"),
    [
        # Berlin, autumn 2024: 03:00 CEST -> 02:00 CET at 01:00 UTC (02:xx happens twice).
        ("Europe/Berlin", datetime(2024, 10, 26, 22, tzinfo=UTC), "*/20 1-3 * * *"),
        # New York, spring 2024: 02:00 EST -> 03:00 EDT at 07:00 UTC (02:xx never happens).
        ("America/New_York", datetime(2024, 3, 10, 5, tzinfo=UTC), "*/20 1-3 * * *"),
        # Lord Howe, autumn 2024: a 30-minute shift, 02:00 -> 01:30 at 15:00 UTC.
        ("Australia/Lord_Howe", datetime(2024, 4, 6, 13, tzinfo=UTC), "*/20 1-3 * * *"),
    ],
)
def test_daylight_saving_at_the_edge_fires_as_the_trigger_does(
    jobs: Jobs, zone: str, day: datetime, crontab: str
) -> None:
    """Through a DST change, with fires leaving and entering a 5-minute window: the fires
    handed over are the trigger's own, one by one, none missed and none twice."""
    window = timedelta(minutes=5)
    with time_machine.travel(day, tick=False) as clock:
        task = make("dst", "cron", {"crontab": crontab, "timezone": zone})
        reconciler = Reconciler(jobs, window=window)
        reconciler.load()
        expected = next_fire_times(task.build_trigger(), count=9, after=day)
        fired: list[datetime] = []
        now = day
        while len(fired) < len(expected) and now < day + timedelta(hours=30):
            now += window / 4
            clock.move_to(now)
            fired += fire_due(jobs, task, now)
            reconciler.advance()
            reconciler.flush_next_runs()
    assert fired == expected


def test_a_late_advance_catches_up_instead_of_skipping(jobs: Jobs) -> None:
    """The advance came late (the database was away): a fire that passed unloaded is handed
    over at once, within its grace time, as at start-up."""
    start = MONDAY + timedelta(hours=8)
    with time_machine.travel(start, tick=False) as clock:
        reconciler = Reconciler(jobs, window=WINDOW)
        reconciler.load()
        task = make("at 08:15", "cron", {"crontab": "15 8 * * *"}, misfire_grace_time=3600)
        clock.move_to(start + timedelta(minutes=20))
        reconciler.advance()
        job = jobs.get(task.pk)
        assert job is not None
        assert job.next_run_time == start + timedelta(minutes=15)


def test_a_finished_run_of_a_task_outside_the_window_keeps_the_stored_fire(jobs: Jobs) -> None:
    with time_machine.travel(MONDAY + timedelta(hours=8), tick=False):
        far = make("far", "cron", {"crontab": "0 0 1 1 *"})
        once = make("once", "date", {"run_date": "2024-06-03 08:05:00+00:00"})
        reconciler = Reconciler(jobs, window=WINDOW)
        reconciler.load()
    assert reconciler.next_fire(far.pk) is KEEP
    assert reconciler.next_fire(once.pk) == datetime(2024, 6, 3, 8, 5, tzinfo=UTC)
    jobs.remove(once.pk)  # fired: APScheduler dropped the job of a date task
    assert reconciler.next_fire(once.pk) is None
    assert reconciler.resume_points({}) == {once.pk: None}


def test_raw_sql_outside_the_window_is_found_by_the_full_passes(jobs: Jobs) -> None:
    """A schedule changed by raw SQL, touching neither updated_at nor next_run_time: the
    check of the rows outside the window puts the right next fire in the table."""
    with time_machine.travel(MONDAY + timedelta(hours=8), tick=True):
        tasks = [make(f"far {n}", "cron", {"crontab": "0 0 1 1 *"}) for n in range(3)]
        reconciler = Reconciler(jobs, window=WINDOW)
        reconciler.load()
        target = tasks[1]
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {Task._meta.db_table} SET trigger_config = %s WHERE id = %s",
                ['{"crontab": "*/2 * * * *"}', target.pk],
            )
        reconciler.full()
        reconciler.flush_next_runs()
        job = jobs.get(target.pk)
        assert job is not None
        assert stored_next(target) == job.next_run_time
        assert {jobs.get(task.pk) for task in tasks if task != target} == {None}


def test_a_reboot_row_given_a_future_fire_by_raw_sql_is_set_right_by_the_full_pass(
    jobs: Jobs,
) -> None:
    """Such a row is hidden from a start's @reboot lookup (docs/policies.md says that start
    does not fire it); the check outside the window clears the column, so the next start does."""
    with time_machine.travel(MONDAY + timedelta(hours=8), tick=True):
        boot = make("boot", "cron", {"crontab": "@reboot"})
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {Task._meta.db_table} SET next_run_time = %s WHERE id = %s",
                [MONDAY + timedelta(days=30), boot.pk],
            )
        start = datetime.now(UTC)
        assert reboot_fires(start) == []
        reconciler = Reconciler(jobs, window=WINDOW)
        reconciler.load()
        reconciler.full()
        reconciler.flush_next_runs()
        assert stored_next(boot) is None
        job = jobs.get(boot.pk)  # held as every NULL is, with no clock fire of its own
        assert job is not None
        assert job.next_run_time is None
        assert reboot_fires(start) == [Fire(boot.pk, start, None)]


def test_a_deleted_task_leaves_at_the_next_full_pass(jobs: Jobs) -> None:
    with time_machine.travel(MONDAY + timedelta(hours=8), tick=True):
        task = make("soon", "interval", {"minutes": 1})
        reconciler = Reconciler(jobs, window=WINDOW)
        reconciler.load()
        Task.objects.filter(pk=task.pk).delete()
        result = reconciler.full()
    assert result.removed == 1
    assert jobs.all() == []
    assert reconciler.known == {}


def test_the_check_outside_the_window_covers_the_table_in_rounds(
    jobs: Jobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reconcile, "VERIFY_MIN", 10)
    with time_machine.travel(MONDAY + timedelta(hours=8), tick=True):
        far = [make(f"far {n}", "cron", {"crontab": "0 0 1 1 *"}) for n in range(25)]
        reconciler = Reconciler(jobs, window=WINDOW)
        reconciler.load()
        cursors = []
        for _ in range(4):
            reconciler.full()
            cursors.append(reconciler.verified_up_to)
    # Ten rows a pass, in key order; a short slice ends the round, and the next begins again.
    assert cursors == [far[9].pk, far[19].pk, 0, far[9].pk]


def test_a_bulk_update_of_the_schedule_stores_the_new_next_fire() -> None:
    """The window reads next_run_time: QuerySet.update() keeps it exact, as save() does."""
    with time_machine.travel(MONDAY + timedelta(hours=8), tick=False):
        task = make("yearly", "cron", {"crontab": "0 0 1 1 *"})
        Task.objects.filter(pk=task.pk).update(trigger_config={"crontab": "*/5 * * * *"})
        assert stored_next(task) == MONDAY + timedelta(hours=8, minutes=5)
        Task.objects.filter(pk=task.pk).update(active=False)
        assert stored_next(task) is None
