"""The admin as found by trying it in a browser (issue 15): zones, retries, the form's sections.

The layout at 1280 px is checked in a real browser (``tests/test_admin_browser.py``); these
tests read the pages as the test client gets them.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils.html import escape
from pytest_django.asserts import assertContains, assertNotContains

from django_tasks_sched.admin.run import SCHEDULED_HELP
from django_tasks_sched.models import Task, TaskRun
from django_tasks_sched.service.runner import Options, SchedulerService
from tests.factories import make_task

pytestmark = pytest.mark.django_db

TASK_CHANGELIST = reverse("admin:django_tasks_sched_task_changelist")
TASK_ADD = reverse("admin:django_tasks_sched_task_add")
RUN_CHANGELIST = reverse("admin:django_tasks_sched_taskrun_changelist")

#: Every 6 hours from 2100-01-01 in Berlin: the first fire is 2099-12-31 23:00 UTC.
BERLIN_SCHEDULE = {"hours": 6, "start_date": "2100-01-01T00:00:00", "timezone": "Europe/Berlin"}
#: A summer noon in UTC: 08:00 EDT in New York.
NOON = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)


def task_url(task: Task) -> str:
    return reverse("admin:django_tasks_sched_task_change", args=[task.pk])


def run_url(run: TaskRun) -> str:
    return reverse("admin:django_tasks_sched_taskrun_change", args=[run.pk])


def labelled(date: str, time_and_zone: str, zone: str = "America/New_York") -> str:
    """A time as the admin renders it: date, time and zone abbreviation, the zone on hover."""
    return f'title="{zone}"><span>{date}</span> <span>{time_and_zone}</span></time>'


def field_html(content: str, name: str) -> str:
    """The HTML of one row of an admin form, from its label to the next row."""
    row = rf'<div class="form-row[^"]*\bfield-{name}\b[^"]*">'
    found = re.search(rf'{row}(.*?)(?=<div class="form-row|</fieldset>)', content, re.S)
    assert found, f"no field {name} on the page"
    return found.group(1)


def fieldsets(response: Any) -> dict[str, dict[str, Any]]:
    """The form's sections by title, each with its fields, classes and description."""
    return {
        str(fieldset.name): {
            "fields": list(fieldset.fields),
            "classes": fieldset.classes,
            "description": str(fieldset.description or ""),
        }
        for fieldset in response.context["adminform"]
    }


@pytest.fixture
def new_york(settings: Any) -> None:
    """The site's zone is New York: not UTC, and not the tasks' own zone."""
    settings.TIME_ZONE = "America/New_York"


@pytest.fixture
def retried() -> tuple[TaskRun, TaskRun]:
    """A run started by hand that failed, and its retry enqueued within the same second."""
    task = make_task("nightly-report")
    first = TaskRun.objects.create(
        task=task,
        origin=TaskRun.Origin.MANUAL,
        status=TaskRun.Status.FAILED,
        enqueued_at=NOON,
        started_at=NOON,
        finished_at=NOON + timedelta(milliseconds=200),
    )
    retry = TaskRun.objects.create(
        task=task,
        origin=TaskRun.Origin.RETRY,
        attempt=2,
        first_attempt=first,
        status=TaskRun.Status.FAILED,
        enqueued_at=NOON + timedelta(milliseconds=300),
        started_at=NOON + timedelta(milliseconds=300),
        finished_at=NOON + timedelta(milliseconds=500),
    )
    return first, retry


# -- every time says its zone ---------------------------------------------------------------


@pytest.mark.usefixtures("new_york")
def test_the_task_list_labels_its_times_with_the_zone(admin_client: Client) -> None:
    make_task("berlin", trigger_config=BERLIN_SCHEDULE, last_run_status="FAILED", last_run_at=NOON)
    response = admin_client.get(TASK_CHANGELIST)
    # In the site's zone, named: a Berlin task's first fire, and its last run.
    assertContains(response, labelled("2099-12-31", "18:00:00 EST"))
    assertContains(response, labelled("2026-07-01", "08:00:00 EDT"))
    # The last run's status and time share a column.
    assertContains(response, 'data-status="FAILED">Failed</span> <time class="dts-time"')


