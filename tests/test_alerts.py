"""Alerts: each state's raise and clear, exactly-once flips, channels, settings checks, command.

The webhook goes to a real HTTP server on 127.0.0.1 in this process (:class:`Receiver`);
tests/test_alerts_processes.py drives real runscheduler processes against it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import OperationalError
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from django_tasks_sched.alerts import evaluate
from django_tasks_sched.alerts.channels import TEXT_LIMIT, payload, send
from django_tasks_sched.alerts.checks import check_alerts
from django_tasks_sched.alerts.config import alert_settings
from django_tasks_sched.alerts.evaluate import AlertChecker, check_no_scheduler
from django_tasks_sched.alerts.states import DETAIL_LIMIT, Change, flip
from django_tasks_sched.models import AlertState, SchedulerProcess, Task, TaskRun
from django_tasks_sched.signals import alert_changed
from django_tasks_sched.summaries import KEEP, fold, record_summaries
from tests.factories import OPS, make_task

Kind = AlertState.Kind


class Receiver:
    """A real local webhook receiver: records each JSON POST; answers ``status`` after ``delay``."""

    def __init__(self, status: int = 200, delay: float = 0) -> None:
        self.posts: list[dict[str, Any]] = []
        self.status = status
        self.delay = delay
        self.changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.changed:
                    receiver.posts.append(json.loads(body))
                    receiver.changed.notify_all()
                time.sleep(receiver.delay)  # a slow endpoint (the sender must not wait for it)
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet test output

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, count: int, timeout: float = 30) -> list[dict[str, Any]]:
        """Wait until ``count`` POSTs arrived (a deadline, no fixed sleep); return them all."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while len(self.posts) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(self.posts)} POST(s), wanted {count}: {self.posts}")
                self.changed.wait(left)
            return list(self.posts)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def alerts(**values: Any) -> Any:
    """``override_settings`` with these ``TASKS_SCHED["ALERTS"]`` keys."""
    return override_settings(TASKS_SCHED={"ALERTS": values})


def run(task: Task, status: str, *, ago: float = 0, error: str = "") -> TaskRun:
    at = timezone.now() - timedelta(seconds=ago)
    created = TaskRun.objects.create(
        task=task, status=status, started_at=at, finished_at=at, error=error
    )
    # The task's last-run summary (its last success), as the scheduler writes it.
    record_summaries(fold([(created, KEEP)]), "default")
    return created


def kinds(changes: list[Change]) -> list[tuple[str, bool]]:
    return [(change.state.kind, change.raised) for change in changes]


