from __future__ import annotations

from typing import TYPE_CHECKING

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:
    from django_tasks_sched.models import Task, TaskRun


class TasksSchedConfig(AppConfig):
    name = "django_tasks_sched"
    label = "django_tasks_sched"
    verbose_name = _("Scheduled tasks")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_migrate, post_save

        from django_tasks_sched import changes, checks  # noqa: F401  (checks register on import)
        from django_tasks_sched.models import Task, TaskRun

        uid = "django_tasks_sched.changes"
        post_save.connect(changes.on_task_saved_or_deleted, sender=Task, dispatch_uid=uid)
        post_delete.connect(changes.on_task_saved_or_deleted, sender=Task, dispatch_uid=uid)
        post_save.connect(changes.on_run_queued, sender=TaskRun, dispatch_uid=uid + ".run")
        post_migrate.connect(changes.on_post_migrate, dispatch_uid=uid + ".migrate")

    def run_here(self, task: Task, origin: str) -> TaskRun:
        """Run ``task`` once in this process through the one run path (``run_now(inline=True)``).

        Here rather than in the models: the run path imports the models, never the reverse.
        """
        from django_tasks_sched.execution import run_here

        return run_here(task, origin)
