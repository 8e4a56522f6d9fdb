"""``current_run()``: the run the calling code executes, wherever it runs.

Set by :func:`django_tasks_sched.execution.call_task` around the function's call, so it holds
under every executor (a scheduler's threads, its worker processes, inline, ``runtask``, a
fleet's workers). A context variable: each thread and each asyncio task sees its own, and an
``async def`` task's coroutine sees the run it was started for. Threads the function starts
itself do not inherit it (pass the run along, or use ``contextvars.copy_context()``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from django_tasks_sched.models import TaskRun

_current: ContextVar[TaskRun | None] = ContextVar("django_tasks_sched_current_run", default=None)


def current_run() -> TaskRun | None:
    """The ``TaskRun`` the calling thread or coroutine is executing, else ``None``."""
    return _current.get()


@contextmanager
def running_as(run: TaskRun | None) -> Iterator[None]:
    """Make ``run`` the current run for the duration of the block."""
    token = _current.set(run)
    try:
        yield
    finally:
        _current.reset(token)