@pytest.mark.usefixtures("new_york")
def test_the_task_page_labels_every_time_with_its_zone(admin_client: Client) -> None:
    task = make_task(
        "berlin", trigger_config=BERLIN_SCHEDULE, last_run_status="FAILED", last_run_at=NOON
    )
    TaskRun.objects.create(task=task, status="FAILED", enqueued_at=NOON)
    content = admin_client.get(task_url(task)).content.decode()
    # The preview is in the task's own zone, and says so.
    assert 'title="Europe/Berlin">Fri 2100-01-01 00:00:00 CET</time>' in field_html(
        content, "upcoming_fire_times"
    )
    assert labelled("2099-12-31", "18:00:00 EST") in field_html(content, "next_run")
    assert labelled("2026-07-01", "08:00:00 EDT") in field_html(content, "last_run")
    assert labelled("2026-07-01", "08:00:00 EDT") in field_html(content, "recent_runs")
    for name in ("created", "updated"):
        assert re.search(r"<span>\d\d:\d\d:\d\d E[DS]T</span>", field_html(content, name)), name
    # "Next run" keeps the help text of the field it shows.
    assert "Next fire time; empty when inactive or finished." in field_html(content, "next_run")


@pytest.mark.usefixtures("new_york")
def test_who_paused_a_task_and_when_in_a_named_zone(admin_client: Client) -> None:
    task = make_task("paused")
    task.pause("deploy freeze", by="alice")
    content = admin_client.get(task_url(task)).content.decode()
    assert re.search(
        r"Paused by alice at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d E[DS]T\.",
        field_html(content, "pause_note"),
    )


@pytest.mark.usefixtures("new_york")
def test_the_run_list_labels_its_times_with_the_zone(admin_client: Client) -> None:
    TaskRun.objects.create(
        task=make_task("hourly"),
        status=TaskRun.Status.SUCCESSFUL,
        scheduled_for=NOON,
        enqueued_at=NOON,
        started_at=NOON + timedelta(seconds=2),
        finished_at=NOON + timedelta(seconds=5),
        progress=0.5,
        worker_id="scheduler:some-host.example.internal:12345",
    )
    response = admin_client.get(RUN_CHANGELIST)
    assertContains(response, labelled("2026-07-01", "08:00:00 EDT"), count=2)  # enqueued, fire
    assertContains(response, labelled("2026-07-01", "08:00:02 EDT"))  # started
    assertContains(response, "ran 3.00 s")
    assertContains(response, 'value="50.0"')  # the progress, under the status
    assertContains(response, "scheduler:<wbr>some-host.<wbr>example.<wbr>internal:<wbr>12345")


@pytest.mark.usefixtures("new_york")
def test_the_run_page_labels_every_time_with_its_zone(admin_client: Client) -> None:
    run = TaskRun.objects.create(
        task=make_task("handed"),
        status=TaskRun.Status.SUCCESSFUL,
        scheduled_for=NOON,
        enqueued_at=NOON,
        started_at=NOON,
        finished_at=NOON,
        heartbeat_at=NOON,
        alive_at=NOON,
        handed_at=NOON,
        backend="default",
    )
    content = admin_client.get(run_url(run)).content.decode()
    fields = ["scheduled_detail", "enqueued", "started", "finished", "heartbeat", "alive", "handed"]
    for name in fields:
        assert labelled("2026-07-01", "08:00:00 EDT") in field_html(content, name), name
    # The fields shown through methods keep their help text.
    assert "When it was last enqueued on its backend." in field_html(content, "handed")
    assert "current_run().heartbeat()" in field_html(content, "heartbeat")
    assert "HEARTBEAT_TIMEOUT" in field_html(content, "alive")
    assert "(kind, host, pid)" in field_html(content, "worker")


# -- a retry is told from its first attempt ---------------------------------------------------


def test_a_retry_page_says_which_run_it_retries(
    admin_client: Client, retried: tuple[TaskRun, TaskRun]
) -> None:
    first, retry = retried
    content = admin_client.get(run_url(retry)).content.decode()
    scheduled = field_html(content, "scheduled_detail")
    assert (
        f'None: this is attempt 2, a retry of <a href="{run_url(first)}">run {first.pk}</a>.'
        in scheduled
    )
    # The help text no longer says a run without a fire time was started by hand.
    assert escape(str(SCHEDULED_HELP)) in scheduled
    assert "empty for a run started by hand" not in content
    # The first attempt is linked under the title its own page has.
    first_page = admin_client.get(run_url(first))
    assert f'<a href="{run_url(first)}">{first_page.context["subtitle"]}</a>' in field_html(
        content, "first_attempt_link"
    )


