"""Run history retention: the age and count rules, batches, the command and the pruner."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.checks import run_checks
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_tasks_sched.changes import current_version
from django_tasks_sched.checks import TAG
from django_tasks_sched.conf import DEFAULTS, get_settings
from django_tasks_sched.models import Task, TaskRun
from django_tasks_sched.retention import COUNT_RULE_MIN_AGE, Pruner, PruneReport, prune_runs
from tests.factories import make_task
from tests.test_admin import form_data

NOW = timezone.now().replace(microsecond=0)
Status = TaskRun.Status


def make_run(
    task: Task,
    *,
    age: timedelta,
    status: str = Status.SUCCESSFUL,
    first_attempt: TaskRun | None = None,
) -> TaskRun:
    """A run enqueued ``age`` before :data:`NOW`."""
    return TaskRun.objects.create(
        task=task,
        status=status,
        enqueued_at=NOW - age,
        attempt=1 if first_attempt is None else 2,
        first_attempt=first_attempt,
    )


def days(n: float) -> timedelta:
    return timedelta(days=n)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def alive(*runs: TaskRun) -> list[bool]:
    """For each run, whether its row still exists."""
    existing = set(TaskRun.objects.values_list("pk", flat=True))
    return [run.pk in existing for run in runs]


def retention(**keys: Any) -> Any:
    return override_settings(TASKS_SCHED=keys)


# -- the age rule -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_age_rule_uses_the_30_day_default() -> None:
    task = make_task()
    old, young = make_run(task, age=days(31)), make_run(task, age=days(29))
    report = prune_runs(now=NOW)
    assert alive(old, young) == [False, True]
    assert (report.by_age, report.by_count, report.complete) == (1, 0, True)


@pytest.mark.django_db
@pytest.mark.parametrize("value", [None, 0])
def test_no_age_limit_keeps_runs_forever(value: int | None) -> None:
    task = make_task()
    ancient = make_run(task, age=days(3650))
    with retention(RUN_RETENTION_DAYS=value):
        assert prune_runs(now=NOW).total == 0
    assert alive(ancient) == [True]


@pytest.mark.django_db
@pytest.mark.parametrize("status", [Status.QUEUED, Status.RUNNING])
def test_queued_and_running_runs_are_never_deleted(status: str) -> None:
    task = make_task(keep_runs_count=1)
    stuck = make_run(task, age=days(400), status=status)
    finished = [make_run(task, age=days(400 - i), status=Status.FAILED) for i in range(1, 4)]
    prune_runs(now=NOW)
    assert alive(stuck, *finished) == [True, False, False, False]


@pytest.mark.django_db
def test_every_finished_status_is_pruned() -> None:
    task = make_task()
    runs = [make_run(task, age=days(40), status=status) for status in TaskRun.FINISHED_STATUSES]
    assert prune_runs(now=NOW).by_age == len(runs)


# -- the count rule ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_count_rule_keeps_the_newest_finished_runs() -> None:
    task = make_task()
    runs = [make_run(task, age=hours(10 - i)) for i in range(6)]  # oldest first
    with retention(RUN_RETENTION_COUNT=3):
        report = prune_runs(now=NOW)
    assert alive(*runs) == [False, False, False, True, True, True]
    assert (report.by_age, report.by_count) == (0, 3)


@pytest.mark.django_db
def test_count_rule_breaks_ties_on_the_id() -> None:
    # A scheduler claims a burst of fires with one enqueued_at.
    task = make_task(keep_runs_count=2)
    runs = [make_run(task, age=hours(5)) for _ in range(5)]
    prune_runs(now=NOW)
    assert alive(*runs) == [False, False, False, True, True]


@pytest.mark.django_db
def test_count_rule_counts_only_finished_runs() -> None:
    # A running run does not take the place of the last results.
    task = make_task(keep_runs_count=2)
    finished = [make_run(task, age=hours(10 - i)) for i in range(4)]
    running = make_run(task, age=hours(2), status=Status.RUNNING)
    prune_runs(now=NOW)
    assert alive(*finished, running) == [False, False, True, True, True]


@pytest.mark.django_db
def test_count_rule_leaves_the_last_hour_alone() -> None:
    # A scheduler process that fell behind must still find the fire's row (exactly once).
    task = make_task(keep_runs_count=1, misfire_grace_time=None)
    recent = [make_run(task, age=timedelta(minutes=50 - 10 * i)) for i in range(4)]
    older = make_run(task, age=COUNT_RULE_MIN_AGE + timedelta(minutes=1))
    prune_runs(now=NOW)
    assert alive(older, *recent) == [False, True, True, True, True]


@pytest.mark.django_db
def test_count_rule_leaves_a_longer_misfire_grace_time_alone() -> None:
    task = make_task(keep_runs_count=1, misfire_grace_time=6 * 3600)
    runs = [make_run(task, age=hours(age)) for age in (8, 5, 3, 1)]
    prune_runs(now=NOW)
    assert alive(*runs) == [False, True, True, True]


@pytest.mark.django_db
def test_no_count_limit_by_default() -> None:
    task = make_task()
    runs = [make_run(task, age=days(1) + hours(i)) for i in range(50)]
    assert prune_runs(now=NOW).total == 0
    assert all(alive(*runs))


# -- per-task limits --------------------------------------------------------------------------


@pytest.mark.django_db
def test_task_age_limit_beats_the_setting() -> None:
    short, forever, default = (
        make_task("short", keep_runs_days=7),
        make_task("forever", keep_runs_days=0),
        make_task("default"),
    )
    runs = [make_run(task, age=days(10)) for task in (short, forever, default)]
    runs += [make_run(task, age=days(40)) for task in (short, forever, default)]
    report = prune_runs(now=NOW)
    assert alive(*runs) == [False, True, True, False, True, False]
    assert report.by_age == 3


@pytest.mark.django_db
def test_task_age_limit_applies_without_a_setting() -> None:
    task, other = make_task("a", keep_runs_days=2), make_task("b")
    runs = [make_run(task, age=days(3)), make_run(other, age=days(300))]
    with retention(RUN_RETENTION_DAYS=None):
        prune_runs(now=NOW)
    assert alive(*runs) == [False, True]


@pytest.mark.django_db
def test_task_count_limit_beats_the_setting() -> None:
    tight, unlimited, default = (
        make_task("tight", keep_runs_count=1),
        make_task("unlimited", keep_runs_count=0),
        make_task("default"),
    )
    with retention(RUN_RETENTION_COUNT=3):
        runs = {
            task.name: [make_run(task, age=hours(9 - i)) for i in range(5)]
            for task in (tight, unlimited, default)
        }
        report = prune_runs(now=NOW)
    assert [sum(alive(*r)) for r in runs.values()] == [1, 5, 3]
    assert report.by_count == 4 + 0 + 2


@pytest.mark.django_db
def test_both_rules_together_count_each_run_once() -> None:
    task = make_task(keep_runs_count=2, keep_runs_days=5)
    runs = [make_run(task, age=days(age)) for age in (9, 8, 4, 3, 2, 1)]
    dry = prune_runs(now=NOW, dry_run=True)
    real = prune_runs(now=NOW)
    assert alive(*runs) == [False, False, False, False, True, True]
    assert (real.by_age, real.by_count) == (dry.by_age, dry.by_count) == (2, 2)


# -- retries: the first_attempt foreign key cascades ------------------------------------------


@pytest.mark.django_db
def test_a_retry_chain_goes_once_all_of_it_is_due() -> None:
    task = make_task()
    first = make_run(task, age=days(35), status=Status.FAILED)
    retry = make_run(task, age=days(34), status=Status.SUCCESSFUL, first_attempt=first)
    report = prune_runs(now=NOW)
    assert alive(first, retry) == [False, False]
    assert report.by_age == 2


@pytest.mark.django_db
def test_a_first_attempt_stays_while_a_retry_is_kept() -> None:
    task = make_task()
    first = make_run(task, age=days(31), status=Status.FAILED)
    retry = make_run(task, age=days(29), status=Status.FAILED, first_attempt=first)
    assert prune_runs(now=NOW).total == 0
    assert alive(first, retry) == [True, True]


@pytest.mark.django_db
@pytest.mark.parametrize("status", [Status.QUEUED, Status.RUNNING])
def test_a_first_attempt_stays_while_a_retry_is_unfinished(status: str) -> None:
    task = make_task(keep_runs_count=1)
    first = make_run(task, age=days(60), status=Status.FAILED)
    waiting = make_run(task, age=days(59), status=status, first_attempt=first)
    newer = [make_run(task, age=hours(3 - i / 2)) for i in range(3)]
    prune_runs(now=NOW)
    assert alive(first, waiting, *newer) == [True, True, False, False, True]


@pytest.mark.django_db
def test_count_rule_keeps_a_first_attempt_whose_retry_is_among_the_newest() -> None:
    task = make_task(keep_runs_count=2)
    older = make_run(task, age=hours(9))
    first = make_run(task, age=hours(8), status=Status.FAILED)
    other = make_run(task, age=hours(7))
    retry = make_run(task, age=hours(6), first_attempt=first)
    prune_runs(now=NOW)
    # Deleting `first` would take `retry`, one of the newest two, with it.
    assert alive(older, first, other, retry) == [False, True, True, True]


# -- batches, dry run, queries ----------------------------------------------------------------


@pytest.mark.django_db
def test_small_batches_over_several_passes() -> None:
    task = make_task()
    runs = [make_run(task, age=days(40) + timedelta(minutes=i)) for i in range(7)]
    reports: list[PruneReport] = []
    while not reports or not reports[-1].complete:
        reports.append(prune_runs(now=NOW, batch_size=3, max_batches=1))
    assert [r.by_age for r in reports] == [3, 3, 1, 0]
    assert not any(alive(*runs))


@pytest.mark.django_db
def test_one_call_runs_every_batch_without_a_limit() -> None:
    tasks = [make_task(f"t{i}", keep_runs_count=2) for i in range(3)]
    for task in tasks:
        for i in range(5):
            make_run(task, age=days(40) + hours(i))  # due by age
            make_run(task, age=days(3) + hours(i))  # 3 of 5 due by count
    report = prune_runs(now=NOW, batch_size=4)
    assert (report.by_age, report.by_count, report.batches) == (15, 9, 4 + 3)
    assert TaskRun.objects.count() == 6


@pytest.mark.django_db
def test_dry_run_deletes_nothing_and_counts_what_would_go() -> None:
    task = make_task(keep_runs_count=3)
    for i in range(10):
        make_run(task, age=days(21 + 2 * i))
    dry = prune_runs(now=NOW, dry_run=True, batch_size=2)
    assert TaskRun.objects.count() == 10
    assert (dry.by_age, dry.by_count, dry.batches, dry.dry_run) == (5, 2, 4, True)
    real = prune_runs(now=NOW, batch_size=2)
    assert (real.by_age, real.by_count) == (5, 2)


@pytest.mark.django_db
def test_queries_do_not_grow_with_tasks_under_their_limit() -> None:
    def queries(task_count: int) -> int:
        TaskRun.objects.all().delete()
        Task.objects.all().delete()
        for i in range(task_count):
            task = make_task(f"t{i}", keep_runs_count=5)
            make_run(task, age=days(2))
        one_over = make_task("over", keep_runs_count=1)
        make_run(one_over, age=days(3))
        make_run(one_over, age=days(2))
        with CaptureQueriesContext(connection) as captured:
            assert prune_runs(now=NOW).by_count == 1
        return len(captured)

    assert queries(3) == queries(60)


@pytest.mark.django_db
def test_pruning_does_not_move_the_change_stamp(
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    task = make_task(keep_runs_count=1)
    for i in range(5):
        make_run(task, age=days(40 - i))
    before = current_version()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert prune_runs(now=NOW).total == 5
    assert callbacks == []
    assert current_version() == before


# -- the command ------------------------------------------------------------------------------


def prunetaskruns(*args: str) -> str:
    out = StringIO()
    call_command("prunetaskruns", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_command_reports_per_rule() -> None:
    task = make_task(keep_runs_count=1)
    for i in range(3):
        make_run(task, age=days(31 + i))
        make_run(task, age=days(2 + i))
    assert prunetaskruns().splitlines() == [
        "3 runs deleted for their age.",
        "2 runs deleted beyond their task's run count limit.",
        "5 runs in all, in 2 batches.",
    ]
    assert TaskRun.objects.count() == 1


@pytest.mark.django_db
def test_command_dry_run_and_batch_size() -> None:
    task = make_task()
    runs = [make_run(task, age=days(31 + i)) for i in range(3)]
    with retention(RUN_RETENTION_COUNT=5):
        output = prunetaskruns("--dry-run", "--batch-size", "2", "--verbosity", "2")
    assert output.splitlines() == [
        "Default retention: 30 days, the newest 5 runs per task; a task's keep_runs_days and "
        "keep_runs_count override these.",
        "3 runs would be deleted for their age.",
        "0 runs would be deleted beyond their task's run count limit.",
        "3 runs in all, in 2 batches.",
        "Dry run: nothing was deleted.",
    ]
    assert all(alive(*runs))


@pytest.mark.django_db
def test_command_max_batches() -> None:
    task = make_task()
    for i in range(3):
        make_run(task, age=days(31 + i))
    output = prunetaskruns("--batch-size", "1", "--max-batches", "2")
    assert "Stopped at the batch limit; more runs may be due." in output
    assert TaskRun.objects.count() == 1


@pytest.mark.parametrize("value", ["0", "-3", "ten"])
def test_command_refuses_a_bad_batch_size(value: str) -> None:
    with pytest.raises(CommandError, match="batch-size"):
        call_command("prunetaskruns", "--batch-size", value)


# -- the scheduler's pruner -------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.django_db
def test_pruner_does_a_batch_per_turn_and_catches_up_quickly() -> None:
    task = make_task()
    for i in range(5):
        make_run(task, age=days(31 + i))
    clock = Clock()
    pruner = Pruner(300, 2, first_pass_in=10, clock=clock)
    assert pruner.maybe_prune() is None  # not due yet
    clock.now += 10
    totals = []
    for _ in range(4):
        report = pruner.maybe_prune()
        assert isinstance(report, PruneReport)
        totals.append(report.total)
        assert pruner.maybe_prune() is None  # one batch per turn
        clock.now += Pruner.CATCH_UP_PAUSE
    assert totals == [2, 2, 1, 0]
    # Done: the next pass waits a whole interval.
    assert pruner.next_due == clock.now - Pruner.CATCH_UP_PAUSE + 300


@pytest.mark.django_db(transaction=True)
def test_pruner_thread_prunes_until_stopped() -> None:
    task = make_task()
    for i in range(5):
        make_run(task, age=days(40 + i))
    stopping = threading.Event()
    thread = threading.Thread(target=Pruner(0.05, 2).run, args=(stopping,))
    thread.start()
    deadline = time.monotonic() + 10
    while TaskRun.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    stopping.set()
    thread.join(5)
    assert not thread.is_alive()
    assert not TaskRun.objects.exists()


@pytest.mark.django_db
def test_pruner_from_settings() -> None:
    with retention(PRUNE_INTERVAL=120, PRUNE_BATCH_SIZE=50):
        pruner = Pruner.from_settings()
    assert (pruner.interval, pruner.batch_size) == (120, 50)
    with retention(PRUNE_INTERVAL=None):
        disabled = Pruner.from_settings()
    make_run(make_task(), age=days(40))
    assert disabled.maybe_prune(now=1e12) is None
    assert TaskRun.objects.count() == 1


# -- settings and checks ----------------------------------------------------------------------


def test_settings_defaults() -> None:
    conf = get_settings()
    assert (conf.RUN_RETENTION_DAYS, conf.RUN_RETENTION_COUNT) == (30, None)
    assert (conf.PRUNE_INTERVAL, conf.PRUNE_BATCH_SIZE) == (300, 1000)
    assert DEFAULTS["RUN_RETENTION_DAYS"] == 30


def test_settings_zero_means_no_limit() -> None:
    with retention(RUN_RETENTION_DAYS=0, RUN_RETENTION_COUNT=0, PRUNE_INTERVAL=None):
        conf = get_settings()
        assert (conf.RUN_RETENTION_DAYS, conf.RUN_RETENTION_COUNT) == (None, None)
        assert conf.PRUNE_INTERVAL is None


def test_bad_settings_fall_back_to_the_defaults() -> None:
    with retention(RUN_RETENTION_DAYS="30", RUN_RETENTION_COUNT=-1, PRUNE_BATCH_SIZE=None):
        conf = get_settings()
        assert (conf.RUN_RETENTION_DAYS, conf.RUN_RETENTION_COUNT) == (30, None)
        assert conf.PRUNE_BATCH_SIZE == 1000


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("RUN_RETENTION_DAYS", -1),
        ("RUN_RETENTION_DAYS", 1.5),
        ("RUN_RETENTION_DAYS", "30"),
        ("RUN_RETENTION_DAYS", True),
        ("RUN_RETENTION_COUNT", -5),
        ("RUN_RETENTION_COUNT", 10.0),
        ("PRUNE_INTERVAL", 0),
        ("PRUNE_INTERVAL", "300"),
        ("PRUNE_BATCH_SIZE", 0),
        ("PRUNE_BATCH_SIZE", None),
    ],
)
def test_e006_bad_retention_settings(key: str, value: Any) -> None:
    with retention(**{key: value}):
        messages = run_checks(tags=[TAG])
    assert [m.id for m in messages] == ["django_tasks_sched.E006"]
    nullable = key != "PRUNE_BATCH_SIZE"
    assert (", or None, not" in messages[0].msg) is nullable


@pytest.mark.parametrize(
    "keys",
    [
        {"RUN_RETENTION_DAYS": None, "RUN_RETENTION_COUNT": None, "PRUNE_INTERVAL": None},
        {"RUN_RETENTION_DAYS": 0, "RUN_RETENTION_COUNT": 0},
        {"RUN_RETENTION_DAYS": 7, "RUN_RETENTION_COUNT": 100, "PRUNE_INTERVAL": 0.5},
        {"PRUNE_BATCH_SIZE": 1},
    ],
)
def test_good_retention_settings_pass_the_checks(keys: dict[str, Any]) -> None:
    with retention(**keys):
        assert run_checks(tags=[TAG]) == []


# -- admin ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_admin_edits_the_task_limits_in_a_collapsed_fieldset() -> None:
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    task = make_task("nightly", func="tests.testapp.jobs:add", args=[1, 2])
    url = reverse("admin:django_tasks_sched_task_change", args=[task.pk])
    with retention(RUN_RETENTION_COUNT=200):
        page = client.get(url).content.decode()
    assert "Run history" in page
    assert "runs are kept 30 days, the newest 200 runs." in page
    assert 'name="keep_runs_days"' in page
    response = client.post(url, form_data(keep_runs_days="7", keep_runs_count="0"))
    assert response.status_code == 302
    task.refresh_from_db()
    assert (task.keep_runs_days, task.keep_runs_count) == (7, 0)
