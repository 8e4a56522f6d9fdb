"""Run handed-off tasks on a Celery fleet: a ``django.tasks`` backend that sends to Celery.

Configured in one place, Django's ``TASKS`` setting::

    TASKS = {
        "celery": {
            "BACKEND": "django_tasks_sched.contrib.celery.CeleryBackend",
            "QUEUES": ["default", "reports"],
            "OPTIONS": {"APP": "proj.celery:app"},  # optional: else Celery's current app
        },
    }

and a task with ``backend="celery"``. The Celery workers run the project (they import its
settings, as any Django-aware Celery app does) and import this package's task module
(``app.conf.imports`` or ``include``; see docs/workers.md). Why a backend of ours rather than
a third-party one is said in docs/workers.md as well.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CeleryBackend"]


def __getattr__(name: str) -> Any:
    # Loaded on first use, so that importing the package needs neither Celery nor django.tasks.
    if name == "CeleryBackend":
        from django_tasks_sched.contrib.celery.backend import CeleryBackend

        return CeleryBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
