from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TasksSchedConfig(AppConfig):
    name = "django_tasks_sched"
    label = "django_tasks_sched"
    verbose_name = _("Scheduled tasks")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_tasks_sched import checks  # noqa: F401  (registers the system checks)
