"""Schedule policies in one process: the overlap rule, claims, the buffer, requests that respect
the policy, remaining runs, pause notes, backfill and @reboot's start of scheduling.

The same policies with real ``runscheduler`` processes are in ``tests/test_policies.py``.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from django_tasks_sched import scheduler
from django_tasks_sched.backfill import fire_times
from django_tasks_sched.changes import current_version
from django_tasks_sched.counters import FireCounts, fire_counts
from django_tasks_sched.exceptions import TaskConfigError
from django_tasks_sched.execution import execute_run
from django_tasks_sched.models import SchedulerProcess, Task, TaskRun
from django_tasks_sched.overlap import Action, Slots, decide
from django_tasks_sched.service.claims import (
    NO_RUNS_LEFT,
    Fire,
    claim_fires,
    release_buffered,
    request_run,
)
from django_tasks_sched.service.heartbeat import Heartbeat
from django_tasks_sched.service.jitter import jittered
from django_tasks_sched.service.processes import WorkerProcess
from django_tasks_sched.service.reboot import reboot_fires
from tests.factories import make_task

pytestmark = pytest.mark.django_db

AT = datetime(2099, 1, 1, tzinfo=dt_timezone.utc)
#: A schedule with fires in the past (an interval counts from the task's creation).
EVERY_FIVE_MINUTES: dict[str, Any] = {
    "trigger": "cron",
    "trigger_config": {"crontab": "*/5 * * * *"},
}


def fires(task: Task, count: int, start: datetime = AT) -> list[Fire]:
    return [Fire(task.pk, start + timedelta(minutes=i), None) for i in range(count)]


def statuses(task: Task) -> list[tuple[str, bool]]:
    runs = task.runs.order_by("scheduled_for", "id")
    return [(run.status, run.buffered) for run in runs]


# -- the rule ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overlap", "running", "buffered", "action"),
    [
        ("skip", 0, 0, Action.RUN),
        ("skip", 1, 0, Action.MISS),
        # A free slot while earlier fires wait (a catch-up, a run requested): not jumped.
        ("skip", 0, 1, Action.MISS),
        ("buffer_one", 1, 0, Action.BUFFER),
        ("buffer_one", 1, 1, Action.MISS),
        # A free slot while a fire waits: the new one joins the line, it does not jump it.
        ("buffer_one", 0, 1, Action.MISS),
        ("buffer_all", 0, 1, Action.BUFFER),
        ("buffer_all", 1, 5, Action.BUFFER),
        ("cancel_other", 1, 0, Action.CANCEL_OTHER),
        ("cancel_other", 0, 0, Action.RUN),
        # The latest fire wins, waiting fires or not.
        ("cancel_other", 0, 1, Action.RUN),
    ],
)
def test_decide(overlap: str, running: int, buffered: int, action: Action) -> None:
    assert decide(overlap, 1, Slots(running, buffered)).action == action


@override_settings(TASKS_SCHED={"OVERLAP_BUFFER_LIMIT": 2})
def test_buffer_all_drops_fires_beyond_the_limit_with_the_reason() -> None:
    slots = Slots(running=1, buffered=0)
    actions = [decide("buffer_all", 1, slots).action for _ in range(3)]
    assert actions == [Action.BUFFER, Action.BUFFER, Action.MISS]
    dropped = decide("buffer_all", 1, slots)
    assert "2 fires already wait" in dropped.reason
    assert "OVERLAP_BUFFER_LIMIT" in dropped.reason


def test_cancel_other_cancels_what_exceeds_max_instances() -> None:
    slots = Slots(running=3, buffered=0)
    decision = decide("cancel_other", 2, slots)
    assert (decision.action, decision.cancel, slots.running) == (Action.CANCEL_OTHER, 2, 2)


# -- claims and the buffer ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overlap", "expected"),
    [
        ("skip", [("RUNNING", False), ("MISSED", False), ("MISSED", False)]),
        ("buffer_one", [("RUNNING", False), ("QUEUED", True), ("MISSED", False)]),
        ("buffer_all", [("RUNNING", False), ("QUEUED", True), ("QUEUED", True)]),
    ],
)
def test_a_claim_applies_the_overlap_policy(overlap: str, expected: list[tuple[str, bool]]) -> None:
    task = make_task("slow", overlap=overlap)
    for fire in fires(task, 3):  # one by one, as the fires come due
        claim_fires([fire], "scheduler:a")
    assert statuses(task) == expected


def test_buffered_fires_start_in_order_as_slots_free() -> None:
    task = make_task("slow", overlap="buffer_all", max_instances=2)
    for fire in reversed(fires(task, 5)):  # claimed out of order: started in fire order
        claim_fires([fire], "scheduler:a")
    assert release_buffered("scheduler:a", limit=10) == []  # both slots taken
    TaskRun.objects.filter(task=task, status="RUNNING").update(status="SUCCESSFUL")
    started = release_buffered("scheduler:b", limit=10)
    waiting = task.runs.filter(status="QUEUED", buffered=True).order_by("scheduled_for")
    assert [run.status for run in started] == ["RUNNING", "RUNNING"]
    started_times = sorted(str(run.scheduled_for) for run in started)
    waiting_times = [str(when) for when in waiting.values_list("scheduled_for", flat=True)]
    assert started_times + waiting_times == sorted(started_times + waiting_times)
    assert release_buffered("scheduler:b", limit=10) == []  # max_instances again
    # A process with one free thread takes one.
    TaskRun.objects.filter(task=task, status="RUNNING").update(status="SUCCESSFUL")
    assert len(release_buffered("scheduler:c", limit=1)) == 1


def test_free_threads_go_to_the_task_that_began_waiting_first() -> None:
    # Task ids in the opposite order of their waits: the earlier waiter is served first.
    every_ten = {"trigger": "cron", "trigger_config": {"crontab": "*/10 * * * *"}}
    later = make_task("later", max_instances=5, **every_ten)
    earlier = make_task("earlier", max_instances=5)
    # Last year's fires queued now (a backfill), after the other task's fire began waiting.
    request_run(earlier, TaskRun.Origin.MANUAL)
    TaskRun.objects.filter(task=earlier).update(enqueued_at=timezone.now() - timedelta(minutes=1))
    year_ago = timezone.now() - timedelta(days=365)
    later.backfill(year_ago, year_ago + timedelta(hours=1))
    assert later.runs.count() == 6
    [first] = release_buffered("scheduler:a", limit=1)
    assert first.task_id == earlier.pk
    # The next free threads go to the backfill, up to its task's free slots.
    assert len(release_buffered("scheduler:a", limit=10)) == 5


def test_a_buffered_fire_of_a_backend_task_is_released_to_its_hand_off() -> None:
    task = make_task("fleet", overlap="buffer_one", backend="default")
    for fire in fires(task, 2):
        claim_fires([fire], "scheduler:a")
    assert statuses(task) == [("QUEUED", False), ("QUEUED", True)]
    assert release_buffered("scheduler:a", limit=10) == []  # the first is still in flight
    task.runs.filter(buffered=False).update(status="SUCCESSFUL")
    assert release_buffered("scheduler:a", limit=10) == []  # released, not run here
    assert statuses(task) == [("SUCCESSFUL", False), ("QUEUED", False)]


def test_cancel_other_cancels_the_oldest_running_run_and_runs_the_fire() -> None:
    task = make_task("replace", overlap="cancel_other")
    [first] = claim_fires(fires(task, 1), "scheduler:a")
    [second] = claim_fires(fires(task, 1, AT + timedelta(minutes=5)), "scheduler:b")
    first.refresh_from_db()
    assert first.status == TaskRun.Status.CANCELLED
    assert "replaced it (overlap cancel_other)" in first.error
    assert first.finished_at == second.started_at
    assert second.status == TaskRun.Status.RUNNING


def test_a_run_cancelled_while_it_waits_for_a_thread_is_not_called(tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    task = make_task(
        "replace", overlap="cancel_other", func="tests.testapp.jobs:trace_run", args=[str(trace)]
    )
    [first] = claim_fires(fires(task, 1), "scheduler:a")  # claimed RUNNING, no thread free yet
    [second] = claim_fires(fires(task, 1, AT + timedelta(minutes=5)), "scheduler:a")
    assert execute_run(first, worker_id="scheduler:a").status == TaskRun.Status.CANCELLED
    assert execute_run(second, worker_id="scheduler:a").status == TaskRun.Status.SUCCESSFUL
    assert trace.read_text().split() == [str(second.pk)]  # the first was never called


def test_a_fire_claimed_elsewhere_cancels_nothing() -> None:
    task = make_task("replace", overlap="cancel_other")
    [first] = claim_fires(fires(task, 1), "scheduler:a")
    # Another process claims the very same fire: it lost, and the run stands.
    assert claim_fires(fires(task, 1), "scheduler:b") == []
    first.refresh_from_db()
    assert first.status == TaskRun.Status.RUNNING


def test_catch_up_fires_of_a_task_without_coalescing_wait_in_order() -> None:
    task = make_task("steady", coalesce=False)
    claim_fires([fire._replace(catch_up=True) for fire in fires(task, 3)], "scheduler:a")
    assert statuses(task) == [("RUNNING", False), ("QUEUED", True), ("QUEUED", True)]
    # A fire that comes due meanwhile meets the task's overlap policy (skip here).
    claim_fires(fires(task, 1, AT + timedelta(hours=1)), "scheduler:a")
    assert statuses(task)[-1] == ("MISSED", False)
    # ... also in the moment between two catch-up runs, when the slot is free: the fire does
    # not jump the catch-up fires still waiting.
    TaskRun.objects.filter(task=task, status="RUNNING").update(status="SUCCESSFUL")
    claim_fires(fires(task, 1, AT + timedelta(hours=2)), "scheduler:a")
    latest = task.runs.latest("scheduled_for")
    assert (latest.status, latest.error) == (
        "MISSED",
        "Skipped: earlier fires still wait for a slot.",
    )
    [started] = release_buffered("scheduler:a", limit=10)
    assert started.scheduled_for == AT + timedelta(minutes=1)


def test_buffer_one_keeps_one_waiting_without_coalescing_too() -> None:
    task = make_task("slow", overlap="buffer_one", coalesce=False)
    for fire in fires(task, 4):
        claim_fires([fire], "scheduler:a")
    assert [status for status, _ in statuses(task)] == ["RUNNING", "QUEUED", "MISSED", "MISSED"]


def test_remaining_runs_are_used_by_fires_that_run_and_end_the_task() -> None:
    task = make_task("twice", remaining_runs=2, max_instances=5)
    claim_fires(fires(task, 1), "scheduler:a")
    task.refresh_from_db()
    assert (task.remaining_runs, task.active) == (1, True)
    # A fire missed for lateness uses none; of two more fires, one runs and one is not made.
    late = Fire(task.pk, timezone.now() - timedelta(hours=1), 60)
    claim_fires([late, *fires(task, 2, AT + timedelta(hours=1))], "scheduler:a")
    task.refresh_from_db()
    assert (task.remaining_runs, task.active, task.inactive_reason) == (0, False, NO_RUNS_LEFT)
    assert (task.paused_by, task.next_run_time) == ("", None)
    assert task.paused_at is not None
    assert task.runs.exclude(status="MISSED").count() == 2
    assert claim_fires(fires(task, 1, AT + timedelta(days=1)), "scheduler:a") == []


# -- runs requested now -------------------------------------------------------------------------


def test_run_now_respecting_the_overlap_policy() -> None:
    task = make_task("manual")
    claim_fires(fires(task, 1), "scheduler:a")  # one running
    skipped = task.run_now(respect_overlap=True)
    assert skipped.status == TaskRun.Status.MISSED
    assert "max_instances" in skipped.error
    task.overlap = "buffer_one"
    task.save()
    waiting = task.run_now(respect_overlap=True)
    assert (waiting.status, waiting.buffered) == ("QUEUED", True)
    assert task.run_now(respect_overlap=True).status == TaskRun.Status.MISSED
    task.overlap = "cancel_other"
    task.save()
    replacing = task.run_now(respect_overlap=True)
    assert (replacing.status, replacing.buffered) == ("QUEUED", True)
    assert task.runs.filter(status="CANCELLED").count() == 1
    # Overriding the policy (the default) queues it to run beside the others.
    assert task.run_now().buffered is False
    with pytest.raises(ValueError, match="started by a scheduler"):
        task.run_now(inline=True, respect_overlap=True)


# -- pause notes --------------------------------------------------------------------------------


def test_pause_keeps_the_reason_who_and_when_and_resume_clears_them() -> None:
    task = make_task("job")
    task.pause("deploy freeze", by="alice")
    task.refresh_from_db()
    assert (task.active, task.inactive_reason, task.paused_by) == (False, "deploy freeze", "alice")
    assert task.paused_at is not None
    assert task.next_run_time is None
    task.resume()
    task.refresh_from_db()
    assert (task.active, task.inactive_reason, task.paused_by, task.paused_at) == (
        True,
        "",
        "",
        None,
    )
    scheduler.pause_job("job", reason="broken upstream", by="bob")
    task.refresh_from_db()
    assert (task.inactive_reason, task.paused_by) == ("broken upstream", "bob")


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("x" * 256, "at most 255 characters"),
        ("a\x00b", "Null characters are not allowed"),
        ("a\ud800b", "Lone surrogate"),
        (7, "must be text"),
    ],
)
def test_a_pause_reason_is_bounded_text(reason: object, message: str) -> None:
    task = make_task("job")
    with pytest.raises(TaskConfigError, match=message) as caught:
        task.pause(reason)  # type: ignore[arg-type]
    assert caught.value.field == "inactive_reason"
    task.refresh_from_db()
    assert task.active


# -- backfill -----------------------------------------------------------------------------------


def test_backfill_queues_each_fire_time_once_without_grace() -> None:
    task = make_task("ten", trigger="cron", trigger_config={"crontab": "*/10 * * * *"})
    start = datetime(2026, 1, 1, 0, 0, tzinfo=dt_timezone.utc)
    runs = task.backfill(start, start + timedelta(hours=1))
    assert [run.scheduled_for for run in runs] == [
        start + timedelta(minutes=m) for m in range(0, 60, 10)
    ]
    assert {(run.status, run.origin, run.buffered) for run in runs} == {
        ("QUEUED", "BACKFILL", True)
    }
    assert task.backfill(start, start + timedelta(hours=1)) == []
    # Started as the task's slots free, an hour past any grace time.
    assert len(release_buffered("scheduler:a", limit=10)) == 1


@pytest.mark.parametrize(
    ("start", "end", "field", "message"),
    [
        (datetime(2026, 1, 2), datetime(2026, 1, 1), "end", "after the start"),
        ("2026-01-01", datetime(2026, 1, 2), "start", "date or a datetime"),
        (datetime(2026, 1, 1), datetime(2026, 3, 1), "end", "more than 10000 fires"),
    ],
)
def test_backfill_refuses_a_bad_range(start: object, end: object, field: str, message: str) -> None:
    task = make_task("minutely", trigger="cron", trigger_config={"crontab": "* * * * *"})
    with pytest.raises(TaskConfigError, match=message) as caught:
        task.backfill(start, end)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert not task.runs.exists()


# -- @reboot --------------------------------------------------------------------------------------


def test_reboot_is_a_crontab_that_fires_only_at_a_start_of_scheduling() -> None:
    task = make_task("boot", trigger="cron", trigger_config={"crontab": "@reboot"})
    make_task("hourly", trigger="cron", trigger_config={"crontab": "@hourly"})
    make_task("off", trigger="cron", trigger_config={"crontab": "@reboot"}, active=False)
    assert task.next_run_time is None
    assert task.describe_schedule() == "Once each time scheduling starts (@reboot)"
    assert reboot_fires(AT) == [Fire(task.pk, AT, None)]


def test_the_first_process_to_join_starts_scheduling() -> None:
    first, second = Heartbeat("scheduler:first"), Heartbeat("scheduler:second")
    assert first.join() is True
    assert second.join() is False  # a replica joining a live one
    second.stop()
    first.stop()  # stopped gracefully: not live any more
    assert Heartbeat("scheduler:third").join() is True
    # One that died is live until its heartbeat is older than the timeout.
    SchedulerProcess.objects.update(last_seen=timezone.now() - timedelta(hours=1))
    assert Heartbeat("scheduler:fourth").join() is True


def test_backfilltask_command_previews_then_queues(capsys: pytest.CaptureFixture[str]) -> None:
    make_task("ten", trigger="cron", trigger_config={"crontab": "*/10 * * * *"})
    args = ["backfilltask", "ten", "2026-01-01T00:00+00:00", "2026-01-01T00:30+00:00"]
    call_command(*args, "--dry-run")
    out = capsys.readouterr().out
    assert "2026-01-01T00:20:00+00:00" in out
    assert "3 fire time(s) in the range (dry run)." in out
    assert not TaskRun.objects.exists()
    call_command(*args)
    assert "3 run(s) queued for 'ten'" in capsys.readouterr().out
    call_command(*args)
    assert "0 run(s) queued" in capsys.readouterr().out
    with pytest.raises(CommandError, match="end: must be after the start"):
        call_command("backfilltask", "ten", "2026-01-02", "2026-01-01")
    with pytest.raises(CommandError, match="not an ISO 8601"):
        call_command("backfilltask", "ten", "yesterday", "2026-01-01")
    with pytest.raises(CommandError, match="No task named"):
        call_command("backfilltask", "nope", "2026-01-01", "2026-01-02")


def test_backfill_job_through_the_facade() -> None:
    make_task("daily", trigger="cron", trigger_config={"crontab": "0 3 * * *"})
    start = datetime(2026, 1, 1, tzinfo=dt_timezone.utc)
    runs = scheduler.backfill_job("daily", start, start + timedelta(days=3))
    assert [run.scheduled_for.day for run in runs if run.scheduled_for] == [1, 2, 3]


def test_fires_not_run_are_counted_by_cause_since_a_date() -> None:
    task = make_task("busy", overlap="buffer_one")
    claim_fires(fires(task, 3), "scheduler:a")  # one runs, one waits, one skipped
    claim_fires([Fire(task.pk, timezone.now() - timedelta(hours=1), 60)], "scheduler:a")  # late
    with override_settings(TASKS_SCHED={"OVERLAP_BUFFER_LIMIT": 1}):
        claim_fires(fires(task, 1, AT + timedelta(days=1)), "scheduler:a")  # skipped again
    task.overlap = "buffer_all"
    task.save()
    with override_settings(TASKS_SCHED={"OVERLAP_BUFFER_LIMIT": 1}):
        claim_fires(fires(task, 1, AT + timedelta(days=2)), "scheduler:a")  # dropped
    task.overlap = "cancel_other"
    task.save()
    claim_fires(fires(task, 1, AT + timedelta(days=3)), "scheduler:a")  # replaces the first
    counts, later = fire_counts(
        task, timezone.now() - timedelta(days=1), timezone.now() + timedelta(seconds=1)
    )
    assert counts == FireCounts(late=1, skipped=2, dropped=1, coalesced=0, replaced=1)
    assert later == FireCounts(0, 0, 0, 0, 0)


# -- found in review --------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_releases_start_one_run_per_free_slot() -> None:
    """Each process counts the runs after it holds the task's lock, not before it waited."""
    task = make_task("single", overlap="buffer_all", **EVERY_FIVE_MINUTES)
    start = timezone.now() - timedelta(hours=1)
    assert len(task.backfill(start - timedelta(minutes=30), start)) == 6
    barrier = threading.Barrier(3)
    started: list[int] = []

    def release(name: str) -> None:
        try:
            barrier.wait()
            started.extend(run.pk for run in release_buffered(name, limit=10))
        finally:
            connection.close()

    threads = [threading.Thread(target=release, args=(f"scheduler:{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(started) == 1
    assert task.runs.filter(status="RUNNING").count() == 1
    first = task.runs.order_by("scheduled_for").first()
    assert first is not None
    assert first.pk == started[0]  # the earliest fire


def test_backfill_knows_a_jittered_fire_that_ran() -> None:
    task = make_task(
        "jittery", trigger="cron", trigger_config={"crontab": "*/10 * * * *", "jitter": 120}
    )
    end = timezone.now() - timedelta(hours=1)
    [nominal] = fire_times(task, end - timedelta(minutes=10), end)
    claimed = jittered(task.pk, nominal, 120, None)
    assert claimed != nominal
    claim_fires([Fire(task.pk, claimed, None)], "scheduler:a")  # it ran on schedule
    assert task.backfill(end - timedelta(minutes=10), end) == []


def test_backfill_refuses_a_range_in_the_future() -> None:
    task = make_task("soon")
    with pytest.raises(TaskConfigError, match="must not be in the future") as caught:
        task.backfill(timezone.now(), timezone.now() + timedelta(hours=1))
    assert caught.value.field == "end"


def test_backfilled_runs_do_not_fill_the_overlap_buffer() -> None:
    task = make_task("busy", overlap="buffer_one", **EVERY_FIVE_MINUTES)
    end = timezone.now() - timedelta(hours=1)
    assert len(task.backfill(end - timedelta(minutes=30), end)) == 6
    release_buffered("scheduler:a", limit=10)  # the first backfilled fire takes the slot
    claim_fires(fires(task, 1), "scheduler:a")
    live = task.runs.get(scheduled_for=AT)
    assert (live.status, live.buffered) == ("QUEUED", True)  # waits, not "already waits"
    task.runs.filter(status="RUNNING").update(status="SUCCESSFUL")
    # The schedule's own fire goes first, the backfill after.
    assert [run.pk for run in release_buffered("scheduler:a", limit=10)] == [live.pk]


def test_an_active_task_with_no_runs_left_is_switched_off() -> None:
    task = make_task("done", remaining_runs=1)
    Task.objects.filter(pk=task.pk).update_quietly(remaining_runs=0)  # as by hand, or SQL
    assert claim_fires(fires(task, 1), "scheduler:a") == []
    task.refresh_from_db()
    assert (task.active, task.inactive_reason) == (False, NO_RUNS_LEFT)
    with pytest.raises(TaskConfigError, match="no runs left") as caught:
        task.resume()
    assert caught.value.field == "remaining_runs"
    task.active = True
    with pytest.raises(ValidationError) as invalid:
        task.full_clean()
    assert "remaining_runs" in invalid.value.message_dict
    task.remaining_runs = 2
    task.resume()
    assert Task.objects.get(pk=task.pk).active


def test_who_paused_is_kept_as_it_fits() -> None:
    task = make_task("job")
    task.pause(by="a\x00b" + "x" * 300)
    task.refresh_from_db()
    assert task.paused_by == "ab" + "x" * 148


def test_a_stop_for_one_run_never_kills_the_next() -> None:
    killed: list[bool] = []
    worker = WorkerProcess.__new__(WorkerProcess)  # the guard alone: no process spawned
    worker.process = SimpleNamespace(is_alive=lambda: True, kill=lambda: killed.append(True))
    worker.ended, worker._calling_lock, worker.calling = threading.Event(), threading.Lock(), 2
    worker.end(1)  # run 1 ended elsewhere, but the worker has moved on to run 2
    assert (killed, worker.ended.is_set()) == ([], False)
    worker.end(2)
    assert (killed, worker.ended.is_set()) == ([True], True)


def test_backfill_leaves_a_fire_its_jitter_delays_past_now_to_the_schedule() -> None:
    task = make_task(
        "late-jitter", trigger="cron", trigger_config={"crontab": "* * * * *", "jitter": 3599}
    )
    end = timezone.now()
    nominal = fire_times(task, end - timedelta(hours=1), end)
    runs = task.backfill(end - timedelta(hours=1), end)
    delayed = [jittered(task.pk, when, 3599, None) for when in nominal]
    # Of sixty fires delayed up to an hour, the latest ones fall after now: not backfilled.
    expected = [when for when in delayed if when <= timezone.now()]
    assert 0 < len(expected) < len(nominal)
    assert sorted(run.scheduled_for for run in runs if run.scheduled_for) == sorted(expected)


def test_lost_hand_offs_are_not_counted_late() -> None:
    task = make_task("fleet")
    TaskRun.objects.create(
        task=task, status="MISSED", error="Not run: handed to backend 'db' twice, never started."
    )
    [counts] = fire_counts(task, timezone.now() - timedelta(days=1))
    assert counts.late == 0


@pytest.mark.django_db(transaction=True)
def test_cancelling_a_queued_run_wakes_the_schedulers_when_fires_wait() -> None:
    task = make_task("fleet", overlap="buffer_one")
    claim_fires(fires(task, 2), "scheduler:a")
    before = current_version()
    queued = TaskRun.objects.create(task=task, status="QUEUED")
    assert current_version() > before  # a run-now wakes them anyway
    before = current_version()
    assert queued.cancel()
    assert current_version() > before
