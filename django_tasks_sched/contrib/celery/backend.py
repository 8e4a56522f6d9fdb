"""The ``django.tasks`` backend that enqueues on Celery (see the package's docstring).

Each enqueued ``django.tasks`` task becomes one Celery message for :data:`.tasks.TASK_NAME`,
carrying the task's module path and arguments, on the Celery queue named like the task's
``queue_name``; a Celery worker imports the task and calls it. Results stay with the caller:
this backend keeps none (``supports_get_result = False``), which suits the scheduler's hand-off,
whose outcome is written on the ``TaskRun``. Celery's own message priorities mean different
things on each broker, so priorities other than the default are refused rather than guessed.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.utils import timezone
from django.utils.module_loading import import_string

from django_tasks_sched.contrib.celery.tasks import TASK_NAME
from django_tasks_sched.fleet.compat import BaseTaskBackend, TaskResult, TaskResultStatus

#: Kombu's retry policy for one send: three tries within about a second.
SEND_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}


class CeleryBackend(BaseTaskBackend):
    """Sends ``django.tasks`` tasks to Celery workers."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = False
    supports_priority = False

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        self._app: Any = None

    @property
    def app(self) -> Any:
        """The Celery app: ``OPTIONS["APP"]`` (``"module:attribute"``), else Celery's current."""
        if self._app is None:
            path = self.options.get("APP")
            if path:
                module, _colon, attribute = str(path).partition(":")
                self._app = import_string(f"{module}.{attribute}" if attribute else module)
            else:
                from celery import current_app

                self._app = current_app
        return self._app

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        self.validate_task(task)
        result_id = str(uuid.uuid4())
        self.app.send_task(
            TASK_NAME,
            args=[task.module_path, list(args), dict(kwargs)],
            task_id=result_id,
            queue=task.queue_name,
            eta=task.run_after,
            # A broker that is away fails the send within a second or two: the scheduler
            # keeps the run queued and sends it on a later pass, rather than waiting here.
            retry=True,
            retry_policy=SEND_RETRY_POLICY,
        )
        return TaskResult(
            task=task,
            id=result_id,
            status=TaskResultStatus.READY,
            enqueued_at=timezone.now(),
            started_at=None,
            last_attempted_at=None,
            finished_at=None,
            args=list(args),
            kwargs=dict(kwargs),
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
