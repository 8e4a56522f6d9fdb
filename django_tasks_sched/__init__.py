"""django-tasks-sched: scheduled jobs stored as Django rows, run by APScheduler 3."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django_tasks_sched.callables import register
from django_tasks_sched.current import current_run
from django_tasks_sched.exceptions import TaskRunFailed, TaskRunNotFinished

if TYPE_CHECKING:
    from django_tasks_sched.facade import scheduler

__all__ = ["TaskRunFailed", "TaskRunNotFinished", "current_run", "register", "scheduler"]
__version__ = "0.1.0.dev0"


def __getattr__(name: str) -> Any:
    # The facade is imported on first use: ``import django_tasks_sched`` (which Django does
    # while loading INSTALLED_APPS) stays light and never needs the app registry.
    if name == "scheduler":
        from django_tasks_sched.facade import scheduler

        globals()["scheduler"] = scheduler
        return scheduler
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
