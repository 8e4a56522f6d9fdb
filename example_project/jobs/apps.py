from __future__ import annotations

from django.apps import AppConfig


class JobsConfig(AppConfig):
    """The example project's own app: the callables its tasks run."""

    name = "example_project.jobs"
    label = "example_jobs"
    verbose_name = "Example jobs"
    default_auto_field = "django.db.models.BigAutoField"
