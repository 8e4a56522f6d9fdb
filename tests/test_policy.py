"""Follow-ups of unsuccessful runs: retries, the failure limit, timeouts, mail to ADMINS."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.test import override_settings
from django.utils import timezone

from django_tasks_sched.changes import current_version
from django_tasks_sched.lifecycle import end
from django_tasks_sched.models import Task, TaskRun
from django_tasks_sched.policy import after_outcomes
from django_tasks_sched.service.housekeeping import expire_overdue_runs
from tests import factories
from tests.factories import OPS

pytestmark = pytest.mark.django_db(transaction=True)


def make_task(name: str = "flaky", **fields: Any) -> Task:
    return factories.make_task(name, func="tests.testapp.jobs:fail", **fields)


def finished(task: Task, status: str = "FAILED", **fields: Any) -> TaskRun:
    now = timezone.now()
    return TaskRun.objects.create(
        task=task,
        status=status,
        started_at=now,
        finished_at=now,
        error="RuntimeError: boom",
        **fields,
    )


def test_a_failed_run_with_retries_left_queues_the_next_attempt() -> None:
    task = make_task(max_retries=2, retry_delay=30)
    first = finished(task, scheduled_for=timezone.now())
    (retry,) = after_outcomes([first])
    retry.refresh_from_db()
    assert retry.status == TaskRun.Status.QUEUED
    assert retry.origin == TaskRun.Origin.RETRY
    assert (retry.attempt, retry.first_attempt_id) == (2, first.pk)
    assert retry.scheduled_for is None  # the fire itself is recorded once, by the first run
    assert retry.not_before is not None
    assert timedelta(seconds=29) < retry.not_before - retry.enqueued_at <= timedelta(seconds=30)
    # Not due until then: schedulers claim only due runs.
    assert not TaskRun.objects.due().filter(pk=retry.pk).exists()
    assert TaskRun.objects.due(retry.not_before).filter(pk=retry.pk).exists()

    # The second attempt fails too: the third links to the same first attempt.
    retry.status = TaskRun.Status.FAILED
    retry.save()
    (third,) = after_outcomes([retry])
    assert (third.attempt, third.first_attempt_id) == (3, first.pk)
    # No retries left after the third attempt.
    third.status = TaskRun.Status.FAILED
    third.save()
    assert after_outcomes([third]) == []


def test_retry_without_delay_is_due_at_once_and_wakes_the_schedulers() -> None:
    task = make_task(max_retries=1)
    before = current_version()
    (retry,) = after_outcomes([finished(task, status="INTERRUPTED")])
    assert retry.not_before is None
    assert TaskRun.objects.due().filter(pk=retry.pk).exists()
    assert current_version() > before


@pytest.mark.parametrize("status", ["SUCCESSFUL", "MISSED", "CANCELLED"])
def test_other_outcomes_have_no_follow_up(status: str) -> None:
    task = make_task(max_retries=3)
    assert after_outcomes([finished(task, status=status)]) == []
    assert TaskRun.objects.count() == 1


def test_the_failure_limit_deactivates_the_task_and_says_why() -> None:
    task = make_task(max_consecutive_failures=3, consecutive_failures=3, max_retries=5)
    before = current_version()
    assert after_outcomes([finished(task)]) == []  # no retry of a task just switched off
    task.refresh_from_db()
    assert not task.active
    assert task.inactive_reason.startswith("Deactivated after 3 failed runs in a row")
    assert "RuntimeError: boom" in task.inactive_reason
    assert current_version() > before  # the schedulers drop it


def test_below_the_failure_limit_the_task_stays_active() -> None:
    task = make_task(max_consecutive_failures=3, consecutive_failures=2)
    after_outcomes([finished(task)])
    task.refresh_from_db()
    assert task.active


@override_settings(TASKS_SCHED={"MAIL_ADMINS_ON_FAILURE": True}, ADMINS=OPS)
def test_failures_and_deactivations_are_mailed_to_admins() -> None:
    task = make_task(max_consecutive_failures=1, consecutive_failures=1)
    after_outcomes([finished(task)])
    subjects = [message.subject for message in mail.outbox]
    assert any("Task flaky: run" in s and "failed" in s for s in subjects), subjects
    assert any("Task flaky deactivated" in s for s in subjects), subjects
    assert "RuntimeError: boom" in mail.outbox[0].body


def test_no_mail_by_default() -> None:
    after_outcomes([finished(make_task())])
    assert mail.outbox == []


def test_runs_past_their_timeout_are_timed_out_and_retried() -> None:
    task = make_task(timeout=5, max_retries=1)
    relaxed = make_task(name="relaxed", timeout=60)
    started = timezone.now() - timedelta(seconds=10)
    overdue = TaskRun.objects.create(task=task, status="RUNNING", started_at=started)
    fine = TaskRun.objects.create(task=relaxed, status="RUNNING", started_at=started)
    no_limit = TaskRun.objects.create(
        task=make_task(name="open"), status="RUNNING", started_at=started
    )

    (expired,) = expire_overdue_runs()
    assert expired.pk == overdue.pk
    overdue.refresh_from_db()
    assert overdue.status == TaskRun.Status.TIMED_OUT
    assert "timeout of 5s" in overdue.error
    assert overdue.finished_at is not None
    for run in (fine, no_limit):
        run.refresh_from_db()
        assert run.status == TaskRun.Status.RUNNING
    task.refresh_from_db()
    assert (task.last_run_status, task.consecutive_failures) == ("TIMED_OUT", 1)
    retry = TaskRun.objects.get(origin=TaskRun.Origin.RETRY)
    assert retry.first_attempt_id == overdue.pk
    assert expire_overdue_runs() == []  # nothing twice


def test_interrupted_runs_count_as_failures_and_are_retried() -> None:
    task = make_task(max_retries=1)
    run = finished(task, status="RUNNING")
    end([run], TaskRun.Status.INTERRUPTED, lambda run: "Interrupted: gone")
    task.refresh_from_db()
    assert task.consecutive_failures == 1
    assert TaskRun.objects.filter(origin="RETRY", first_attempt=run).exists()
