"""The process executor: runs called in worker processes, so a run past its timeout is stopped.

A thread cannot be stopped from outside: in the thread executor, a run past its ``timeout`` is
recorded TIMED_OUT and its ``max_instances`` slot freed, but the function goes on until it
returns. Here each of the executor's threads borrows a worker process for a run, sends it the
run (its task's dotted path and arguments), and waits for the
:class:`~django_tasks_sched.execution.Outcome`. At the task's timeout it kills the process
(SIGKILL: nothing in the function can hold it up), records the run TIMED_OUT and starts a fresh
process. A process that dies during
a run (``os._exit``, a crash in C code, the kernel's OOM killer) fails that run, with the
reason, and is replaced the same way. The scheduler process itself never runs task code.

Worker processes are *spawned*, not forked: forking a process that runs threads can copy a
lock held by another thread, and the child would wait on it forever. Each one imports the
settings module named by ``DJANGO_SETTINGS_MODULE`` and calls ``django.setup()``, so the tasks
use the ORM as in any Django process. All database writes of the run bookkeeping stay in the
scheduler process, batched as in the thread executor.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from functools import partial
from multiprocessing.connection import Connection
from queue import SimpleQueue
from typing import Any

from django.utils import timezone

from django_tasks_sched.conf import get_settings
from django_tasks_sched.execution import ENDED_ELSEWHERE, Outcome, time_left
from django_tasks_sched.liveness import liveness
from django_tasks_sched.models import TaskRun
from django_tasks_sched.service.worker import worker_main

logger = logging.getLogger(__name__)

#: The outcome of a call stopped because the run was ended elsewhere (dropped: its record stands).
KILLED = ENDED_ELSEWHERE.rstrip(".") + "; its worker process was killed."

#: The multiprocessing context: see the module's docstring for why not fork.
CONTEXT = multiprocessing.get_context("spawn")


class WorkerPool:
    """A fixed number of worker processes, each lent to one executor thread at a time."""

    def __init__(self, size: int) -> None:
        self.workers = [WorkerProcess() for _ in range(size)]
        self._idle: SimpleQueue[WorkerProcess] = SimpleQueue()
        for worker in self.workers:
            self._idle.put(worker)
        self.stopping = threading.Event()

    def call(self, run: TaskRun) -> Outcome:
        """Call the run's function in an idle worker process (the executor's ``call``)."""
        worker = self._idle.get()
        beats = liveness()
        # Ended by another process meanwhile (overlap cancel_other, a watchdog): killed.
        beats.on_end(run.pk, partial(worker.end, run.pk))
        try:
            return worker.call(run, self.stopping)
        finally:
            beats.on_end(run.pk, None)
            self._idle.put(worker)

    def stop(self) -> None:
        """Stop every worker process now; runs still going are recorded INTERRUPTED."""
        self.stopping.set()
        for worker in self.workers:
            worker.stop()
        for worker in self.workers:
            worker.process.join(1)


class WorkerProcess:
    """One worker process and the pipe to it; started again after it was killed or died."""

    def __init__(self) -> None:
        self.process: Any = None
        self.connection: Connection | None = None
        #: Set when the run it calls was ended by another process, and the process killed.
        self.ended = threading.Event()
        #: The run it calls now (None between calls), and the lock that keeps a stop for one
        #: run from killing the next.
        self.calling: int | None = None
        self._calling_lock = threading.Lock()
        self.start()

    def start(self) -> None:
        ours, theirs = CONTEXT.Pipe()
        self.process = CONTEXT.Process(
            target=worker_main,
            args=(theirs, os.getpid(), logging.getLogger().level),
            name="dts-worker",
            daemon=True,
        )
        self.process.start()
        theirs.close()
        self.connection = ours
        logger.debug("Worker process %s started", self.process.pid)

    def call(self, run: TaskRun, stopping: threading.Event) -> Outcome:
        with self._calling_lock:
            self.calling = run.pk
            self.ended.clear()
        try:
            return self._call(run, stopping)
        finally:
            with self._calling_lock:
                self.calling = None

    def _call(self, run: TaskRun, stopping: threading.Event) -> Outcome:
        task = run.task
        if not self.process.is_alive():
            self.restart()
        # The run itself (pickled, with its task's columns): current_run() in the worker.
        request = (run, get_settings().RUN_LOG_LIMIT)
        try:
            self._send(request)
        except OSError:  # it died between the look above and now
            self._reap()
            self.restart()
            if self.ended.is_set():  # killed for a stop: the run is not to be called
                return _outcome(TaskRun.Status.CANCELLED, timezone.now(), KILLED)
            self._send(request)
        started = timezone.now()
        wait = time_left(run)
        assert self.connection is not None
        if self.connection.poll(wait):
            try:
                outcome: Outcome = self.connection.recv()
                return outcome
            except (EOFError, OSError):
                pass  # the process died, or was stopped: below
            code = self._reap()
            if self.ended.is_set():
                self.restart()
                # Its record stands (CANCELLED, TIMED_OUT...): this outcome is dropped.
                return _outcome(TaskRun.Status.CANCELLED, started, KILLED)
            if stopping.is_set():
                return _outcome(
                    TaskRun.Status.INTERRUPTED,
                    started,
                    "Interrupted: the scheduler shut down before the run finished; "
                    "its worker process was stopped.",
                )
            self.restart()
            return _outcome(
                TaskRun.Status.FAILED,
                started,
                f"WorkerProcessError: the worker process running it exited with code {code}.",
            )
        # Past the timeout: kill the process, whatever the function is doing.
        pid = self.process.pid
        self.process.kill()
        self._reap()
        self.restart()
        logger.warning(
            "Run %s of task %r passed its timeout of %ss: worker process %s killed",
            run.pk,
            task.name,
            task.timeout,
            pid,
        )
        return _outcome(
            TaskRun.Status.TIMED_OUT,
            started,
            f"TimeoutError: ran longer than the task's timeout of {task.timeout}s; "
            "its worker process was killed.",
        )

    def _send(self, request: object) -> None:
        assert self.connection is not None
        self.connection.send(request)

    def _reap(self) -> int | None:
        self.process.join(5)
        return self.process.exitcode

    def restart(self) -> None:
        if self.connection is not None:
            self.connection.close()
        self.start()

    def end(self, run_id: int) -> None:
        """Run ``run_id`` was ended elsewhere: kill the process if it still calls that run
        (its thread restarts it); one that has moved on to another run is left alone."""
        with self._calling_lock:
            if self.calling != run_id:
                return
            self.ended.set()
            self.stop()

    def stop(self) -> None:
        """Kill the process: busy, its thread sees the pipe close; idle, no harm done."""
        if self.process.is_alive():
            self.process.kill()


def _outcome(status: str, started: Any, error: str) -> Outcome:
    return Outcome(str(status), started, timezone.now(), error=error)
