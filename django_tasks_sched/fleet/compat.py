"""django.tasks on Django 6, or its backport ``django-tasks`` on Django 5.2: one import site.

Imported only where a task names a backend (validation, hand-off, the worker side): a project
that runs every task in ``runscheduler`` needs neither.
"""

from __future__ import annotations

from importlib.util import find_spec
from typing import Any

from django.core.exceptions import ImproperlyConfigured

if find_spec("django.tasks"):
    from django.tasks import task, task_backends
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import Task as DjangoTask
    from django.tasks.base import TaskResult, TaskResultStatus
    from django.tasks.exceptions import InvalidTask, InvalidTaskBackend
elif find_spec("django_tasks"):  # pragma: no cover - depends on the installed Django
    from django_tasks import (  # type: ignore[assignment,no-redef,unused-ignore]
        task,
        task_backends,
    )
    from django_tasks.backends.base import (  # type: ignore[assignment,no-redef,unused-ignore]
        BaseTaskBackend,
    )
    from django_tasks.base import Task as DjangoTask  # type: ignore[assignment,unused-ignore]
    from django_tasks.base import (  # type: ignore[assignment,no-redef,unused-ignore]
        TaskResult,
        TaskResultStatus,
    )
    from django_tasks.exceptions import (  # type: ignore[assignment,no-redef,unused-ignore]
        InvalidTaskBackendError as InvalidTaskBackend,
    )
    from django_tasks.exceptions import (  # type: ignore[assignment,no-redef,unused-ignore]
        InvalidTaskError as InvalidTask,
    )
else:  # pragma: no cover - depends on the installed packages
    raise ImproperlyConfigured(
        "Running tasks on a backend needs django.tasks: Django 6, or on Django 5.2 the "
        "django-tasks backport (pip install 'django-tasks-sched[fleet]')."
    )

__all__ = [
    "BaseTaskBackend",
    "DjangoTask",
    "InvalidTask",
    "InvalidTaskBackend",
    "TaskResult",
    "TaskResultStatus",
    "backend_aliases",
    "task",
    "task_backends",
]


def backend_aliases() -> list[str]:
    """The aliases of Django's ``TASKS`` setting (its default when the setting is absent)."""
    from django.conf import settings

    tasks: Any = getattr(settings, "TASKS", None)
    if isinstance(tasks, dict) and tasks:
        return [str(alias) for alias in tasks]
    return ["default"]
