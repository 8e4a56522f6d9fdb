"""Whatever a function returns, raises or logs, its run reaches a final status on every path.

On PostgreSQL these once left inline runs RUNNING for ever (a DataError for NaN or NUL in the
outcome), and every later fire of the task was then MISSED for max_instances.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable

import pytest
from django.core.management import call_command

from django_tasks_sched import scheduler
from django_tasks_sched.models import Task, TaskRun

pytestmark = pytest.mark.django_db

Status = TaskRun.Status

#: function name -> (final status, what the stored return value or error must say)
CASES = {
    "returns_nan": (Status.SUCCESSFUL, "nan"),
    "returns_infinity": (Status.SUCCESSFUL, "[1.0, inf]"),
    "returns_nul": (Status.SUCCESSFUL, "'a\\x00b'"),
    "returns_nul_key": (Status.SUCCESSFUL, "{'a\\x00': 1}"),
    "returns_deep": (Status.SUCCESSFUL, "<list whose repr() raised RecursionError>"),
    "returns_huge_int": (Status.SUCCESSFUL, "1" + "0" * 100),
    "raises_nul": (Status.FAILED, "RuntimeError: bad\\x00message"),
    "logs_nul": (Status.SUCCESSFUL, "logged"),
    "exits": (Status.FAILED, "SystemExit: 3"),
    "raises_unprintable": (Status.FAILED, "_Unprintable: <its message could not be read>"),
    "returns_bad_repr": (Status.SUCCESSFUL, "_BadRepr whose repr() raised RuntimeError"),
}


def _inline(task: Task) -> TaskRun:
    return task.run_now(inline=True)


def _facade(task: Task) -> TaskRun:
    return scheduler.run_job(task.name)


def _runtask(task: Task) -> TaskRun:
    with contextlib.suppress(SystemExit):  # a failed run exits 1, as documented
        call_command("runtask", task.name, stdout=io.StringIO(), stderr=io.StringIO())
    return task.runs.get()


PATHS: dict[str, Callable[[Task], TaskRun]] = {
    "run_now-inline": _inline,
    "scheduler.run_job": _facade,
    "runtask": _runtask,
}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("func", CASES)
def test_every_outcome_is_recorded(func: str, path: str) -> None:
    task = Task.objects.create(
        name=f"{func}-{path}",
        func=f"tests.testapp.hostile:{func}",
        trigger=Task.Trigger.INTERVAL,
        trigger_config={"hours": 1},
    )
    PATHS[path](task)
    (run,) = task.runs.all()  # fresh from the database: what was really stored
    status, says = CASES[func]
    assert run.status == status, run.error
    assert run.finished_at is not None
    stored = run.return_value if status == Status.SUCCESSFUL else run.error
    assert says in str(stored)
    if func == "logs_nul":
        assert "a log line with a NUL: \\x00" in run.log
    task.refresh_from_db()
    assert task.last_run_status == status
