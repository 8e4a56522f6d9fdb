"""The admin's dashboard: each section from real rows, who may see it, and its query count."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings
from django.urls import reverse
from django.utils import timezone
from pytest_django.asserts import assertContains

from django_tasks_sched import dashboard as board
from django_tasks_sched.firing import switch_firing
from django_tasks_sched.models import SchedulerProcess, Task, TaskRun
from django_tasks_sched.summaries import KEEP, fold, record_summaries
from tests.factories import make_task

pytestmark = pytest.mark.django_db

DASHBOARD = reverse("admin:django_tasks_sched_task_dashboard")
Status = TaskRun.Status


def process(name: str, seen_ago: float = 0) -> SchedulerProcess:
    return SchedulerProcess.objects.create(
        worker_id=name,
        hostname=f"host-{name}",
        pid=4242,
        version="9.9",
        last_seen=timezone.now() - timedelta(seconds=seen_ago),
    )


def run(task: Task, status: str, ago: timedelta, late: float = 1, **fields: Any) -> TaskRun:
    """A run enqueued ``ago``, scheduled then, started ``late`` seconds late, soon finished."""
    at = timezone.now() - ago
    fields.setdefault("scheduled_for", at)
    fields.setdefault("started_at", at + timedelta(seconds=late))
    if status not in (Status.QUEUED, Status.RUNNING):
        fields.setdefault("finished_at", at + timedelta(seconds=2))
    created = TaskRun.objects.create(task=task, status=status, enqueued_at=at, **fields)
    if status not in (Status.QUEUED, Status.RUNNING):
        # The task's last-run summary, as the scheduler writes it when a run ends.
        record_summaries(fold([(created, KEEP)]), "default")
    return created


# -- the sections, as values ----------------------------------------------------------------


def test_processes_alive_and_dead_with_their_runs_in_flight() -> None:
    alive, dead = process("alive"), process("dead", seen_ago=300)
    task = make_task()
    for i in range(2):
        run(task, Status.RUNNING, timedelta(seconds=i + 1), worker_id="alive")
    run(task, Status.RUNNING, timedelta(seconds=5), worker_id="inline:host:1")
    found = board.live_processes(timezone.now())
    assert [(p.process, p.alive, p.in_flight) for p in found.rows] == [
        (alive, True, 2),
        (dead, False, 0),
    ]
    assert (found.alive, found.running) == (1, 3)


def test_timeline_counts_each_fire_in_its_slot() -> None:
    now = timezone.now()
    # Every 10 minutes from now + 1 minute: 6 fires in the next hour, 144 in the day.
    start = (now + timedelta(minutes=1)).replace(microsecond=0)
    make_task("often", trigger_config={"minutes": 10, "start_date": start.isoformat()})
    later = now + timedelta(hours=3, minutes=1)
    make_task("once", trigger="date", trigger_config={"run_date": later.isoformat()})
    make_task("off", active=False)
    hour = board.timeline(now, timedelta(hours=1), timedelta(minutes=5))
    assert len(hour.slots) == 12
    assert [slot.fires for slot in hour.slots] == [1, 0] * 6
    assert (hour.fires, hour.tasks, hour.not_expanded, hour.capped) == (6, 1, 0, 0)
    day = board.timeline(now, timedelta(days=1), timedelta(hours=1))
    # 144 fires of "often" in the day: its next fire and FIRES_PER_TASK later ones are
    # counted, and the cap is said; and "once".
    assert (day.fires, day.capped) == (1 + board.FIRES_PER_TASK + 1, 1)
    assert day.slots[3].fires == 6 + 1
    assert [task.name for task, _when in day.next_fires] == ["often", "once"]


def test_timeline_says_how_many_tasks_it_did_not_expand(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(board, "EXPANDED_TASKS", 2)
    now = timezone.now()
    start = (now + timedelta(minutes=1)).replace(microsecond=0)
    for i in range(3):
        make_task(f"t{i}", trigger_config={"minutes": 30, "start_date": start.isoformat()})
    hour = board.timeline(now, timedelta(hours=1), timedelta(minutes=5))
    # Two tasks expanded (two fires each), the third counted by its first fire only.
    assert (hour.fires, hour.tasks, hour.not_expanded) == (5, 3, 1)


def test_overdue_tasks_only_while_a_scheduler_is_alive() -> None:
    late = make_task("late")
    Task.objects.filter(pk=late.pk).update_quietly(
        next_run_time=timezone.now() - timedelta(minutes=10)
    )
    make_task("current")
    assert board.dashboard().overdue.rows == []  # no scheduler: said once, not per task
    process("alive")
    overdue = board.dashboard().overdue
    assert ([t.name for t in overdue.rows], overdue.total) == (["late"], 1)
    switch_firing(False, by="ops")  # paused: nothing fires, and the page says that instead
    paused = board.dashboard()
    assert (paused.firing, paused.overdue.total) == (False, 0)


def test_stuck_runs_follow_housekeeping_rules() -> None:
    silent_task = make_task("silent")
    run(silent_task, Status.RUNNING, timedelta(minutes=5), alive_at=None, worker_id="gone")
    slow = make_task("slow", timeout=60)
    run(slow, Status.RUNNING, timedelta(minutes=5), alive_at=timezone.now())
    quiet = make_task("quiet", heartbeat_timeout=30)
    run(quiet, Status.RUNNING, timedelta(minutes=2), alive_at=timezone.now())
    fine = make_task("fine", timeout=3600, heartbeat_timeout=600)
    run(fine, Status.RUNNING, timedelta(minutes=2), alive_at=timezone.now())
    both = make_task("both", timeout=60)  # silent and past its timeout: listed once
    run(both, Status.RUNNING, timedelta(minutes=5), alive_at=None)
    stuck = board.stuck_runs(timezone.now())
    assert sorted((s.run.task.name, s.reason) for s in stuck.rows) == [
        ("both", "silent"),
        ("quiet", "heartbeat"),
        ("silent", "silent"),
        ("slow", "timeout"),
    ]
    assert stuck.total == 4


def test_retrying_runs() -> None:
    task = make_task()
    retry = run(task, Status.QUEUED, timedelta(0), attempt=2, started_at=None)
    waiting = run(
        task,
        Status.QUEUED,
        timedelta(seconds=1),
        started_at=None,
        not_before=timezone.now() + timedelta(minutes=5),
    )
    run(task, Status.QUEUED, timedelta(seconds=2), started_at=None)  # an ordinary queued run
    run(task, Status.FAILED, timedelta(seconds=3), attempt=3)  # a finished retry
    retrying = board.retrying_runs(timezone.now())
    assert (list(retrying.rows), retrying.total) == ([retry, waiting], 2)


def test_task_health_rates_and_lateness_per_bucket() -> None:
    flaky, steady = make_task("flaky"), make_task("steady")
    run(flaky, Status.SUCCESSFUL, timedelta(hours=1))
    run(flaky, Status.FAILED, timedelta(hours=1, minutes=10))
    run(flaky, Status.MISSED, timedelta(days=3), started_at=None)
    run(flaky, Status.CANCELLED, timedelta(hours=2), started_at=None)  # not an outcome
    run(steady, Status.SUCCESSFUL, timedelta(hours=5), late=31)
    run(steady, Status.SUCCESSFUL, timedelta(days=9))  # older than the week
    health = board.task_health(timezone.now())
    assert [h.task.name for h in health] == ["flaky", "steady"]  # the most failures first
    flaky_health, steady_health = health
    assert (flaky_health.day_rate, flaky_health.week_rate) == (0.5, 1 / 3)
    assert [b.outcomes for b in flaky_health.day][-2:] == [2, 0]
    assert sum(b.outcomes for b in flaky_health.week) == 3
    assert flaky_health.day_lateness == timedelta(seconds=1)
    assert (steady_health.day_rate, steady_health.week_rate) == (1.0, 1.0)
    assert steady_health.week_lateness == timedelta(seconds=31)


def test_no_success_uses_the_task_field_and_the_default() -> None:
    old = timezone.now() - timedelta(hours=3)
    stale = make_task("stale", alert_no_success_minutes=60)
    run(stale, Status.SUCCESSFUL, timedelta(hours=2))
    fresh = make_task("fresh", alert_no_success_minutes=60)
    run(fresh, Status.SUCCESSFUL, timedelta(minutes=5))
    never = make_task("never", alert_no_success_minutes=60)
    Task.objects.filter(pk=never.pk).update_quietly(created_at=old)
    unwatched = make_task("unwatched")
    Task.objects.filter(pk=unwatched.pk).update_quietly(created_at=old)
    found = board.no_success(timezone.now())
    assert [(i.task.name, i.last_success is None) for i in found.rows] == [
        ("never", True),
        ("stale", False),
    ]
    with override_settings(TASKS_SCHED={"ALERTS": {"NO_SUCCESS_MINUTES": 120}}):
        names = {i.task.name for i in board.no_success(timezone.now()).rows}
    assert names == {"never", "stale", "unwatched"}


# -- the page -------------------------------------------------------------------------------


def test_the_page_shows_every_section(admin_client: Client) -> None:
    process("alive")
    task = make_task("nightly-report")
    run(task, Status.FAILED, timedelta(hours=1), error="ValueError: boom")
    run(task, Status.SUCCESSFUL, timedelta(hours=2))
    response = admin_client.get(DASHBOARD)
    assertContains(response, "host-alive")
    assertContains(response, "What fires next")
    assertContains(response, '<td class="dts-rate">50%</td>', count=2)
    # The charts say their numbers to a screen reader.
    assertContains(response, 'role="img"')
    assertContains(response, "1 of 2 successful")
    assertContains(response, '<meta http-equiv="refresh" content="60">')
    stopped = admin_client.get(DASHBOARD, {"refresh": "off"})
    assert b'http-equiv="refresh"' not in stopped.content


def test_linked_from_the_task_list(admin_client: Client) -> None:
    response = admin_client.get(reverse("admin:django_tasks_sched_task_changelist"))
    assertContains(response, f'href="{DASHBOARD}"')


def test_staff_without_the_view_permission_get_403(client: Client) -> None:
    user = User.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(user)
    assert client.get(DASHBOARD).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_task"))
    client.force_login(User.objects.get(pk=user.pk))
    assert client.get(DASHBOARD).status_code == 200


def test_anonymous_is_sent_to_the_login(client: Client) -> None:
    response = client.get(DASHBOARD)
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def _fill(prefix: str, tasks: int, runs_per_task: int) -> None:
    now = timezone.now()
    start = (now + timedelta(minutes=1)).replace(microsecond=0).isoformat()
    created = Task.objects.bulk_create(
        Task(
            name=f"{prefix}-{i}",
            func="tests.testapp.jobs:noop",
            trigger=Task.Trigger.INTERVAL,
            trigger_config={"minutes": 7, "start_date": start},
            alert_no_success_minutes=30 if i % 3 == 0 else None,
            timeout=60 if i % 2 else None,
            created_at=now - timedelta(days=1),
        )
        for i in range(tasks)
    )
    statuses = [Status.SUCCESSFUL, Status.FAILED, Status.MISSED, Status.RUNNING, Status.QUEUED]
    TaskRun.objects.bulk_create(
        TaskRun(
            task=task,
            status=statuses[(task.pk + j) % len(statuses)],
            scheduled_for=now - timedelta(hours=j * 5 + 1),
            enqueued_at=now - timedelta(hours=j * 5 + 1),
            started_at=now - timedelta(hours=j * 5 + 1, seconds=-3),
            attempt=1 + j % 2,
            worker_id="alive",
        )
        for task in created
        for j in range(runs_per_task)
    )


def _queries(client: Client) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(DASHBOARD)
    assert response.status_code == 200
    return len(captured.captured_queries)


def test_the_query_count_does_not_grow_with_tasks_and_runs(admin_client: Client) -> None:
    process("alive")
    _fill("few", 5, 2)
    few = _queries(admin_client)
    _fill("many", 200, 30)  # 205 tasks, 6,010 runs: every section has more rows than it shows
    many = _queries(admin_client)
    full = board.dashboard()
    assert len(full.health) == board.SHOWN
    assert full.stuck.more
    assert full.retrying.more
    assert full.no_success.more
    assert full.day.tasks > 200
    assert many == few, (few, many)
    assert few <= 30
