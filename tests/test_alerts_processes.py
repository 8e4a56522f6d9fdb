"""Alerts from real runscheduler processes to a real local webhook receiver.

Two schedulers check the alerts every 0.2 s: a task failing on every fire yields one
"raised" POST, not one per run or per process; once fixed, one "resolved" POST.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from django_tasks_sched.models import AlertState, Task, TaskRun
from tests.processes import FAST_HEARTBEAT, wait_until
from tests.processes import SchedulerProcess as Proc
from tests.test_alerts import Receiver

pytestmark = pytest.mark.django_db(transaction=True)

CHECK_INTERVAL = 0.2


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def settings_for(url: str, timeout: float = 5) -> dict[str, Any]:
    alerts = {"WEBHOOK_URL": url, "WEBHOOK_TIMEOUT": timeout, "CHECK_INTERVAL": CHECK_INTERVAL}
    return {**FAST_HEARTBEAT, "ALERTS": {"CHANNELS": ["webhook"], **alerts}}


def two_schedulers(tmp_path: Path, url: str) -> list[Proc]:
    procs = [Proc(tmp_path / f"s{i}.log", settings=settings_for(url)) for i in range(2)]
    for proc in procs:
        proc.wait_ready()
    return procs


def runs_finished_after(task: Task, status: str, since: Any, count: int) -> bool:
    """``count`` runs ended with ``status`` after ``since``: every process checked since."""
    return task.runs.filter(status=status, finished_at__gt=since).count() >= count


def failing_task() -> Task:
    return Task.objects.create(
        name="flaky",
        func="tests.testapp.jobs:fail",
        trigger="interval",
        trigger_config={"seconds": 1},
        alert_on_failure=True,
    )


def test_one_raised_and_one_resolved_post_across_two_schedulers(
    tmp_path: Path, receiver: Receiver
) -> None:
    # Left raised by checkalerts while no scheduler ran: a starting scheduler resolves it.
    AlertState.objects.create(kind=AlertState.Kind.NO_SCHEDULER, raised=True)
    task = failing_task()
    procs = two_schedulers(tmp_path, receiver.url)
    try:
        posts = receiver.wait_for(2)
        by_kind = {post["alert"]["kind"]: post for post in posts}
        assert by_kind["no_scheduler"]["alert"]["raised"] is False
        assert by_kind["no_scheduler"]["text"].startswith("Resolved: the scheduler")
        assert by_kind["failure"]["alert"]["raised"] is True
        assert by_kind["failure"]["alert"]["task"] == "flaky"
        raised_at = timezone.now()
        # Several more failures, each followed by many checks in both processes: no more POSTs.
        wait_until(
            lambda: runs_finished_after(task, TaskRun.Status.FAILED, raised_at, 3), 30, procs[0]
        )
        assert len(receiver.posts) == 2, receiver.posts

        task.func = "tests.testapp.jobs:noop"
        task.save()
        posts = receiver.wait_for(3)
        assert posts[2]["alert"] == {**posts[2]["alert"], "kind": "failure", "raised": False}
        assert posts[2]["text"].startswith("Resolved: task flaky")
        resolved_at = timezone.now()
        wait_until(
            lambda: runs_finished_after(task, TaskRun.Status.SUCCESSFUL, resolved_at, 3),
            30,
            procs[0],
        )
        assert len(receiver.posts) == 3, receiver.posts
    finally:
        codes = [proc.stop() for proc in procs]
    logs = [proc.output() for proc in procs]
    assert codes == [0, 0], logs
    assert not [log for log in logs if "Alert check failed" in log], logs


def test_a_slow_webhook_does_not_delay_fires(tmp_path: Path) -> None:
    slow = Receiver(delay=4)
    task = failing_task()
    proc = Proc(tmp_path / "s.log", settings=settings_for(slow.url, timeout=5))
    try:
        proc.wait_ready()
        slow.wait_for(1)  # the alert thread now waits 4 s for the answer
        posted_at = timezone.now()
        wait_until(lambda: task.runs.filter(started_at__gt=posted_at).count() >= 3, 30, proc)
        late = [
            run.started_at - run.scheduled_for
            for run in task.runs.filter(started_at__gt=posted_at)
            if run.started_at and run.scheduled_for
        ]
        assert late
        assert max(late).total_seconds() < 1, late
    finally:
        assert proc.stop() == 0, proc.output()
        slow.close()
