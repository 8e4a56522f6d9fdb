"""``from django_tasks_sched import scheduler``: Flask-APScheduler's names and meanings."""

from __future__ import annotations

import subprocess
import sys
import zoneinfo
from datetime import datetime, timezone

import apscheduler.jobstores.base
import pytest
from django.core.exceptions import ValidationError

from django_tasks_sched import TaskRunFailed, callables, declarations, scheduler
from django_tasks_sched.callables import is_registered
from django_tasks_sched.exceptions import ConflictingIdError, JobLookupError
from django_tasks_sched.models import Task, TaskRun
from tests.processes import ROOT
from tests.testapp import jobs

pytestmark = pytest.mark.django_db


@pytest.fixture
def declared(monkeypatch: pytest.MonkeyPatch) -> dict[str, declarations.Declaration]:
    """An empty decorator registry for the test, so nothing leaks into other tests' syncs."""
    registry: dict[str, declarations.Declaration] = {}
    monkeypatch.setattr(declarations, "_declared", registry)
    # The decorator also registers; keep that from allowing callables in later tests.
    monkeypatch.setattr(callables, "_registry", dict(callables._registry))
    return registry


# -- add_job ---------------------------------------------------------------------------------


def test_add_job_takes_trigger_arguments_and_options_as_keywords() -> None:
    task = scheduler.add_job(
        "heartbeat",
        jobs.add,
        trigger="interval",
        seconds=30,
        args=(1, 2),
        misfire_grace_time=60,
        max_instances=3,
        coalesce=False,
        name="System heartbeat",
    )
    task.refresh_from_db()
    assert task.name == "heartbeat"
    assert task.func == "tests.testapp.jobs:add"
    assert task.args == [1, 2]
    assert task.trigger == "interval"
    assert task.trigger_config == {"seconds": 30}
    assert (task.misfire_grace_time, task.max_instances, task.coalesce) == (60, 3, False)
    assert task.description == "System heartbeat"  # APScheduler's "name" is a label
    assert task.source == Task.Source.DATABASE
    assert task.active
    assert task.next_run_time is not None


def test_add_job_takes_the_run_history_options() -> None:
    task = scheduler.add_job(
        "noisy", jobs.noop, trigger="interval", minutes=1, keep_runs_days=7, keep_runs_count=0
    )
    task.refresh_from_db()
    assert (task.keep_runs_days, task.keep_runs_count) == (7, 0)
    assert task.trigger_config == {"minutes": 1}


def test_add_job_accepts_dotted_strings_and_python_values() -> None:
    start = datetime(2100, 1, 1, 9, 0, tzinfo=timezone.utc)
    task = scheduler.add_job(
        "cron",
        "tests.testapp.jobs.greet",
        trigger="cron",
        day_of_week="mon-fri",
        hour=9,
        start_date=start,
        timezone=zoneinfo.ZoneInfo("Europe/Berlin"),
        kwargs={"name": "Ada"},
    )
    assert task.trigger_config == {
        "day_of_week": "mon-fri",
        "hour": 9,
        "start_date": "2100-01-01T09:00:00+00:00",
        "timezone": "Europe/Berlin",
    }
    assert task.kwargs == {"name": "Ada"}


def test_add_job_without_trigger_runs_once_now_as_in_apscheduler() -> None:
    task = scheduler.add_job("once", jobs.noop)
    assert task.trigger == "date"
    assert "run_date" in task.trigger_config


def test_add_job_paused_with_next_run_time_none() -> None:
    task = scheduler.add_job("paused", jobs.noop, "interval", minutes=5, next_run_time=None)
    assert not task.active
    with pytest.raises(TypeError, match="only next_run_time=None"):
        scheduler.add_job("x", jobs.noop, "interval", minutes=5, next_run_time=datetime.now())


