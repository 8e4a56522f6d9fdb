"""The life of a worker process of the process executor (see :mod:`.processes`).

This module is what a spawned worker process imports first, before Django is set up: it imports
nothing of Django's or of this app's models at its top.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import traceback
from multiprocessing.connection import Connection

from django_tasks_sched.service.logs import log_to_stderr

#: Seconds between a worker process's looks at whether the scheduler that started it is alive.
PARENT_CHECK_INTERVAL = 1.0


def worker_main(connection: Connection, parent_pid: int, log_level: int) -> None:
    """A worker process's life: set Django up, then call functions as the scheduler asks."""
    # Stopping is the scheduler's business: a Ctrl-C in a terminal (sent to the whole process
    # group) or systemd's SIGTERM to the whole service must not cut a run short here while
    # the scheduler gives it its grace period.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()
    import django

    django.setup()
    # The scheduler's own level: a run's log lines are captured as in the thread executor.
    log_to_stderr(log_level)

    # Only now: models cannot be imported before django.setup().
    from django.db import close_old_connections
    from django.utils import timezone

    from django_tasks_sched.execution import Outcome, call_task
    from django_tasks_sched.models import TaskRun

    while True:
        try:
            request = connection.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if request is None:
            return
        run, log_limit = request
        close_old_connections()
        started = timezone.now()
        try:
            outcome = call_task(run, log_limit)
        except BaseException as exc:  # SystemExit or KeyboardInterrupt raised by the task
            outcome = Outcome(
                str(TaskRun.Status.FAILED),
                started,
                timezone.now(),
                error=f"{type(exc).__name__}: {exc}",
                traceback=traceback.format_exc(),
            )
        finally:
            close_old_connections()
        connection.send(outcome)


def _exit_with_parent(parent_pid: int) -> None:
    """Leave when the scheduler is gone (kill -9 included), even in the middle of a run."""
    while True:
        time.sleep(PARENT_CHECK_INTERVAL)
        if os.getppid() != parent_pid:
            os._exit(1)
