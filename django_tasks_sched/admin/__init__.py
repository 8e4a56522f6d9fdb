"""Admin for Task and TaskRun; importing this package registers both with the default site."""

from __future__ import annotations

from django_tasks_sched.admin.run import TaskRunAdmin
from django_tasks_sched.admin.task import TaskAdmin, run_now_message

__all__ = ["TaskAdmin", "TaskRunAdmin", "run_now_message"]
