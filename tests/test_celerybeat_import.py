"""``manage.py importcelerybeat`` against django-celery-beat's real models and tables."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.utils import timezone

from django_tasks_sched.models import Task
from tests.factories import make_task

if not settings.HAS_CELERY_BEAT:  # pragma: no cover - depends on the installed packages
    pytest.skip(
        "django-celery-beat is not installed (the 'celerybeat' extra; it supports Django < 6.1)",
        allow_module_level=True,
    )

from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)

pytestmark = pytest.mark.django_db

JOB = "tests.testapp.jobs.add"  # a Celery task name is the function's dotted path


def run(*args: str) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("importcelerybeat", *args, stdout=out)
    except CommandError as exc:
        return exc.returncode, out.getvalue()
    return 0, out.getvalue()


def periodic(name: str, **fields: object) -> PeriodicTask:
    fields.setdefault("task", JOB)
    fields.setdefault("args", json.dumps([1, 2]))
    if not any(key in fields for key in ("interval", "crontab", "clocked", "solar")):
        fields["interval"] = IntervalSchedule.objects.create(every=10, period="minutes")
    return PeriodicTask.objects.create(name=name, **fields)


def test_each_kind_of_schedule_keeps_its_meaning() -> None:
    start = datetime(2026, 1, 1, 8, 0, tzinfo=dt_timezone.utc)
    periodic(
        "every-ten",
        interval=IntervalSchedule.objects.create(every=10, period="minutes"),
        kwargs=json.dumps({}),
        start_time=start,
        expires=start + timedelta(days=30),
        description="Ten-minutely sum",
    )
    periodic("short-lived", expire_seconds=120)
    periodic(
        "weekday-mornings",
        crontab=CrontabSchedule.objects.create(
            minute="30",
            hour="9",
            day_of_week="mon-fri",
            day_of_month="*",
            month_of_year="*",
            timezone=ZoneInfo("Europe/Berlin"),
        ),
        enabled=False,
    )
    at = timezone.now() + timedelta(days=3)
    periodic(
        "once",
        clocked=ClockedSchedule.objects.create(clocked_time=at),
        one_off=True,
    )
    code, out = run()
    assert code == 0, out
    assert "4 task(s) created, 0 left alone (name taken), 0 not converted." in out

    ten = Task.objects.get(name="every-ten")
    assert (ten.trigger, ten.func, ten.args, ten.kwargs) == ("interval", JOB, [1, 2], {})
    assert ten.trigger_config == {
        "minutes": 10,
        "start_date": start.isoformat(),
        "end_date": (start + timedelta(days=30)).isoformat(),
    }
    assert (ten.description, ten.active) == ("Ten-minutely sum", True)
    # A message older than expire_seconds is not run: a fire later than that is not run.
    assert Task.objects.get(name="short-lived").misfire_grace_time == 120

    mornings = Task.objects.get(name="weekday-mornings")
    assert mornings.trigger_config == {"crontab": "30 9 * * mon-fri", "timezone": "Europe/Berlin"}
    assert not mornings.active  # disabled in beat: inactive here
    assert mornings.describe_schedule() == "At 09:30, Monday through Friday (Europe/Berlin)"

    once = Task.objects.get(name="once")
    assert (once.trigger, once.remaining_runs) == ("date", 1)
    assert once.next_fire_times(count=1) == [at]


def test_what_cannot_be_converted_is_reported_with_the_reason() -> None:
    periodic(
        "sunrise",
        solar=SolarSchedule.objects.create(event="sunrise", latitude=52.5, longitude=13.4),
    )
    periodic("custom-name", task="send-newsletter")  # a Celery name, not an importable path
    periodic("bad-args", args="[1, 2")
    periodic(
        "first-monday",
        crontab=CrontabSchedule.objects.create(
            minute="0", hour="9", day_of_month="1-7", day_of_week="1", month_of_year="*"
        ),
    )
    periodic("fine")
    code, out = run()
    assert code == 1
    assert "x sunrise: not converted\n    a solar schedule (sunrise) has no equivalent" in out
    assert "x custom-name: not converted\n    func: " in out
    assert "x bad-args: not converted\n    args is not JSON" in out
    # Celery runs it when both days match, a crontab string when either does: not guessed.
    assert "x first-monday: not converted\n    its crontab restricts both day_of_month (1-7)" in out
    assert "1 task(s) created, 0 left alone (name taken), 4 not converted." in out
    assert list(Task.objects.values_list("name", flat=True)) == ["fine"]


def test_dry_run_saves_nothing_and_existing_names_are_left_alone() -> None:
    make_task("taken", func="tests.testapp.jobs:noop")
    periodic("taken")
    periodic("new")
    code, out = run("--dry-run")
    assert code == 0
    assert "= taken: a task of that name exists; left alone" in out
    assert "+ new: interval {'minutes': 10}" in out
    assert "1 task(s) would be created, 1 left alone (name taken), 0 not converted." in out
    assert list(Task.objects.values_list("name", flat=True)) == ["taken"]


def test_disable_celerybeat_switches_the_imported_ones_off_there() -> None:
    periodic("moved")
    periodic("stays", task="send-newsletter")
    code, out = run("--disable-celerybeat")
    assert code == 1  # "stays" could not be converted
    assert not PeriodicTask.objects.get(name="moved").enabled
    assert PeriodicTask.objects.get(name="stays").enabled  # not imported: left running
    assert "Both schedulers" not in out


def test_without_the_flag_it_warns_that_both_schedulers_run_them() -> None:
    periodic("both")
    code, out = run()
    assert code == 0
    assert "Both schedulers now run the imported tasks" in out
    assert PeriodicTask.objects.get(name="both").enabled


def test_queue_and_routing_are_noted_not_silently_dropped() -> None:
    periodic("routed", queue="reports", routing_key="reports.daily", priority=3)
    code, out = run()
    assert code == 0
    assert "note: not converted: queue, routing_key, priority" in out


def test_names_pick_some_and_unknown_names_are_refused() -> None:
    periodic("a")
    periodic("b")
    assert run("a")[0] == 0
    assert list(Task.objects.values_list("name", flat=True)) == ["a"]
    with pytest.raises(CommandError, match="No periodic task named 'zzz'"):
        call_command("importcelerybeat", "zzz", stdout=StringIO())
