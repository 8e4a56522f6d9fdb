"""Rows that skipped validation never stop a scheduler, at start-up or while it runs (issue 11).

Each pinned row once stopped every scheduler: an OverflowError in the reconcile (jitter 1e308,
cron year 9999), IsADirectoryError or OSError for a zone name, or a scheduler busy firing a
microsecond interval. They are written with ``QuerySet.update()``, past ``full_clean()``, as
raw SQL would.
"""

from __future__ import annotations

import itertools
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from django_tasks_sched.models import Task, TaskRun
from tests.processes import SchedulerProcess as Proc
from tests.processes import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _deep(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels):
        value = [value]
    return value


PINNED: dict[str, tuple[str, Any]] = {
    "jitter-1e308": ("interval", {"seconds": 5, "jitter": 1e308}),
    "zone-area": ("interval", {"seconds": 5, "timezone": "America"}),
    "zone-300": ("interval", {"seconds": 5, "timezone": "A" * 300}),
    "cron-year-9999": ("cron", {"year": 9999}),
    "seconds-1e-6": ("interval", {"seconds": 0.000001}),
    "seconds-1e-9": ("interval", {"seconds": 1e-9}),
    "weeks-416015": ("interval", {"weeks": 416015}),
    "start-9999": ("interval", {"minutes": 5, "start_date": "9999-12-31T23:59:59"}),
    "deep": ("interval", {"seconds": 5, "x": _deep(25)}),
}


def force(name: str, trigger: str, config: Any, **fields: Any) -> Task:
    task = Task.objects.create(
        name=name, func="tests.testapp.jobs:noop", trigger="interval", trigger_config={"hours": 1}
    )
    Task.objects.filter(pk=task.pk).update(trigger=trigger, trigger_config=config, **fields)
    return task


#: Rows whose schedule is fine but whose options APScheduler refuses when it takes the job.
PINNED_OPTIONS: dict[str, dict[str, Any]] = {
    "grace-0": {"misfire_grace_time": 0},
}


def healthy_fires(task: Task, before: int) -> bool:
    return task.runs.filter(status="SUCCESSFUL").count() > before


def no_next_fire(task: Task) -> bool:
    return Task.objects.get(pk=task.pk).next_run_time is None


def refused(task: Task) -> bool:
    return TaskRun.objects.filter(
        task=task, status="FAILED", error__startswith="Not scheduled"
    ).exists()


@pytest.fixture
def healthy() -> Task:
    return Task.objects.create(
        name="healthy",
        func="tests.testapp.jobs:noop",
        trigger="interval",
        trigger_config={"seconds": 1},
    )


def test_pinned_rows_saved_while_running_are_refused_alone(scheduler: Proc, healthy: Task) -> None:
    broken = [force(name, *row) for name, row in PINNED.items()]
    broken += [
        force(name, "interval", {"seconds": 5}, **fields) for name, fields in PINNED_OPTIONS.items()
    ]
    for task in broken:
        wait_until(partial(refused, task), 10, scheduler)
        # Written after the refusal, in the same pass: no next fire shows for it.
        wait_until(partial(no_next_fire, task), 10, scheduler)
    before = healthy.runs.filter(status="SUCCESSFUL").count()
    wait_until(partial(healthy_fires, healthy, before), 10, scheduler)
    # Each refused once, and nothing ran for them (no storm of MISSED rows either).
    assert TaskRun.objects.filter(task__in=broken).count() == len(broken)
    assert "Traceback" not in scheduler.output()


def test_start_up_never_fails_because_of_a_row(tmp_path: Path, healthy: Task) -> None:
    broken = [force(name, *row) for name, row in PINNED.items()]
    broken += [
        force(name, "interval", {"seconds": 5}, **fields) for name, fields in PINNED_OPTIONS.items()
    ]
    proc = Proc(tmp_path / "scheduler.log")
    proc.wait_ready()
    wait_until(partial(healthy_fires, healthy, 0), 10, proc)
    for task in broken:
        assert refused(task), task.name
    assert proc.stop() == 0


# -- the property: whatever full_clean() accepts, everything downstream handles --------------

#: Numbers on both sides of every bound (bounds.py), and the values that once broke things.
NUMBERS = (
    st.sampled_from(
        [
            *(0, 1e-9, 0.000001, 0.5, 0.999, 1, 1.5, 59, 86_399.9, 86_400, 86_400.5, 604_800),
            *(3_153_600_000, 3_153_600_001, 416_015, 999_999_999, 1e308, -1, -0.0),
            *(float("nan"), float("inf"), True, "5", None),
        ]
    )
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(-(2**70), 2**70)
)
YEARS = st.sampled_from([1, 1969, 1970, 2026, 2999, 3000, 9998, 9999])
DATES = st.builds(
    lambda year, rest: f"{year:04d}{rest}",
    YEARS,
    st.sampled_from(["-01-01T00:00:00", "-12-31T23:59:59", "-06-15", "-12-31T23:59:59+14:00"]),
) | st.sampled_from(["not a date", "", "2026-02-30"])
ZONES = st.sampled_from(
    [
        *("UTC", "Europe/Berlin", "Pacific/Kiritimati", "Etc/GMT+12", "America", "Europe"),
        *("A" * 65, "../../etc/passwd", "Europe/Berlin\x00", "", "Mars/Olympus_Mons", "US/Eastern"),
    ]
)
CRON_YEARS = st.sampled_from([1969, 1970, 2999, 3000, 9999, "2026-3000", "*/1000", "1970/500"])
JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64)
    | st.floats()
    | st.text(max_size=5)
    | st.just("a\x00b")
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children)
    ),
    max_leaves=8,
) | st.integers(16, 24).map(_deep)

