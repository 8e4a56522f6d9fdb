"""The schedule editor in a real browser: write a schedule without typing JSON, watch the
preview, save, run it now and see the run (Playwright and Debian's Chromium, as
tests/test_admin_browser.py; a real ``runscheduler`` runs the task)."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from django_tasks_sched.models import Task, TaskRun
from tests.browser import SCREENSHOTS, screenshot
from tests.processes import SchedulerProcess, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

WEEKDAYS = {"crontab": "30 9 * * mon-fri"}


def shot_schedule(page: Any, name: str) -> None:
    """Save the form's Schedule section (editor, preview, JSON) for the docs, when asked to."""
    if SCREENSHOTS:
        section = page.locator("fieldset.module", has=page.locator(".dts-editor"))
        section.screenshot(path=os.path.join(SCREENSHOTS, f"{name}.png"))


def json_box(page: Any) -> Any:
    return json.loads(page.input_value("#id_trigger_config"))


def active_id(page: Any) -> str:
    return str(page.evaluate("document.activeElement.id"))


def tab_to(page: Any, element_id: str, most: int = 6) -> None:
    """Press Tab until ``element_id`` has the focus (a time input takes a Tab per part)."""
    for _ in range(most):
        page.keyboard.press("Tab")
        if active_id(page) == element_id:
            return
    raise AssertionError(f"Tab never reached #{element_id}; stopped at #{active_id(page)}")


def test_write_a_schedule_with_the_editor_preview_it_save_and_run_it(
    page: Any, scheduler: SchedulerProcess
) -> None:
    page.goto(f"{page.base_url}/admin/django_tasks_sched/task/add/")
    page.fill("#id_name", "weekday-report")
    page.fill("#id_func", "tests.testapp.jobs:noop")
    page.select_option("#id_trigger", "cron")
    # The keyboard alone: from the trigger, Tab reaches the presets, the time and the button.
    page.focus("#id_trigger")
    tab_to(page, "dts-cron-preset", most=1)
    page.select_option("#dts-cron-preset", "weekdays")
    tab_to(page, "dts-cron-time", most=1)  # the presets' other inputs are hidden
    page.fill("#dts-cron-time", "09:30")
    tab_to(page, "dts-cron-apply")
    page.keyboard.press("Enter")
    assert json_box(page) == WEEKDAYS
    assert page.input_value("#dts-cron-crontab") == WEEKDAYS["crontab"]
    # The preview: the words, and five fire times in the task's zone and the site's.
    words = page.locator(".dts-preview-words")
    words.filter(has_text="At 09:30, Monday through Friday").wait_for()
    rows = page.locator(".dts-preview-times tbody tr")
    wait_until(lambda: rows.count() == 5)
    assert " 09:30:00 " in rows.first.locator("td").first.inner_text()
    assert page.locator(".dts-preview-errors li").count() == 0
    shot_schedule(page, "schedule-editor")

    # A bad value, typed: the JSON follows and the error shows by the field and in the preview.
    tab_to(page, "dts-cron-crontab", most=1)
    page.keyboard.press("Control+A")
    page.keyboard.type("61 9 * * mon-fri")
    assert json_box(page) == {"crontab": "61 9 * * mon-fri"}
    page.locator(".field-trigger_config > ul.errorlist li").first.wait_for()
    assert "minute" in page.locator(".dts-preview-errors").inner_text().lower()
    assert rows.count() == 0 or not page.locator(".dts-preview-times").is_visible()
    shot_schedule(page, "schedule-editor-error")

    # The JSON, edited by hand, refills the inputs; a key the editor has no input for stays.
    typed = {**WEEKDAYS, "timezone": "Europe/Paris"}
    page.fill("#id_trigger_config", json.dumps(typed))
    assert page.input_value("#dts-cron-crontab") == WEEKDAYS["crontab"]
    assert page.input_value("#dts-cron-timezone") == "Europe/Paris"
    words.filter(has_text="(Europe/Paris)").wait_for()
    page.locator(".dts-preview-errors li").first.wait_for(state="detached")
    page.emulate_media(color_scheme="dark")
    shot_schedule(page, "schedule-editor-dark")
    page.emulate_media(color_scheme="light")

    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success")
    task = Task.objects.get(name="weekday-report")
    assert (task.trigger, task.trigger_config) == ("cron", typed)

    # Run it now; the scheduler process runs it and the run list shows it.
    page.goto(f"{page.base_url}/admin/django_tasks_sched/task/{task.pk}/change/")
    page.locator(".dts-preview-words", has_text="Europe/Paris").wait_for()  # the change page too
    page.click(".dts-run-now button")
    page.wait_for_selector(".messagelist .success")
    wait_until(lambda: task.runs.filter(status=TaskRun.Status.SUCCESSFUL).exists(), 15, scheduler)
    page.goto(f"{page.base_url}/admin/django_tasks_sched/taskrun/?task__id__exact={task.pk}")
    page.locator("#result_list .dts-badge[data-status=SUCCESSFUL]").wait_for()
    screenshot(page, "schedule-editor-run")


def test_an_interval_typed_in_its_inputs_becomes_json_keeping_unknown_keys(page: Any) -> None:
    page.goto(f"{page.base_url}/admin/django_tasks_sched/task/add/")
    page.select_option("#id_trigger", "interval")
    page.fill("#id_trigger_config", '{"minutes": 5, "x-note": "kept"}')
    assert page.input_value("#dts-interval-minutes") == "5"
    page.fill("#dts-interval-hours", "2")
    page.fill("#dts-interval-minutes", "")
    assert json_box(page) == {"x-note": "kept", "hours": 2}
    # The unknown key is the form's error, on its field, once the schedule was touched.
    page.locator(".field-trigger_config > ul.errorlist li", has_text="x-note").wait_for()
    # Fields not yet touched on the add page show no error while still blank.
    assert page.locator(".field-name > ul.errorlist").count() == 0