def test_a_retry_s_title_is_not_its_first_attempt_s(
    admin_client: Client, retried: tuple[TaskRun, TaskRun]
) -> None:
    first, retry = retried
    first_page, retry_page = admin_client.get(run_url(first)), admin_client.get(run_url(retry))
    first_title, retry_title = first_page.context["subtitle"], retry_page.context["subtitle"]
    assert first_title == "nightly-report @ 2026-07-01 12:00:00 UTC (Failed)"
    assert retry_title == "nightly-report @ 2026-07-01 12:00:00 UTC, attempt 2 (Failed)"
    # In the heading, the window's title and the breadcrumbs.
    for part in (f"<h2>{retry_title}</h2>", f"<title>{retry_title} |"):
        assertContains(retry_page, part)
    # (Django 5.2 writes the breadcrumbs as a div, 6.x as a list.)
    breadcrumbs = retry_page.content.decode().split('class="breadcrumbs"')[1].split("</nav>")[0]
    assert retry_title in breadcrumbs
    assertNotContains(first_page, "attempt 2")


def test_the_run_list_shows_a_retry_s_attempt(
    admin_client: Client, retried: tuple[TaskRun, TaskRun]
) -> None:
    response = admin_client.get(RUN_CHANGELIST)
    assertContains(response, 'Retry<div class="dts-under">attempt 2</div>', count=1)
    assertContains(response, '<td class="field-triggered_by">Manual (run now)</td>', count=1)


@pytest.mark.django_db(transaction=True)  # the service's threads use connections of their own
def test_the_scheduler_logs_a_retry_as_a_retry(
    retried: tuple[TaskRun, TaskRun],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, retry = retried
    TaskRun.objects.filter(pk=retry.pk).update(status=TaskRun.Status.QUEUED, started_at=None)
    manual = TaskRun.objects.create(task=first.task, origin=TaskRun.Origin.MANUAL)
    service = SchedulerService(Options.from_settings(threads=4))
    claimed: list[TaskRun] = []
    monkeypatch.setattr(service.executor, "submit_run", claimed.append)  # claimed, not run
    caplog.set_level(logging.INFO, logger="django_tasks_sched.scheduler")
    try:
        service.claim_queued()
    finally:
        service.executor.shutdown()
    assert sorted(run.pk for run in claimed) == [retry.pk, manual.pk]
    assert (
        f"Run {retry.pk} of task 'nightly-report' claimed (retry of run {first.pk}, attempt 2)"
        in caplog.messages
    )
    assert f"Run {manual.pk} of task 'nightly-report' claimed (manual)" in caplog.messages
    assert not any("run now" in message for message in caplog.messages)


# -- the form's sections ------------------------------------------------------------------------


def test_retention_settings_and_run_history_are_sections_of_their_own(
    admin_client: Client,
) -> None:
    task = make_task("busy")
    TaskRun.objects.create(task=task, status="SUCCESSFUL")
    sections = fieldsets(admin_client.get(task_url(task)))
    assert list(sections)[-6:] == [
        "Alerts",
        "Retention",
        "Status",
        "Run history",
        "Changes",
        "Origin",
    ]
    retention = sections["Retention"]
    assert retention["fields"] == ["keep_runs_days", "keep_runs_count"]
    assert "collapse" in retention["classes"]
    assert retention["description"].startswith("How long this task's finished runs")
    assert "Left empty, these follow the project's settings" in retention["description"]
    assert sections["Status"]["fields"] == ["next_run", "last_run"]
    # The history itself, open, under its own title.
    assert sections["Run history"]["fields"] == ["recent_runs"]
    assert "collapse" not in sections["Run history"]["classes"]


def test_the_add_form_has_retention_but_no_history_yet(admin_client: Client) -> None:
    sections = fieldsets(admin_client.get(TASK_ADD))
    assert "Retention" in sections
    assert not {"Status", "Run history", "Origin"} & set(sections)


def test_the_callable_box_is_wide(admin_client: Client) -> None:
    # Twice the admin's 20em text box (admin.css): room for a real dotted path.
    content = admin_client.get(TASK_ADD).content.decode()
    assert re.search(r'<input [^>]*class="vTextField dts-callable"[^>]*id="id_func"', content)


# -- the task list's banner -----------------------------------------------------------------------


def test_the_banner_comes_after_the_object_tools(admin_client: Client) -> None:
    content = admin_client.get(TASK_CHANGELIST).content.decode()
    # The object tools float up beside the title; placed before them, the banner was
    # covered by the ADD TASK button.
    assert content.index('class="object-tools"') < content.index("dts-scheduler-banner")
    assert content.index("dts-scheduler-banner") < content.index('id="changelist"')
