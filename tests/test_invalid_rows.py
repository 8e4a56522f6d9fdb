"""Property: rows forced past validation never stop a real scheduler, and each is refused visibly.

Hypothesis draws batches of broken rows (bad trigger configs, unknown triggers, unimportable or
disallowed callables, arguments the callable cannot take) and writes them with
``QuerySet.update()``, which skips ``full_clean()`` as raw SQL or a careless migration would. A
running scheduler must stay up and keep firing a healthy task; a row it cannot schedule is
logged by name, keeps no ``next_run_time`` and is recorded once as a FAILED run saying why; a
row it fires but cannot run is recorded as a FAILED run saying why.
"""

from __future__ import annotations

import itertools
from functools import partial
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_tasks_sched.models import Task, TaskRun
from tests.processes import SchedulerProcess as Proc
from tests.processes import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

#: Rows that cannot be scheduled: the trigger or its config is wrong.
unschedulable = st.one_of(
    st.fixed_dictionaries(
        {
            "trigger": st.just("interval"),
            "trigger_config": st.one_of(
                st.just({"seconds": "soon"}),
                st.just({"secs": 1}),
                st.just({"seconds": 0}),
                st.just({"seconds": 1, "timezone": "Mars/Olympus_Mons"}),
                st.just([1, 2, 3]),
                st.text(max_size=5),
            ),
        }
    ),
    st.fixed_dictionaries(
        {
            "trigger": st.sampled_from(["cron"]),
            "trigger_config": st.one_of(
                st.just({"crontab": "99 * * * *"}),
                st.just({"crontab": "every tuesday"}),
                st.just({"hour": 25}),
                st.just({"day_of_week": "someday"}),
            ),
        }
    ),
    st.fixed_dictionaries(
        {"trigger": st.sampled_from(["weekly", "", "INTERVAL"]), "trigger_config": st.just({})}
    ),
)

#: Rows that fire but cannot run: the callable or its arguments are wrong.
unrunnable = st.one_of(
    st.fixed_dictionaries(
        {
            "func": st.sampled_from(
                [
                    "os:system",
                    "subprocess:run",
                    "tests.testapp.jobs:no_such_function",
                    "tests.testapp.nowhere:noop",
                    "tests.testapp.jobs:NOT_CALLABLE",
                    "not a path",
                ]
            ),
            "args": st.just([]),
        }
    ),
    st.fixed_dictionaries(
        {
            "func": st.just("tests.testapp.jobs:add"),
            "args": st.lists(st.integers(), min_size=3, max_size=5),
        }
    ),
)


EXAMPLES = itertools.count()


def broken_task(name: str, changes: dict[str, Any]) -> Task:
    # Created switched off: the valid row must not fire before the UPDATE breaks it (under
    # load that can take longer than its first second).
    task = Task.objects.create(
        name=name,
        func="tests.testapp.jobs:noop",
        trigger="interval",
        trigger_config={"seconds": 1},
        active=False,
    )
    Task.objects.filter(pk=task.pk).update(active=True, **changes)  # past full_clean()
    return task


def first_failed_run(task: Task) -> TaskRun | None:
    return task.runs.filter(status="FAILED").first()


def logged(scheduler: Proc, text: str) -> bool:
    return text in scheduler.output()


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    bad_schedules=st.lists(unschedulable, min_size=1, max_size=4),
    bad_calls=st.lists(unrunnable, min_size=1, max_size=4),
)
def test_invalid_rows_never_stop_the_scheduler(
    scheduler: Proc, bad_schedules: list[dict[str, Any]], bad_calls: list[dict[str, Any]]
) -> None:
    Task.objects.all().delete()
    healthy = Task.objects.create(
        name="healthy",
        func="tests.testapp.jobs:noop",
        trigger="interval",
        trigger_config={"seconds": 1},
    )
    # Names unique across examples: the log of an earlier example must not satisfy this one.
    example = next(EXAMPLES)
    unscheduled = [broken_task(f"schedule-{example}-{i}", c) for i, c in enumerate(bad_schedules)]
    failing = [broken_task(f"call-{example}-{i}", c) for i, c in enumerate(bad_calls)]

    for task in failing:
        run = wait_until(partial(first_failed_run, task), 10, scheduler)
        assert run.error, f"{task.name}: a FAILED run must say why"
    for task in unscheduled:
        refused = f"Task {task.name!r} (id {task.pk}) is not scheduled"
        wait_until(partial(logged, scheduler, refused), 10, scheduler)
        # And once in its history: a FAILED run saying why, standing in for the fires.
        (run,) = TaskRun.objects.filter(task=task)
        assert run.status == TaskRun.Status.FAILED
        assert run.error.startswith("Not scheduled: ")
        task.refresh_from_db()
        assert task.next_run_time is None
    # Still alive, and the healthy task still fires after all that.
    before = healthy.runs.filter(status="SUCCESSFUL").count()
    wait_until(lambda: healthy.runs.filter(status="SUCCESSFUL").count() > before, 10, scheduler)
    assert scheduler.proc.poll() is None
