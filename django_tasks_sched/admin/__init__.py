"""Admin for Task, TaskRun and TaskChange; importing this package registers them with the
default site."""

from __future__ import annotations

from django_tasks_sched.admin.alerts import AlertStateAdmin
from django_tasks_sched.admin.audit import TaskChangeAdmin
from django_tasks_sched.admin.run import TaskRunAdmin
from django_tasks_sched.admin.task import TaskAdmin, run_now_message

__all__ = ["AlertStateAdmin", "TaskAdmin", "TaskChangeAdmin", "TaskRunAdmin", "run_now_message"]