def test_conflicting_id_mirrors_apscheduler() -> None:
    scheduler.add_job("dup", jobs.noop, "interval", minutes=5)
    with pytest.raises(ConflictingIdError) as excinfo:
        scheduler.add_job("dup", jobs.noop, "interval", minutes=10)
    assert isinstance(excinfo.value, apscheduler.jobstores.base.ConflictingIdError)
    assert excinfo.value.job_id == "dup"
    assert Task.objects.get(name="dup").trigger_config == {"minutes": 5}


def test_replace_existing_keeps_the_row_and_its_history() -> None:
    old = scheduler.add_job("dup", jobs.noop, "interval", minutes=5, timeout=30)
    old.run_now()
    new = scheduler.add_job("dup", jobs.add, "cron", hour=3, args=[1, 1], replace_existing=True)
    assert new.pk == old.pk
    new.refresh_from_db()
    assert (new.func, new.trigger) == ("tests.testapp.jobs:add", "cron")
    assert new.trigger_config == {"hour": 3}
    assert new.timeout is None  # not given again: a replaced job starts from the defaults
    assert new.runs.count() == 1


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"trigger": "weekly"}, "trigger"),
        ({"trigger": "interval", "seconds": 0}, "trigger_config"),
        ({"trigger": "interval", "minutes": 5, "max_instance": 3}, "trigger_config"),
        ({"trigger": "cron", "hour": 25}, "trigger_config"),
        ({"trigger": "interval", "minutes": 5, "max_instances": 0}, "max_instances"),
        ({"trigger": "interval", "minutes": 5, "args": [1]}, "args"),
    ],
)
def test_validation_errors_are_the_models(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        scheduler.add_job("bad", jobs.noop, **kwargs)  # type: ignore[arg-type]
    assert field in excinfo.value.message_dict
    assert not Task.objects.filter(name="bad").exists()


def test_refused_callables_are_validation_errors() -> None:
    with pytest.raises(ValidationError) as excinfo:
        scheduler.add_job("bad", "os:system", "interval", minutes=5, args=["true"])
    assert "not allowed" in " ".join(excinfo.value.message_dict["func"])
    with pytest.raises(ValidationError, match="cannot be reached by a dotted path"):
        scheduler.add_job("bad", lambda: None, "interval", minutes=5)


# -- the other methods -----------------------------------------------------------------------


def test_get_job_and_get_jobs() -> None:
    scheduler.add_job("b", jobs.noop, "interval", minutes=5)
    scheduler.add_job("a", jobs.noop, "interval", minutes=5, next_run_time=None)
    job = scheduler.get_job("a")
    assert job is not None
    assert job.name == "a"
    assert scheduler.get_job("missing") is None
    assert [t.name for t in scheduler.get_jobs()] == ["a", "b"]


def test_modify_job_merges_trigger_arguments_or_reschedules() -> None:
    scheduler.add_job("heartbeat", jobs.noop, "interval", seconds=30, start_date="2100-01-01")
    task = scheduler.modify_job("heartbeat", seconds=60, max_instances=2)
    assert task.trigger_config == {"seconds": 60, "start_date": "2100-01-01"}
    assert task.max_instances == 2
    task = scheduler.modify_job("heartbeat", trigger="cron", hour=2, minute=30)
    assert (task.trigger, task.trigger_config) == ("cron", {"hour": 2, "minute": 30})
    task = scheduler.modify_job("heartbeat", func=jobs.add, args=[1, 2])
    task.refresh_from_db()
    assert (task.func, task.args) == ("tests.testapp.jobs:add", [1, 2])
    with pytest.raises(ValidationError):
        scheduler.modify_job("heartbeat", hour=99)
    assert Task.objects.get(name="heartbeat").trigger_config == {"hour": 2, "minute": 30}


def test_pause_and_resume_job() -> None:
    scheduler.add_job("t", jobs.noop, "interval", minutes=5)
    assert not scheduler.pause_job("t").active
    assert Task.objects.get(name="t").next_run_time is None
    assert scheduler.resume_job("t").active
    assert Task.objects.get(name="t").next_run_time is not None


def test_run_job_runs_through_the_run_path_and_returns_the_run() -> None:
    scheduler.add_job("add", jobs.add, "interval", minutes=5, args=[2, 3])
    run = scheduler.run_job("add")
    assert isinstance(run, TaskRun)
    assert run.status == TaskRun.Status.SUCCESSFUL
    assert run.origin == TaskRun.Origin.API
    assert run.result() == 5
    queued = scheduler.run_job("add", inline=False)
    assert queued.status == TaskRun.Status.QUEUED
    assert not queued.is_done()
    assert queued.cancel()


def test_run_job_failure_is_read_from_the_handle() -> None:
    scheduler.add_job("fail", jobs.fail, "interval", minutes=5)
    run = scheduler.run_job("fail")
    assert run.status == TaskRun.Status.FAILED
    with pytest.raises(TaskRunFailed, match="RuntimeError: boom"):
        run.result()


def test_remove_job_deletes_the_row_and_remove_all_jobs_every_row() -> None:
    scheduler.add_job("a", jobs.noop, "interval", minutes=5)
    scheduler.add_job("b", jobs.noop, "interval", minutes=5)
    scheduler.run_job("a")
    scheduler.remove_job("a")
    assert not Task.objects.filter(name="a").exists()
    assert not TaskRun.objects.exists()
    scheduler.remove_all_jobs()
    assert not Task.objects.exists()


@pytest.mark.parametrize(
    "call",
    [
        lambda: scheduler.remove_job("missing"),
        lambda: scheduler.modify_job("missing", seconds=5),
        lambda: scheduler.pause_job("missing"),
        lambda: scheduler.resume_job("missing"),
        lambda: scheduler.run_job("missing"),
    ],
)
def test_missing_job_raises_job_lookup_error(call: object) -> None:
    with pytest.raises(JobLookupError) as excinfo:
        call()  # type: ignore[operator]
    assert isinstance(excinfo.value, apscheduler.jobstores.base.JobLookupError)
    assert excinfo.value.job_id == "missing"


# -- the decorator ---------------------------------------------------------------------------


def test_task_decorator_registers_and_declares_without_touching_the_database(
    declared: dict[str, declarations.Declaration], django_assert_num_queries: object
) -> None:
    with django_assert_num_queries(0):  # type: ignore[operator]
        decorated = scheduler.task("interval", seconds=60, misfire_grace_time=300)(jobs.log_lines)
    assert decorated is jobs.log_lines
    assert is_registered("tests.testapp.jobs:log_lines")
    declaration = declared["tests.testapp.jobs:log_lines"]  # the stable id: module and name
    assert declaration.source == "decorator"
    assert declaration.source_ref == "tests.testapp.jobs:log_lines"
    assert declaration.fields["trigger_config"] == {"seconds": 60}
    assert declaration.fields["misfire_grace_time"] == 300
    assert not Task.objects.exists()


def test_task_decorator_with_an_id(declared: dict[str, declarations.Declaration]) -> None:
    scheduler.task("cron", id="weekly_report", day_of_week="sun", hour=9, args=[3])(jobs.sleep)
    assert declared["weekly_report"].fields["args"] == [3]
    # Re-importing the same module declares the same function again: fine.
    scheduler.task("cron", id="weekly_report", day_of_week="sun", hour=9)(jobs.sleep)
    with pytest.raises(ValueError, match="declared twice"):
        scheduler.task("cron", id="weekly_report", hour=1)(jobs.noop)


def test_package_import_needs_no_configured_django() -> None:
    code = (
        "import django_tasks_sched\n"
        "from django_tasks_sched import scheduler\n"
        "@scheduler.task('interval', seconds=5)\n"
        "def tick(): pass\n"
        "print(type(scheduler).__name__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Scheduler"
