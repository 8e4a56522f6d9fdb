"""The one run path: every run (schedule, run-now, ``runtask``, inline) ends here.

:func:`execute_run` takes a ``TaskRun`` from QUEUED or RUNNING to a final status. It re-checks
the callable policy, calls the function with the row's arguments, and records the return value
(JSON, else its ``repr``), the error and traceback, timing, the process that ran it and the
run's own log output, then updates the task's last-run summary with one UPDATE.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import traceback
from datetime import datetime
from typing import Any

from django.db.models import F
from django.utils import timezone

from django_tasks_sched.callables import resolve_callable
from django_tasks_sched.conf import get_settings
from django_tasks_sched.exceptions import TaskConfigError
from django_tasks_sched.models import Task, TaskRun

logger = logging.getLogger(__name__)


def default_worker_id() -> str:
    """Identify a process running a run inline (not a scheduler) as ``inline:host:pid``."""
    return f"inline:{socket.gethostname()}:{os.getpid()}"


class _RunLogHandler(logging.Handler):
    """Collects the log records emitted by one thread while its run executes, bounded in size."""

    def __init__(self, thread_id: int, limit: int) -> None:
        super().__init__(level=logging.DEBUG)
        self.thread_id = thread_id
        self.limit = limit
        self.parts: list[str] = []
        self.size = 0
        self.truncated = False
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        # The root logger is shared by every thread; keep only what this run's thread logs.
        if record.thread != self.thread_id or self.truncated:
            return
        line = self.format(record) + "\n"
        if self.size + len(line) > self.limit:
            self.parts.append(line[: max(0, self.limit - self.size)])
            self.parts.append("... [log truncated]\n")
            self.truncated = True
        else:
            self.parts.append(line)
        self.size += len(line)

    def text(self) -> str:
        return "".join(self.parts)


def to_json_value(value: Any) -> Any:
    """The value itself if it survives a JSON round trip unchanged in kind, else its ``repr``."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def claim(run: TaskRun, worker_id: str) -> bool:
    """Move a QUEUED run to RUNNING for this process; False if someone else got it first."""
    now = timezone.now()
    # A conditional UPDATE: of two processes (or a cancel) racing for the same run, exactly
    # one sees a row count of 1.
    claimed = TaskRun.objects.filter(pk=run.pk, status=TaskRun.Status.QUEUED).update(
        status=TaskRun.Status.RUNNING, started_at=now, worker_id=worker_id
    )
    if claimed:
        run.status, run.started_at, run.worker_id = TaskRun.Status.RUNNING, now, worker_id
    return bool(claimed)


#: Marks "leave next_run_time as it is" (None is a meaningful value: no next fire).
KEEP = object()


def execute_run(
    run: TaskRun, *, worker_id: str | None = None, next_run_time: datetime | object | None = KEEP
) -> TaskRun:
    """Run ``run`` in this thread and record its outcome; returns the finished run.

    A QUEUED run is claimed first (and left alone if it was cancelled or claimed elsewhere);
    a RUNNING run is taken as already claimed by the caller. ``next_run_time``, when given,
    is written with the task's last-run summary in the same UPDATE.
    """
    worker_id = worker_id or default_worker_id()
    if run.status == TaskRun.Status.QUEUED and not claim(run, worker_id):
        run.refresh_from_db()
        return run
    if run.status != TaskRun.Status.RUNNING:
        return run

    task = run.task
    handler = _RunLogHandler(threading.get_ident(), get_settings().RUN_LOG_LIMIT)
    root = logging.getLogger()
    root.addHandler(handler)
    logger.info("Run %s of task %r started", run.pk, task.name)
    try:
        # The policy is checked again here: the row may have been edited, or the allow-list
        # narrowed, since the task was saved.
        func = resolve_callable(task.func)
        value = func(*(task.args or []), **(task.kwargs or {}))
    except TaskConfigError as exc:
        run.status = TaskRun.Status.FAILED
        run.error = f"{type(exc).__name__}: {exc}"
        run.traceback = ""
    except Exception as exc:
        run.status = TaskRun.Status.FAILED
        run.error = f"{type(exc).__name__}: {exc}"
        run.traceback = traceback.format_exc()
    else:
        run.status = TaskRun.Status.SUCCESSFUL
        run.return_value = to_json_value(value)
    finally:
        root.removeHandler(handler)
    run.finished_at = timezone.now()
    run.log = handler.text()
    run.save(update_fields=["status", "return_value", "error", "traceback", "finished_at", "log"])
    record_summary(run, next_run_time)
    duration = run.duration.total_seconds() if run.duration else 0.0
    logger.info("Run %s of task %r finished: %s in %.3fs", run.pk, task.name, run.status, duration)
    return run


def record_summary(run: TaskRun, next_run_time: datetime | object | None = KEEP) -> None:
    """Update the task's last-run fields with one UPDATE that does not nudge the sync."""
    failed = run.status in TaskRun.FAILED_STATUSES
    fields: dict[str, Any] = {
        "last_run_at": run.started_at or run.finished_at,
        "last_run_status": run.status,
        "consecutive_failures": F("consecutive_failures") + 1 if failed else 0,
    }
    if next_run_time is not KEEP:
        fields["next_run_time"] = next_run_time
    Task.objects.filter(pk=run.task_id).update_quietly(**fields)
