"""The one task this app enqueues on a ``django.tasks`` backend, and what a worker does with it.

A worker of the backend imports this module (the enqueued task's path) and calls
:data:`run_handed_off` with a run's primary key. The user's function is not enqueued itself:
it may be ``module:Class.method``, return what is not JSON, or be refused by the callable
policy since it was saved, none of which a backend would handle after the side effects.
The wrapper claims the run QUEUED -> RUNNING with a guarded UPDATE (a message delivered twice,
or re-sent after a lease, finds nothing to claim and returns), and runs it through the one run
path of every executor (:func:`django_tasks_sched.execution.execute_run`): the callable policy
checked again, ``current_run()``, liveness stamps while it runs, and the outcome recorded with
its follow-up (retries, the failure limit). It returns ``None``: the run's outcome is on its
``TaskRun``, not in the backend's result.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from django_tasks_sched.fleet.compat import backend_aliases, task

logger = logging.getLogger(__name__)

#: The worker id prefix of runs executed by a fleet's worker: ``worker:<alias>:<host>:<pid>``.
WORKER_PREFIX = "worker:"


def _defining_options() -> tuple[str, str]:
    """The backend and queue the wrapper is defined with: any that exists and accepts it.

    django.tasks binds a task to a backend and a queue when it is defined, and refuses an
    alias that is not in ``TASKS`` or a queue the backend does not serve: "default" where it
    exists, else the first alias, and its "default" queue, else the first it serves. Each
    hand-off names its real backend, queue and priority with ``.using()``.
    """
    from django_tasks_sched.fleet.compat import task_backends

    aliases = backend_aliases()
    alias = "default" if "default" in aliases else aliases[0]
    queues = sorted(getattr(task_backends[alias], "queues", None) or ["default"])
    return alias, "default" if "default" in queues else queues[0]


def _django_task(function: Callable[..., None]) -> Any:
    """Make ``function`` a ``django.tasks`` task, as its ``@task()`` decorator would."""
    backend, queue_name = _defining_options()
    return task(backend=backend, queue_name=queue_name)(function)


@_django_task
def run_handed_off(run_id: int, backend: str = "", trace: Any = None) -> None:
    """Execute one handed-off run here, unless it was started (or ended) elsewhere.

    ``trace``: the hand-off's trace context (:mod:`django_tasks_sched.tracing`), if any.
    """
    from django_tasks_sched.execution import call_stoppable, execute_run, process_scope
    from django_tasks_sched.models import TaskRun

    try:
        run = TaskRun.objects.select_related("task").get(pk=run_id)
    except TaskRun.DoesNotExist:
        logger.info("Run %s is gone (its task was deleted): nothing to do", run_id)
        return
    if run.status != TaskRun.Status.QUEUED:
        # A duplicate or a re-sent message: the run is another worker's, or already over.
        logger.info("Run %s is %s already: this delivery does nothing", run_id, run.status)
        return
    worker_id = f"{WORKER_PREFIX}{backend or run.backend}:{process_scope()}:{os.getpid()}"
    # Stopped if the run is ended elsewhere (cancel_other, a timeout) where the worker calls
    # it in its main thread: db_worker, Celery's prefork and solo pools.
    execute_run(run, worker_id=worker_id, call=call_stoppable, trace=_carrier(trace))


def _carrier(trace: Any) -> dict[str, str] | None:
    """A trace context from a message: a small dict of strings, else nothing."""
    if not isinstance(trace, dict) or len(trace) > 8:
        return None
    # A value too long is dropped, not cut: a cut tracestate or baggage would be wrong.
    carrier = {
        key: value
        for key, value in trace.items()
        if isinstance(key, str) and isinstance(value, str) and len(value) <= 1024
    }
    return carrier or None