@pytest.mark.django_db
class TestStates:
    def test_failure_is_raised_once_and_resolved_by_a_success(self) -> None:
        task = make_task(alert_on_failure=True)
        checker = AlertChecker()
        run(task, TaskRun.Status.FAILED, ago=3, error="ValueError: boom")
        assert kinds(checker.check()) == [(Kind.FAILURE, True)]
        run(task, TaskRun.Status.TIMED_OUT, ago=2)
        assert checker.check() == []  # still failing: no second message
        run(task, TaskRun.Status.SUCCESSFUL, ago=1)
        assert kinds(checker.check()) == [(Kind.FAILURE, False)]
        assert checker.check() == []

    def test_the_settings_default_applies_only_to_tasks_that_leave_it_empty(self) -> None:
        default, own_off, own_on = (
            make_task("default"),
            make_task("off", alert_on_failure=False),
            make_task("on", alert_on_failure=True),
        )
        for task in (default, own_off, own_on):
            run(task, TaskRun.Status.FAILED)
        with alerts(ON_FAILURE=True):
            names = {c.state.task.name for c in AlertChecker().check()}  # type: ignore[union-attr]
        assert names == {"default", "on"}

    def test_missed_is_cleared_by_the_next_run_that_runs(self) -> None:
        task = make_task(alert_on_missed=True)
        checker = AlertChecker()
        run(task, TaskRun.Status.MISSED, ago=2)
        assert kinds(checker.check()) == [(Kind.MISSED, True)]
        run(task, TaskRun.Status.FAILED, ago=1)  # it ran (failure alerts are off here)
        assert kinds(checker.check()) == [(Kind.MISSED, False)]

    def test_dead_mans_switch_counts_from_creation_and_clears_on_success(self) -> None:
        old = make_task("old", alert_no_success_minutes=5)
        Task.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(minutes=6))
        make_task("new", alert_no_success_minutes=5)
        checker = AlertChecker()
        changes = checker.check()
        assert [(c.state.task_id, c.raised) for c in changes] == [(old.pk, True)]
        assert "last success: never" in changes[0].state.detail
        run(old, TaskRun.Status.SUCCESSFUL)
        assert kinds(checker.check()) == [(Kind.NO_SUCCESS, False)]

    def test_an_old_success_raises_the_dead_mans_switch(self) -> None:
        task = make_task(alert_no_success_minutes=1)
        Task.objects.filter(pk=task.pk).update(created_at=timezone.now() - timedelta(hours=1))
        run(task, TaskRun.Status.SUCCESSFUL, ago=120)
        assert kinds(AlertChecker().check()) == [(Kind.NO_SUCCESS, True)]

    def test_switching_an_alert_off_resolves_it(self) -> None:
        task = make_task(alert_on_failure=True)
        run(task, TaskRun.Status.FAILED)
        checker = AlertChecker()
        checker.check()
        Task.objects.filter(pk=task.pk).update(alert_on_failure=False)
        assert kinds(checker.check()) == [(Kind.FAILURE, False)]

    def test_no_scheduler_is_raised_without_a_live_process_and_cleared_with_one(self) -> None:
        assert kinds(check_no_scheduler()) == [(Kind.NO_SCHEDULER, True)]
        assert check_no_scheduler() == []
        SchedulerProcess.objects.create(worker_id="scheduler:h:1:x", hostname="h", pid=1)
        assert kinds(check_no_scheduler()) == [(Kind.NO_SCHEDULER, False)]

    def test_only_runs_since_the_watermark_are_read(self) -> None:
        task = make_task(alert_on_failure=True)
        run(task, TaskRun.Status.FAILED, ago=3 * 3600)  # before the first check's look-back
        assert AlertChecker().check() == []

    def test_a_backlog_is_read_on_from_where_a_check_stopped(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # More runs than one check reads: each check goes on exactly where the last stopped,
        # never back by the margin, so the backlog shrinks until the live edge is reached.
        monkeypatch.setattr(evaluate, "PAGE", 2)
        monkeypatch.setattr(evaluate, "MAX_PAGES", 1)
        tasks = [make_task(f"t{i}", alert_on_failure=True) for i in range(5)]
        for i, task in enumerate(tasks):
            run(task, TaskRun.Status.FAILED, ago=50 - i)
        checker = AlertChecker()
        raised = [[c.state.task_id for c in checker.check()] for _ in range(3)]
        t0, t1, t2, t3, t4 = (task.pk for task in tasks)
        assert raised == [[t0, t1], [t2, t3], [t4]]
        assert checker.position is None  # caught up: at the live edge again
        assert checker.check() == []  # the margin re-read there changes nothing

    def test_the_dead_mans_switch_reads_the_last_success_retention_kept(self) -> None:
        # The runs are pruned; the task's last_success_at still says when it last succeeded.
        task = make_task(alert_no_success_minutes=60)
        Task.objects.filter(pk=task.pk).update_quietly(
            created_at=timezone.now() - timedelta(days=30)
        )
        run(task, TaskRun.Status.SUCCESSFUL, ago=600)
        task.runs.all().delete()
        assert AlertChecker().check() == []

    def test_a_huge_dead_mans_switch_forced_in_is_bounded(self) -> None:
        task = make_task()
        # Past validation: more minutes than any date can be from now.
        Task.objects.filter(pk=task.pk).update_quietly(alert_no_success_minutes=2**31 - 1)
        assert AlertChecker().check() == []

    def test_each_change_is_sent_before_a_later_part_of_the_check_fails(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        task = make_task(alert_on_failure=True)
        run(task, TaskRun.Status.FAILED)
        sent: list[Change] = []
        checker = AlertChecker(notify=sent.append)

        def database_away(*args: Any) -> list[Change]:
            raise OperationalError("database is locked")

        monkeypatch.setattr(checker, "check_no_success", database_away)
        assert kinds(checker.check()) == [(Kind.FAILURE, True)]
        # Flipped and sent: a check that fails later on leaves no raised alert unsent.
        assert kinds(sent) == [(Kind.FAILURE, True)]


@pytest.mark.django_db
class TestExactlyOnce:
    def test_of_two_checkers_one_sends(self) -> None:
        task = make_task(alert_on_failure=True)
        run(task, TaskRun.Status.FAILED)
        first, second = AlertChecker(), AlertChecker()
        assert len(first.check()) == 1
        assert second.check() == []
        assert AlertState.objects.get(task=task, kind=Kind.FAILURE).raised

    def test_a_flip_is_won_once(self) -> None:
        task = make_task()
        now = timezone.now()
        results = [flip(task.pk, Kind.FAILURE, True, now) for _ in range(3)]
        assert [bool(result) for result in results] == [True, False, False]
        assert flip(task.pk, Kind.FAILURE, False, now) is not None
        assert flip(task.pk, Kind.FAILURE, False, now) is None

    def test_older_evidence_does_not_undo_a_newer_change(self) -> None:
        task = make_task()
        now = timezone.now()
        assert flip(task.pk, Kind.FAILURE, True, now)
        # A checker that read the runs before the failure still thinks it succeeded.
        assert flip(task.pk, Kind.FAILURE, False, now - timedelta(seconds=5)) is None
        assert AlertState.objects.get(task=task).raised


@pytest.mark.django_db
class TestChannels:
    def raised_failure(self, error: str = "ValueError: boom") -> Change:
        task = make_task("nightly", alert_on_failure=True)
        run(task, TaskRun.Status.FAILED, error=error)
        (change,) = AlertChecker().check()
        return change

    @override_settings(ADMINS=OPS)
    def test_a_failing_webhook_does_not_stop_mail_and_signal(self) -> None:
        received: list[dict[str, Any]] = []

        def on_alert(**kwargs: Any) -> None:
            received.append(kwargs)

        alert_changed.connect(on_alert)
        try:
            # Port 9 (discard) on 127.0.0.1: nothing listens, the connection is refused.
            with alerts(CHANNELS=["webhook", "mail", "signal"], WEBHOOK_URL="http://127.0.0.1:9/x"):
                assert send(self.raised_failure()) == ["webhook"]
        finally:
            alert_changed.disconnect(on_alert)
        assert len(mail.outbox) == 1
        assert mail.outbox[0].to == ["ops@example.com"]
        assert "Alert: task nightly" in mail.outbox[0].subject
        assert received[0]["raised"] is True
        assert received[0]["state"].kind == Kind.FAILURE

    def test_a_failing_signal_receiver_is_logged_not_raised(self) -> None:
        def broken(**kwargs: Any) -> None:
            raise RuntimeError("receiver bug")

        alert_changed.connect(broken)
        try:
            with alerts(CHANNELS=["signal"]):
                assert send(self.raised_failure()) == []
        finally:
            alert_changed.disconnect(broken)

    def test_the_webhook_posts_a_slack_compatible_body(self, receiver: Receiver) -> None:
        with alerts(CHANNELS=["webhook"], WEBHOOK_URL=receiver.url):
            assert send(self.raised_failure()) == []
        (body,) = receiver.wait_for(1)
        assert body["text"].startswith("Alert: task nightly: run failed")
        assert body["alert"]["task"] == "nightly"
        assert body["alert"]["kind"] == "failure"
        assert body["alert"]["raised"] is True
        assert body["alert"]["detail"] == "FAILED: ValueError: boom"

    def test_an_error_answer_counts_as_a_failed_channel(self) -> None:
        server = Receiver(status=500)
        try:
            with alerts(CHANNELS=["webhook"], WEBHOOK_URL=server.url):
                assert send(self.raised_failure()) == ["webhook"]
        finally:
            server.close()

    @override_settings(ADMINS=OPS)
    def test_a_huge_error_is_bounded_everywhere(self) -> None:
        change = self.raised_failure(error="x" * 1_000_000)
        assert len(change.state.detail) <= DETAIL_LIMIT
        assert len(payload(change)["text"]) <= TEXT_LIMIT
        with alerts(CHANNELS=["mail"]):
            send(change)
        assert len(mail.outbox[0].body) <= TEXT_LIMIT

    def test_mail_to_overrides_admins(self) -> None:
        change = self.raised_failure()
        with alerts(CHANNELS=["mail"], MAIL_TO=["oncall@example.com"]):
            send(change)
        assert mail.outbox[0].to == ["oncall@example.com"]


class TestSettings:
    @pytest.mark.parametrize(
        ("value", "ids"),
        [
            ({}, []),
            ({"ON_FAILURE": True, "CHANNELS": ["signal"], "CHECK_INTERVAL": 0.5}, []),
            ("yes", ["E010"]),
            ({"ON_FAILUR": True}, ["E010"]),
            ({"ON_FAILURE": "false"}, ["E011"]),
            ({"ON_MISSED": 1}, ["E011"]),
            ({"NO_SUCCESS_MINUTES": 0}, ["E012"]),
            ({"CHECK_INTERVAL": 0}, ["E012"]),
            ({"WEBHOOK_TIMEOUT": 600}, ["E012"]),
            ({"CHANNELS": ["sms"]}, ["E013"]),
            ({"CHANNELS": "mail"}, ["E013"]),
            ({"MAIL_TO": "ops@example.com"}, ["E014"]),
            ({"CHANNELS": ["webhook"], "WEBHOOK_URL": "ftp://example.com/x"}, ["E014"]),
            ({"CHANNELS": ["webhook"]}, ["E014"]),
        ],
    )
    def test_bad_values_are_check_errors(self, value: Any, ids: list[str]) -> None:
        with override_settings(TASKS_SCHED={"ALERTS": value}, ADMINS=OPS):
            found = [m.id for m in check_alerts()]
        assert found == [f"django_tasks_sched.{check_id}" for check_id in ids]

    def test_mail_admins_on_failure_beside_failure_alerts_warns(self) -> None:
        with override_settings(
            TASKS_SCHED={"MAIL_ADMINS_ON_FAILURE": True, "ALERTS": {"ON_FAILURE": True}},
            ADMINS=OPS,
        ):
            assert [m.id for m in check_alerts()] == ["django_tasks_sched.W010"]

    @override_settings(ADMINS=[])
    def test_mail_to_empty_admins_warns(self) -> None:
        with alerts(ON_MISSED=True):
            assert [m.id for m in check_alerts()] == ["django_tasks_sched.W011"]

    def test_a_bad_value_falls_back_to_its_default(self) -> None:
        with alerts(CHECK_INTERVAL=-1, ON_FAILURE=True, CHANNELS=["sms"]):
            conf = alert_settings()
        assert conf.CHECK_INTERVAL == 30
        assert conf.ON_FAILURE is True
        assert conf.CHANNELS == ("mail", "signal")


@pytest.mark.django_db
class TestCheckalertsCommand:
    def test_exits_1_without_a_live_scheduler(self, capsys: pytest.CaptureFixture[str]) -> None:
        with alerts(CHANNELS=[]), pytest.raises(SystemExit) as exit_info:
            call_command("checkalerts")
        assert exit_info.value.code == 1
        out = capsys.readouterr().out
        assert "Raised: scheduler: no scheduler process alive (raised)" in out

    def test_exits_0_when_nothing_is_raised(self, capsys: pytest.CaptureFixture[str]) -> None:
        AlertState.objects.create(kind=Kind.NO_SCHEDULER, raised=True)
        SchedulerProcess.objects.create(worker_id="scheduler:h:1:x", hostname="h", pid=1)
        with alerts(CHANNELS=[]):
            call_command("checkalerts", "--scheduler-only")
        out = capsys.readouterr().out
        assert "Resolved: scheduler" in out
        assert "No alert is raised." in out

    def test_exits_1_while_a_task_alert_is_raised(self) -> None:
        SchedulerProcess.objects.create(worker_id="scheduler:h:1:x", hostname="h", pid=1)
        run(make_task(alert_on_failure=True), TaskRun.Status.FAILED)
        with alerts(CHANNELS=[]), pytest.raises(SystemExit) as exit_info:
            call_command("checkalerts")
        assert exit_info.value.code == 1

    def test_since_is_bounded(self) -> None:
        with pytest.raises(SystemExit) as exit_info:
            call_command("checkalerts", "--since", "0")
        assert exit_info.value.code == 2


@pytest.mark.django_db
def test_alert_states_cannot_be_deleted_in_the_admin(admin_client: Any) -> None:
    # A deleted raised state would be raised, and sent, again by the next check.
    state = AlertState.objects.create(kind=Kind.NO_SCHEDULER, raised=True)
    url = reverse("admin:django_tasks_sched_alertstate_delete", args=[state.pk])
    assert admin_client.get(url).status_code == 403
    assert AlertState.objects.filter(pk=state.pk).exists()
