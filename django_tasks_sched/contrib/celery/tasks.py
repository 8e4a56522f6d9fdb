"""The Celery task that runs a ``django.tasks`` task on a Celery worker.

Celery workers import this module (list it in the Celery app's ``imports``). Messages are
acknowledged after the call (``acks_late``) and given back when the worker process dies
(``reject_on_worker_lost``), so a message is not lost with its worker; a redelivered message
of a scheduler's run finds the run already claimed and does nothing (see
:mod:`django_tasks_sched.fleet.tasks`).
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

#: The Celery name of the task: stable, whatever the module is called.
TASK_NAME = "django_tasks_sched.run_django_task"


@shared_task(name=TASK_NAME, acks_late=True, reject_on_worker_lost=True)
def run_django_task(module_path: str, args: list[Any], kwargs: dict[str, Any]) -> None:
    """Import the ``django.tasks`` task at ``module_path`` and call it with the arguments."""
    from django.utils.module_loading import import_string

    from django_tasks_sched.fleet.compat import DjangoTask

    task = import_string(module_path)
    if not isinstance(task, DjangoTask):
        raise TypeError(f"{module_path} is not a django.tasks task")
    task.call(*args, **kwargs)
