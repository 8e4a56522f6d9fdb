"""django-tasks-sched: scheduled jobs stored as Django rows, run by APScheduler 3."""

from __future__ import annotations

from django_tasks_sched.callables import register
from django_tasks_sched.exceptions import TaskRunFailed, TaskRunNotFinished

__all__ = ["TaskRunFailed", "TaskRunNotFinished", "register"]
__version__ = "0.1.0.dev0"