INTERVALS = st.fixed_dictionaries(
    {},
    optional={
        "weeks": NUMBERS,
        "days": NUMBERS,
        "hours": NUMBERS,
        "minutes": NUMBERS,
        "seconds": NUMBERS,
        "jitter": NUMBERS,
        "start_date": DATES,
        "end_date": DATES,
        "timezone": ZONES,
    },
)
CRONS = st.fixed_dictionaries(
    {"year": CRON_YEARS},
    optional={"hour": st.sampled_from([0, 23, 24, "*/5"]), "jitter": NUMBERS, "timezone": ZONES},
) | st.fixed_dictionaries(
    {
        "crontab": st.sampled_from(
            ["0 0 * * *", "0 0 29 2 *", "*/1 * * * *", "0," * 120 + "0 * * * *"]
        )
    },
    optional={"start_date": DATES, "timezone": ZONES},
)
DATE_CONFIGS = st.fixed_dictionaries({"run_date": DATES}, optional={"timezone": ZONES})
#: The options APScheduler itself checks when it takes a job, around their bounds.
OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        "misfire_grace_time": st.sampled_from([None, -1, 0, 1, 60, 2**31 - 1, 2**31]),
        "max_instances": st.sampled_from([-1, 0, 1, 10, 2**31 - 1, 2**31]),
        "coalesce": st.booleans(),
        "timeout": st.sampled_from([None, 0, 1, 2**31 - 1]),
    },
)
ROWS = st.one_of(
    st.tuples(st.just("interval"), INTERVALS),
    st.tuples(st.just("cron"), CRONS),
    st.tuples(st.just("date"), DATE_CONFIGS),
)
COUNTER = itertools.count()


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(row=ROWS, args=JSON_VALUES, options=OPTIONS)
@example(row=("interval", {"seconds": 5, "jitter": 1e308}), args=[], options={})
@example(row=("interval", {"seconds": 5, "timezone": "America"}), args=[], options={})
@example(row=("interval", {"seconds": 5, "timezone": "A" * 300}), args=[], options={})
@example(row=("cron", {"year": 9999}), args=[], options={})
@example(row=("interval", {"seconds": 0.000001}), args=[], options={})
@example(row=("interval", {"seconds": 1e-9}), args=[], options={})
@example(row=("interval", {"weeks": 416015}), args=[], options={})
@example(row=("interval", {"days": 999999999}), args=[], options={})
@example(row=("date", {"run_date": "9999-12-31T23:59:59"}), args=[], options={})
@example(row=("interval", {"seconds": 1}), args=[float("nan")], options={})
@example(row=("interval", {"seconds": 5}), args=[], options={"misfire_grace_time": 0})
def what_full_clean_accepts_is_saved_previewed_shown_and_scheduled(
    scheduler: Proc,
    admin_client: Client,
    row: tuple[str, Any],
    args: Any,
    options: dict[str, Any],
) -> None:
    trigger, config = row
    task = Task(
        name=f"generated-{next(COUNTER)}",
        func="tests.testapp.jobs:takes_anything",
        args=[args],
        **options,
        trigger=trigger,
        trigger_config=config,
    )
    try:
        task.full_clean()
    except ValidationError as exc:
        # Refused, with every message filed under a field of the row.
        fields = {"args", "trigger_config", *options}
        assert set(exc.message_dict) <= fields, exc.message_dict  # noqa: PT017
        return
    task.save()
    task.next_fire_times(count=3)
    response = admin_client.get(reverse("admin:django_tasks_sched_task_change", args=[task.pk]))
    assert response.status_code == 200
    ACCEPTED.append(task)


ACCEPTED: list[Task] = []


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client


def test_the_live_scheduler_took_every_accepted_row(
    scheduler: Proc, admin_client: Client, healthy: Task
) -> None:
    # Runs the property in this test, so the one scheduler watches every generated row.
    ACCEPTED.clear()
    what_full_clean_accepts_is_saved_previewed_shown_and_scheduled(scheduler, admin_client)
    assert ACCEPTED, "no generated row was valid: the strategies are off"
    # Saved after every generated row: the pass that schedules it has read them all (a pass
    # reads every row changed since the last one).
    sentinel = Task.objects.create(
        name="sentinel",
        func="tests.testapp.jobs:noop",
        trigger="interval",
        trigger_config={"seconds": 1},
    )
    wait_until(sentinel.runs.exists, 10, scheduler)
    before = healthy.runs.filter(status="SUCCESSFUL").count()
    wait_until(partial(healthy_fires, healthy, before), 10, scheduler)
    # The scheduler has passed over every accepted row: none refused, none broke its trigger.
    log = scheduler.output()
    assert "is not scheduled" not in log
    assert "could not compute the next fire" not in log
    assert not TaskRun.objects.filter(error__startswith="Not scheduled").exists()


@pytest.mark.parametrize("name", PINNED)
def test_the_admin_shows_a_row_forced_past_validation(admin_client: Client, name: str) -> None:
    task = force(name, *PINNED[name])
    for url in (
        reverse("admin:django_tasks_sched_task_changelist"),
        reverse("admin:django_tasks_sched_task_change", args=[task.pk]),
    ):
        assert admin_client.get(url).status_code == 200
    task.refresh_from_db()
    assert task.describe_schedule()
    with pytest.raises(ValidationError):
        task.full_clean()
