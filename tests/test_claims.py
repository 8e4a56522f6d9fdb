"""Batched claims of fires and batched recording of outcomes: exactly once, nothing lost."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from django_tasks_sched.changes import current_version
from django_tasks_sched.execution import execute_run
from django_tasks_sched.lifecycle import KEEP, finish
from django_tasks_sched.models import Task, TaskRun
from django_tasks_sched.rawsql import update_rows
from django_tasks_sched.service.claims import Fire, _insert_fields, claim_fires
from tests.factories import make_task

pytestmark = pytest.mark.django_db


def claim_fire(task_id: int, scheduled_for: datetime, worker_id: str) -> TaskRun | None:
    """Claim one fire (no grace limit): its RUNNING run, or None."""
    runs = claim_fires([Fire(task_id, scheduled_for, None)], worker_id)
    return runs[0] if runs else None


# Far enough ahead that no grace time applies, and whole seconds apart.
AT = datetime(2099, 1, 1, tzinfo=dt_timezone.utc)


def test_a_batch_becomes_running_runs_carrying_their_task() -> None:
    greet = make_task("greet", func="tests.testapp.jobs:greet", args=["Ada"], kwargs={"x": [1]})
    other = make_task("other")
    runs = claim_fires([Fire(greet.pk, AT, None), Fire(other.pk, AT, None)], "scheduler:a")
    assert sorted(run.task_id for run in runs) == sorted([greet.pk, other.pk])
    run = next(run for run in runs if run.task_id == greet.pk)
    assert run.pk is not None
    assert run.status == TaskRun.Status.RUNNING
    assert run.scheduled_for == AT
    assert run.worker_id == "scheduler:a"
    assert (run.task.name, run.task.args, run.task.kwargs) == ("greet", ["Ada"], {"x": [1]})
    stored = TaskRun.objects.get(pk=run.pk)
    assert (stored.status, stored.scheduled_for, stored.task_id) == ("RUNNING", AT, greet.pk)


def test_a_fire_is_claimed_once_whoever_asks_again() -> None:
    task = make_task("once", max_instances=5)
    fires = [Fire(task.pk, AT, None), Fire(task.pk, AT + timedelta(minutes=5), None)]
    assert len(claim_fires(fires[:1], "scheduler:a")) == 1
    # The second process loses the first fire quietly and still gets the second.
    again = claim_fires(fires, "scheduler:b")
    assert [run.scheduled_for for run in again] == [AT + timedelta(minutes=5)]
    assert TaskRun.objects.count() == 2
    assert claim_fire(task.pk, AT, "scheduler:c") is None


def test_a_fire_past_its_grace_time_is_recorded_missed_with_the_reason() -> None:
    task = make_task("late")
    due = timezone.now() - timedelta(seconds=90)
    assert claim_fires([Fire(task.pk, due, 60)], "scheduler:a") == []
    run = TaskRun.objects.get(task=task)
    assert run.status == TaskRun.Status.MISSED
    assert "past the misfire grace time of 60s" in run.error
    task.refresh_from_db()
    assert task.last_run_status == TaskRun.Status.MISSED
    # Within its grace time it runs, however late.
    assert len(claim_fires([Fire(task.pk, timezone.now() - timedelta(seconds=30), 60)], "a")) == 1


def test_max_instances_counts_running_runs_and_the_batch_itself() -> None:
    task = make_task("single")
    fires = [Fire(task.pk, AT + timedelta(minutes=5 * i), None) for i in range(3)]
    runs = claim_fires(fires, "scheduler:a")
    assert [run.scheduled_for for run in runs] == [AT]
    missed = TaskRun.objects.filter(task=task, status=TaskRun.Status.MISSED)
    assert missed.count() == 2
    assert "max_instances" in missed.first().error  # type: ignore[union-attr]
    # The first is still RUNNING: the next fire is missed too; once it finishes, it runs.
    assert claim_fire(task.pk, AT + timedelta(hours=1), "scheduler:a") is None
    TaskRun.objects.filter(pk=runs[0].pk).update(status=TaskRun.Status.SUCCESSFUL)
    assert claim_fire(task.pk, AT + timedelta(hours=2), "scheduler:a") is not None


def test_inactive_and_deleted_tasks_record_nothing() -> None:
    off = make_task("off", active=False)
    gone = make_task("gone")
    gone_pk = gone.pk
    gone.delete()
    assert claim_fires([Fire(off.pk, AT, None), Fire(gone_pk, AT, None)], "scheduler:a") == []
    assert not TaskRun.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_of_the_same_fires_run_each_exactly_once() -> None:
    tasks = [make_task(f"t{i}", max_instances=100) for i in range(20)]
    fires = [Fire(task.pk, AT + timedelta(minutes=5 * k), None) for task in tasks for k in range(5)]
    claimed: list[list[TaskRun]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def claimer(name: str, order: int) -> None:
        try:
            start.wait()
            mine = []
            # Overlapping batches in different orders, as several processes would see them.
            ordered = fires[::order]
            for i in range(0, len(ordered), 7):
                mine += claim_fires(ordered[i : i + 7], name)
            claimed.append(mine)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=claimer, args=(f"scheduler:{i}", 1 if i % 2 else -1))
        for i in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    won = [(run.task_id, run.scheduled_for) for runs in claimed for run in runs]
    assert sorted(won) == sorted((fire.task_id, fire.scheduled_for) for fire in fires)
    assert TaskRun.objects.count() == len(fires)
    assert set(TaskRun.objects.values_list("status", flat=True)) == {"RUNNING"}


def test_outcomes_are_recorded_together_with_each_task_summary() -> None:
    flaky = make_task("flaky", max_instances=3)
    steady = make_task("steady")
    fires = [Fire(flaky.pk, AT + timedelta(minutes=5 * i), None) for i in range(3)]
    runs = claim_fires([*fires, Fire(steady.pk, AT, None)], "scheduler:a")
    assert [run.task_id for run in runs] == [flaky.pk] * 3 + [steady.pk]
    # In the order they finished: a success, then two failures.
    finished = [_finished(run, outcome) for run, outcome in zip(runs, "SFFS", strict=True)]
    upcoming = AT + timedelta(days=1)
    finish([(run, upcoming if run.task_id == flaky.pk else KEEP) for run in finished])
    flaky.refresh_from_db()
    steady.refresh_from_db()
    assert flaky.consecutive_failures == 2
    assert flaky.last_run_status == TaskRun.Status.FAILED
    assert flaky.next_run_time == upcoming
    assert steady.consecutive_failures == 0
    assert steady.last_run_status == TaskRun.Status.SUCCESSFUL
    stored = {run.pk: run for run in TaskRun.objects.all()}
    for run in finished:
        assert stored[run.pk].status == run.status
        assert stored[run.pk].finished_at == run.finished_at
        assert stored[run.pk].return_value == run.return_value
    # A success after the failures resets the count.
    again = claim_fire(flaky.pk, AT + timedelta(hours=1), "scheduler:a")
    assert again is not None
    finish([(_finished(again, "S"), KEEP)])
    flaky.refresh_from_db()
    assert (flaky.consecutive_failures, flaky.next_run_time) == (0, upcoming)


@pytest.mark.django_db(transaction=True)  # commits: the wake-up is a bump at commit
def test_a_batch_of_outcomes_heeds_tasks_switched_off_and_fires_waiting_for_a_slot() -> None:
    off, waits, plain = make_task("off"), make_task("waits"), make_task("plain")
    runs = claim_fires([Fire(task.pk, AT, None) for task in (off, waits, plain)], "scheduler:a")
    Task.objects.filter(pk=off.pk).update(active=False)  # while its run ran
    TaskRun.objects.create(
        task=waits, scheduled_for=AT + timedelta(minutes=1), status="QUEUED", buffered=True
    )
    upcoming = AT + timedelta(days=1)
    before = current_version()
    finish([(_finished(run, "S"), upcoming) for run in runs])
    off.refresh_from_db()
    plain.refresh_from_db()
    assert (off.next_run_time, plain.next_run_time) == (None, upcoming)
    # The fire waiting for a slot of "waits": every scheduler is woken to start it.
    assert current_version() == before + 1
    # With no fire waiting, no wake-up.
    again = claim_fire(plain.pk, AT + timedelta(hours=1), "scheduler:a")
    assert again is not None
    finish([(_finished(again, "S"), upcoming)])
    assert current_version() == before + 1


def test_a_scheduler_collects_outcomes_instead_of_writing_each() -> None:
    task = make_task("collected", func="tests.testapp.jobs:add", args=[2, 3])
    run = claim_fire(task.pk, AT, "scheduler:a")
    assert run is not None
    collected: list[TaskRun] = []
    execute_run(run, worker_id="scheduler:a", record=collected.append)
    assert collected == [run]
    assert (run.status, run.return_value) == (TaskRun.Status.SUCCESSFUL, 5)
    assert TaskRun.objects.get(pk=run.pk).status == TaskRun.Status.RUNNING
    finish([(run, KEEP)])
    stored = TaskRun.objects.get(pk=run.pk)
    assert (stored.status, stored.return_value) == (TaskRun.Status.SUCCESSFUL, 5)
    assert stored.started_at == run.started_at


def _finished(run: TaskRun, outcome: str) -> TaskRun:
    run.status = TaskRun.Status.SUCCESSFUL if outcome == "S" else TaskRun.Status.FAILED
    run.started_at = run.started_at or timezone.now()
    run.finished_at = timezone.now()
    run.return_value = {"ok": True} if outcome == "S" else None
    run.error = "" if outcome == "S" else "RuntimeError: boom"
    return run


def test_a_mixed_batch_is_stored_as_decided() -> None:
    """Each fire's decision reaches the table intact, whichever fields the batch's rows share
    (on PostgreSQL sent as one value) or differ in (an array each)."""
    plain = make_task("plain")
    fleet = make_task("fleet", backend="default")
    buffered = make_task("buffered", overlap="buffer_one")
    replacing = make_task("replacing", overlap="cancel_other")
    late = timezone.now() - timedelta(seconds=90)
    fires = [
        Fire(plain.pk, AT, None),
        Fire(plain.pk, late, 60),  # past its grace time: MISSED
        Fire(fleet.pk, AT, None),  # for a backend: QUEUED
        Fire(buffered.pk, AT, None),
        Fire(buffered.pk, AT + timedelta(minutes=5), None),  # waits for the slot: buffered
        Fire(replacing.pk, AT, None),
        Fire(replacing.pk, AT + timedelta(minutes=5), None),  # cancels the one before
    ]
    claim_fires(fires, "scheduler:a")
    stored = {
        (run.task_id, run.scheduled_for): run for run in TaskRun.objects.order_by("scheduled_for")
    }
    assert len(stored) == len(fires)
    expect = {
        (plain.pk, AT): ("RUNNING", False, ""),
        (plain.pk, late): ("MISSED", False, ""),
        (fleet.pk, AT): ("QUEUED", False, "default"),
        (buffered.pk, AT): ("RUNNING", False, ""),
        (buffered.pk, AT + timedelta(minutes=5)): ("QUEUED", True, ""),
        (replacing.pk, AT): ("CANCELLED", False, ""),
        (replacing.pk, AT + timedelta(minutes=5)): ("RUNNING", False, ""),
    }
    for key, (status, is_buffered, backend) in expect.items():
        run = stored[key]
        assert (run.status, run.buffered, run.backend) == (status, is_buffered, backend), key
        assert (run.started_at is not None) == (status == "RUNNING"), key
        assert (run.finished_at is not None) == (status in ("MISSED", "CANCELLED")), key
        assert (run.worker_id, run.origin, run.attempt, run.meta) == (
            "scheduler:a",
            TaskRun.Origin.SCHEDULE,
            1,
            {},
        )
        assert run.enqueued_at is not None
    assert "past the misfire grace time" in stored[plain.pk, late].error
    assert stored[replacing.pk, AT].error


def test_a_claim_refuses_a_value_too_long_for_its_column_rather_than_cutting_it() -> None:
    # PostgreSQL's claim casts its parameters: to varchar(255), a longer value would be cut.
    if connection.vendor != "postgresql":
        pytest.skip("the claim casts its parameters on PostgreSQL only")
    task = make_task("long worker")
    worker_id = "w" * 300  # the column holds 255
    with pytest.raises(DatabaseError):
        claim_fires([Fire(task.pk, AT, None)], worker_id)


def test_outcomes_written_together_keep_each_value_as_it_was() -> None:
    """Values Python calls equal but the database stores apart (True and 1, 1.0 and 1, one
    instant at two offsets) stay each run's own when outcomes are written together."""
    tasks = [make_task(f"value {i}") for i in range(6)]
    runs = sorted(
        claim_fires([Fire(task.pk, AT, None) for task in tasks], "scheduler:a"),
        key=lambda run: run.task_id,
    )
    returned: list[object] = [True, 1, 1.0, 1, {"a": 1}, {"a": 1.0}]
    finished_at = timezone.now()
    for run, value in zip(runs, returned, strict=True):
        run.status, run.finished_at, run.return_value = "SUCCESSFUL", finished_at, value
    for pair in (runs[0:2], runs[2:4], runs[4:6]):  # each pair alike to Python's ==
        finish([(run, KEEP) for run in pair])
    stored = TaskRun.objects.order_by("task_id").values_list("return_value", flat=True)
    assert [(type(value), value) for value in stored] == [
        (type(value), value) for value in returned
    ]


def test_a_value_too_long_for_its_column_is_refused_by_an_update_too() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the update casts its parameters on PostgreSQL only")
    run = claim_fire(make_task("long").pk, AT, "scheduler:a")
    assert run is not None
    with pytest.raises(DatabaseError), transaction.atomic():
        update_rows(TaskRun, ["worker_id"], [[run.pk, "w" * 300]], connection.alias)


def test_the_claim_writes_each_field_as_the_row_holds_it() -> None:
    """The PostgreSQL insert reads each field off the row: a field whose pre_save() changes
    it (auto_now) or the database computes (generated) would need more than that."""
    fields = _insert_fields()
    assert {field.attname for field in fields} >= {"task_id", "scheduled_for", "status"}
    for field in fields:
        assert not getattr(field, "auto_now", False), field
        assert not getattr(field, "auto_now_add", False), field
    assert all(not getattr(field, "generated", False) for field in TaskRun._meta.concrete_fields)
