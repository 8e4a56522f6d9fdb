"""Alerts and the audit trail in a real browser: a person edits a task's alerts, reads who
changed what on the task's page and in the filtered list of changes, and sees an alert raised
(Playwright and Debian's Chromium, as tests/test_admin_browser.py)."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from django_tasks_sched.alerts.states import flip
from django_tasks_sched.models import AlertState, TaskChange
from tests.browser import screenshot_of
from tests.factories import make_task

pytestmark = pytest.mark.django_db(transaction=True)


def section(page: Any, title: str) -> Any:
    """The form's fieldset headed ``title``."""
    return page.locator("fieldset.module", has=page.locator("h2", has_text=title))


def test_an_edit_in_the_admin_is_in_the_audit_trail_and_an_alert_shows(page: Any) -> None:
    task = make_task("nightly-report")
    page.goto(f"{page.base_url}/admin/django_tasks_sched/task/{task.pk}/change/")
    page.select_option("#id_alert_on_failure", "true")
    page.fill("#id_description", "Mails the report to the sales team")
    page.click("input[name=_continue]")
    page.wait_for_selector("text=was changed successfully")

    # The record: through the admin, by the person, old and new values.
    change = TaskChange.objects.filter(task=task).latest("at")
    assert (change.action, change.via, change.who) == ("changed", "admin", "admin")
    assert change.fields == {
        "alert_on_failure": [None, True],
        "description": ["", "Mails the report to the sales team"],
    }
    changes = section(page, "Changes")
    row = changes.locator("tbody tr").first
    assert "admin" in row.inner_text()
    assert "Mails the report to the sales team" in row.inner_text()
    screenshot_of(changes, "task-changes")

    # Every change of the task, filtered to those made in the admin.
    page.click("text=View all changes of this task")
    page.click("#changelist-filter a:text-is('admin')")
    page.wait_for_url("**via__exact=admin**")
    results = page.locator("#result_list tbody tr")
    assert results.count() == 1  # the creation was through code, not the admin
    screenshot_of(page.locator("#content"), "task-change-list")

    # An alert raised by the checks shows on the task's page, with why.
    detail = "FAILED: ConnectionError: the mail server refused the connection"
    assert flip(task.pk, AlertState.Kind.FAILURE, True, timezone.now(), detail)
    page.goto(f"{page.base_url}/admin/django_tasks_sched/task/{task.pk}/change/")
    alerts = section(page, "Alerts")
    assert "run failed" in alerts.inner_text()
    assert "the mail server refused the connection" in alerts.inner_text()
    screenshot_of(alerts, "task-alerts")
