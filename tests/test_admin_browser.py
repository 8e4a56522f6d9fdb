"""The admin in a real browser: headless Chromium, driven by Playwright, on a live server.

What the request-level admin tests cannot show: that a person can do it with the pages as
rendered (links, buttons, forms, the action select), and that no page answers with an error.
Debian's ``chromium`` package provides the browser (``.ci/run`` installs it); Playwright's own
browser download is not used.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from django_tasks_sched.models import Task, TaskRun
from tests.browser import screenshot
from tests.factories import make_task

pytestmark = pytest.mark.django_db(transaction=True)


def test_deactivate_asks_why_and_the_list_says_who_paused_it(page: Any) -> None:
    task = make_task("nightly-report")
    page.goto(f"{page.base_url}/admin/django_tasks_sched/task/")
    page.check(f"input[name=_selected_action][value='{task.pk}']")
    page.select_option("select[name=action]", "deactivate_tasks")
    page.click("button[name=index]")
    # The action asks for the reason before it does anything.
    page.wait_for_selector("#id_reason")
    task.refresh_from_db()
    assert task.active
    page.fill("#id_reason", "paused during the migration")
    page.click("input[type=submit][value=Deactivate]")
    page.wait_for_selector("text=paused by admin")
    task.refresh_from_db()
    assert (task.active, task.paused_by, task.inactive_reason) == (
        False,
        "admin",
        "paused during the migration",
    )
    assert task.paused_at is not None
    # The badge's hover text is the reason; the task's page says who and when.
    screenshot(page, "task-list-paused")
    badge = page.locator(".dts-badge", has_text="paused by admin")
    assert badge.get_attribute("title") == "paused during the migration"
    page.click(f"a[href$='/task/{task.pk}/change/']")
    page.wait_for_selector("text=Paused by admin at")


def test_backfill_previews_the_fire_times_then_queues_them(page: Any) -> None:
    task = make_task("ten", trigger="cron", trigger_config={"crontab": "*/10 * * * *"})
    page.goto(f"{page.base_url}/admin/django_tasks_sched/task/{task.pk}/change/")
    page.click("text=Backfill")
    page.fill("#id_start", "2026-01-01T00:00")
    page.fill("#id_end", "2026-01-01T01:00")
    page.click("input[name=preview]")
    items = page.locator(".dts-backfill-preview li")
    items.first.wait_for()
    assert items.count() == 6
    assert page.locator("text=6 fire times in the range").count() == 1
    screenshot(page, "backfill-preview")
    assert not task.runs.exists()  # a preview queues nothing
    page.click("input[name=backfill]")
    page.wait_for_selector("text=6 runs queued for the range.")
    runs = task.runs.order_by("scheduled_for")
    assert runs.count() == 6
    assert {run.origin for run in runs} == {TaskRun.Origin.BACKFILL}
    # Backfilling the same range again adds nothing: each fire time has its run.
    page.click("text=Backfill")
    page.fill("#id_start", "2026-01-01T00:00")
    page.fill("#id_end", "2026-01-01T01:00")
    page.click("input[name=backfill]")
    page.wait_for_selector("text=0 runs queued for the range.")
    assert task.runs.count() == 6


def test_a_backfill_range_in_the_future_is_an_error_on_the_field(page: Any) -> None:
    task = make_task("ten", trigger="cron", trigger_config={"crontab": "*/10 * * * *"})
    page.goto(f"{page.base_url}/admin/django_tasks_sched/task/{task.pk}/backfill/")
    page.fill("#id_start", "2026-01-01T00:00")
    page.fill("#id_end", "2999-01-01T00:00")
    page.click("input[name=preview]")
    page.wait_for_selector("text=must not be in the future")
    assert not task.runs.exists()


def test_bad_trigger_config_on_the_add_form_is_an_error_not_a_500(page: Any) -> None:
    page.goto(f"{page.base_url}/admin/django_tasks_sched/task/add/")
    page.fill("#id_name", "bad")
    page.fill("#id_func", "tests.testapp.jobs:noop")
    page.select_option("#id_trigger", "interval")
    page.fill("#id_trigger_config", '{"seconds": NaN}')
    page.click("input[name=_save]")
    page.wait_for_selector(".errornote")
    assert page.locator(".errorlist").count() >= 1
    assert not Task.objects.filter(name="bad").exists()


# -- the lists at 1280 px -----------------------------------------------------------------------

#: Where a list's table ends, against the window and the box that would scroll it sideways.
TABLE_GEOMETRY = """() => {
    const table = document.querySelector('#result_list');
    const results = table.closest('.results');
    const headers = [...table.querySelectorAll('thead th')];
    return {
        viewport: document.documentElement.clientWidth,
        innerWidth: window.innerWidth,
        tableRight: table.getBoundingClientRect().right,
        resultsRight: results.getBoundingClientRect().right,
        lastHeaderRight: headers[headers.length - 1].getBoundingClientRect().right,
        headers: headers.map(th => th.textContent.trim()),
        scrollWidth: results.scrollWidth,
        clientWidth: results.clientWidth,
        pageScrollWidth: document.documentElement.scrollWidth,
        sidebarOpen: document.querySelector('#nav-sidebar').getBoundingClientRect().width > 0,
    };
}"""


def box(page: Any, selector: str) -> dict[str, float]:
    found: dict[str, float] = page.locator(selector).first.bounding_box()
    assert found is not None, f"{selector} is not shown"
    return found


def overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and b["y"] < a["y"] + a["height"]
    )


def seed_long_values() -> None:
    """Tasks and runs with the long values real projects have: dotted names and callables,
    a zone in the schedule, a person's pause, a host's fully qualified name in the worker."""
    now = timezone.now()
    worker = "scheduler:some-host.example.internal:12345"
    for i, name in enumerate(
        [
            "billing.invoices.send-monthly-statements-to-customers",
            "nightly-warehouse-export-of-customer-invoices",
            "reports.weekly_summary_for_the_operations_team",
        ]
    ):
        task = make_task(
            name,
            func="myproject.billing.tasks.invoices:send_monthly_statements_to_customers",
            trigger=Task.Trigger.CRON,
            trigger_config={"crontab": "30 2 * * mon-fri", "timezone": "Europe/Berlin"},
            last_run_status=TaskRun.Status.TIMED_OUT,
            last_run_at=now,
        )
        first = TaskRun.objects.create(
            task=task,
            status=TaskRun.Status.TIMED_OUT,
            scheduled_for=now - timedelta(hours=1, minutes=i),
            enqueued_at=now - timedelta(hours=1),
            started_at=now - timedelta(hours=1),
            finished_at=now - timedelta(minutes=3),
            progress=0.5,
            worker_id=worker,
            error="TimeoutError: ran past the task's timeout of 3600 s",
        )
        TaskRun.objects.create(
            task=task,
            status=TaskRun.Status.INTERRUPTED,
            origin=TaskRun.Origin.RETRY,
            attempt=2,
            first_attempt=first,
            enqueued_at=now - timedelta(minutes=2),
            started_at=now - timedelta(minutes=2),
            finished_at=now,
            worker_id=worker,
        )
        TaskRun.objects.create(
            task=task,
            status=TaskRun.Status.SUCCESSFUL,
            origin=TaskRun.Origin.CLI,
            started_at=now,
            finished_at=now + timedelta(hours=2, minutes=4),
            worker_id="inline:build-runner-7.ci.example.internal:4242",
        )
    make_task("paused-for-the-migration").pause(
        "paused during the migration", by="a.very.long.username@example.com"
    )
    Task.objects.filter(name__startswith="reports.").switch_off(
        "Deactivated after 3 failed runs in a row"
    )


@pytest.mark.parametrize(
    ("path", "last_header"),
    [("task/", "Last run"), ("taskrun/", "Worker")],
)
def test_every_column_of_the_lists_fits_1280_px_with_the_sidebar_open(
    page: Any, path: str, last_header: str
) -> None:
    seed_long_values()
    page.goto(f"{page.base_url}/admin/django_tasks_sched/{path}")
    screenshot(page, "task-list" if path == "task/" else "run-list")
    geometry = page.evaluate(TABLE_GEOMETRY)
    assert geometry["sidebarOpen"]
    assert geometry["innerWidth"] == 1280
    assert geometry["headers"][-1] == last_header
    # The table ends inside the window and inside its box: no column is cut off, and the
    # results need no sideways scroll, nor does the page.
    assert geometry["tableRight"] <= geometry["resultsRight"] + 0.5, geometry
    assert geometry["tableRight"] <= geometry["viewport"], geometry
    assert geometry["lastHeaderRight"] <= geometry["innerWidth"], geometry
    assert geometry["scrollWidth"] <= geometry["clientWidth"], geometry
    assert geometry["pageScrollWidth"] <= geometry["viewport"], geometry


def test_the_add_button_leaves_the_banner_alone(page: Any) -> None:
    make_task("nightly-warehouse-export-of-customer-invoices")
    page.goto(f"{page.base_url}/admin/django_tasks_sched/task/")
    banner = box(page, ".dts-scheduler-banner li")
    tools = box(page, ".object-tools")
    assert not overlap(banner, tools), (banner, tools)
    assert not overlap(banner, box(page, ".object-tools a.addlink"))
    # The whole warning is in the window, its end included.
    assert banner["x"] + banner["width"] <= 1280
    assert page.locator(".dts-scheduler-banner li code").is_visible()


def test_a_task_page_has_room_for_its_callable_and_its_runs(page: Any) -> None:
    seed_long_values()
    task = Task.objects.get(name="nightly-warehouse-export-of-customer-invoices")
    page.goto(f"{page.base_url}/admin/django_tasks_sched/task/{task.pk}/change/")
    func = page.locator("#id_func")
    # The whole dotted path is in view, not scrolled inside a 20em box.
    assert func.evaluate("el => el.scrollWidth <= el.clientWidth")
    font_size = float(func.evaluate("el => parseFloat(getComputedStyle(el).fontSize)"))
    assert func.evaluate("el => el.getBoundingClientRect().width") >= 39 * font_size
    # The recent runs are under "Run history", inside the window.
    section = page.locator("fieldset", has=page.locator("h2", has_text="Run history"))
    runs = section.locator(".dts-recent-runs")
    assert runs.locator("tbody tr").count() == 3
    right = runs.evaluate("el => el.getBoundingClientRect().right")
    assert right <= page.evaluate("() => document.documentElement.clientWidth")
    screenshot(page, "task-page")
