"""The dashboard in a real browser: found from the task list, read as a person on call reads it.

Uses the logged-in Chromium page of :mod:`tests.browser` (Debian's ``chromium``;
skipped where it is not installed, failed in CI).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from django_tasks_sched.models import SchedulerProcess, Task, TaskRun
from tests.browser import screenshot
from tests.factories import make_task

pytestmark = pytest.mark.django_db(transaction=True)

Status = TaskRun.Status


def history(task: Any, outcomes: list[str], late: float = 2.0) -> None:
    """Runs of ``task`` an hour apart, the newest first, each started ``late`` seconds late."""
    now = timezone.now()
    for i, status in enumerate(outcomes):
        at = now - timedelta(hours=i + 1)
        TaskRun.objects.create(
            task=task,
            status=status,
            scheduled_for=at,
            enqueued_at=at,
            started_at=at + timedelta(seconds=late),
            finished_at=at + timedelta(seconds=late + 1),
            error="ConnectionError: the mail server refused" if status == Status.FAILED else "",
        )


def test_the_dashboard_from_the_task_list(page: Any) -> None:
    SchedulerProcess.objects.create(
        worker_id="sched-1", hostname="web-1", pid=31337, version="1.0", last_seen=timezone.now()
    )
    mail = make_task("send-newsletter", trigger="cron", trigger_config={"crontab": "*/15 * * * *"})
    history(mail, [Status.FAILED, Status.SUCCESSFUL, Status.FAILED, Status.SUCCESSFUL], late=4)
    report = make_task("nightly-report", trigger="cron", trigger_config={"crontab": "0 3 * * *"})
    history(report, [Status.SUCCESSFUL] * 6, late=1)
    sync = make_task("sync-prices", trigger_config={"minutes": 5}, alert_no_success_minutes=30)
    Task.objects.filter(pk=sync.pk).update_quietly(created_at=timezone.now() - timedelta(hours=2))
    TaskRun.objects.create(
        task=sync,
        status=Status.QUEUED,
        attempt=2,
        not_before=timezone.now() + timedelta(minutes=3),
    )
    page.goto(f"{page.base_url}/admin/django_tasks_sched/task/")
    page.click("a.dts-dashboard-link")
    page.wait_for_selector("h1:has-text('Scheduler dashboard')")
    assert "/task/dashboard/" in page.url
    process = page.locator("tr.dts-process", has_text="web-1")
    assert "31337" in process.inner_text()
    assert "alive" in process.inner_text()
    # The failing task comes first, its success rate in figures and as a labelled chart.
    first = page.locator("tr.dts-health-row").first
    assert "send-newsletter" in first.inner_text()
    assert first.locator("td.dts-rate").first.inner_text() == "50%"
    label = first.locator("svg[role=img]").first.get_attribute("aria-label") or ""
    assert "1 of 1 successful" in label
    problems = page.locator("#dts-problems").inner_text()
    assert "attempt 2" in problems
    assert "sync-prices: no success recorded; expected every 30 min" in problems
    # Keyboard: the task's link is reachable and opens its page.
    page.locator("tr.dts-health-row a", has_text="send-newsletter").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/task/{mail.pk}/change/")
    page.go_back()
    page.wait_for_selector("#dts-health")
    screenshot(page, "dashboard")
