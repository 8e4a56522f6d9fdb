"""The one run path: every run (schedule, run-now, ``runtask``, inline) goes through here.

fire -> claim (a scheduler: :mod:`.service.claims`) -> :func:`execute_run`: start the run
(QUEUED -> RUNNING; a run asked for here, :func:`run_here`, is inserted RUNNING),
:func:`call_task` (re-check the callable policy, call the function with the row's arguments,
capture its log output) -> :class:`Outcome` (made storable whatever the function returned,
raised or logged) -> record it (:func:`.lifecycle.finish`, with the task's summary) ->
follow-up (retry, failure limit: :func:`.policy.after_outcomes`). A scheduler collects
outcomes and records many at once; every other path records its one run.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import socket
import traceback
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asgiref.sync import async_to_sync
from django.utils import timezone

from django_tasks_sched import lifecycle, runlog, tracing
from django_tasks_sched.autonomous import close_side_connections
from django_tasks_sched.callables import resolve_callable
from django_tasks_sched.conf import get_settings
from django_tasks_sched.current import running_as
from django_tasks_sched.exceptions import TaskConfigError
from django_tasks_sched.lifecycle import KEEP, OUTCOME_FIELDS
from django_tasks_sched.liveness import alive
from django_tasks_sched.models import Task, TaskRun
from django_tasks_sched.stopping import RunStopped, stoppable
from django_tasks_sched.storable import describe_exception, storable_text, to_json_value

logger = logging.getLogger(__name__)


#: The worker id prefix of runs made inline: orphan recovery reads where and which process.
INLINE_PREFIX = "inline:"


def default_worker_id() -> str:
    """Identify a process running a run inline: ``inline:<host>:<pid namespace>:<pid>``."""
    return f"{INLINE_PREFIX}{process_scope()}:{os.getpid()}"


def process_scope() -> str:
    """Where a pid means this process: the host and its pid namespace.

    Containers on one host can share a hostname yet number their processes apart; a pid is
    only looked up by processes of the same namespace (``0`` where the system has none).
    """
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        namespace = 0
    return f"{socket.gethostname()}:{namespace}"


@dataclass
class Outcome:
    """What calling a task's function gave. Plain values, so a worker process can send it."""

    status: str
    started_at: datetime
    finished_at: datetime
    return_value: Any = None
    error: str = ""
    traceback: str = ""
    log: str = ""

    def __post_init__(self) -> None:
        # Every executor builds one of these: made storable here, a value no database takes
        # (NaN, NUL) can never leave a run RUNNING because its outcome could not be written.
        self.return_value = to_json_value(self.return_value)
        self.error = storable_text(self.error)
        self.traceback = storable_text(self.traceback)
        self.log = storable_text(self.log)


#: The outcome of a call stopped because its run was ended elsewhere (dropped: its record stands).
ENDED_ELSEWHERE = "Stopped: the run was ended by another process."


def call_task(
    run: TaskRun,
    log_limit: int,
    guard: Callable[[], AbstractContextManager[Any]] = nullcontext,
) -> Outcome:
    """Check the callable policy, call the run's function with its arguments, say how it went.

    ``started_at`` is taken when the function is called, so it is the real start even for a
    run that waited for a thread or a worker process. What the calling thread logs meanwhile
    is the run's log output (at most ``log_limit`` characters). The function finds the run
    through :func:`~django_tasks_sched.current_run`. An ``async def`` function is awaited in
    an event loop of its own, and cancelled at the task's timeout (a thread cannot be
    stopped; a coroutine can). ``guard`` is entered around the function's own call alone
    (:func:`call_stoppable`: a stop raised there is the call's, never this bookkeeping's).
    """
    task = run.task
    status, value, error, trace = TaskRun.Status.SUCCESSFUL, None, "", ""
    with runlog.capture.capture(log_limit) as run_log, running_as(run):
        started_at = timezone.now()
        try:
            # The policy is checked again here: the row may have been edited, or the
            # allow-list narrowed, since the task was saved.
            function = resolve_callable(task.func)
            _check_arguments(task.args, task.kwargs)
            with guard():
                value = function(*(task.args or []), **(task.kwargs or {}))
            if inspect.isawaitable(value):
                # In an event loop of its own; ORM calls it makes through sync_to_async come
                # back to this thread, and its connection (asgiref's thread-sensitive mode).
                value = async_to_sync(_awaited)(value, time_left(run))
        except TaskConfigError as exc:
            status, error = TaskRun.Status.FAILED, describe_exception(exc)
        except RunStopped:  # ended elsewhere: this outcome is dropped, the record stands
            status, error = TaskRun.Status.CANCELLED, ENDED_ELSEWHERE
        except asyncio.CancelledError as exc:  # a BaseException: the coroutine's own doing
            status, error = TaskRun.Status.FAILED, describe_exception(exc) or "CancelledError"
            trace = traceback.format_exc()
        except CoroutineTimedOut:
            status = TaskRun.Status.TIMED_OUT
            error = (
                f"TimeoutError: ran longer than the task's timeout of {task.timeout}s; "
                "the coroutine was cancelled."
            )
        except (Exception, SystemExit) as exc:  # sys.exit() in a task ends the run, not us
            status, error = TaskRun.Status.FAILED, describe_exception(exc)
            trace = traceback.format_exc()
        finally:
            close_side_connections()
    return Outcome(str(status), started_at, timezone.now(), value, error, trace, run_log.text())


class CoroutineTimedOut(Exception):
    """An ``async def`` function's coroutine was cancelled at its task's timeout."""


async def _awaited(awaitable: Any, timeout: float | None) -> Any:
    """Await the function's coroutine; cancel it at ``timeout`` (its own errors pass through)."""
    future = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({future}, timeout=timeout)
    if future in done:
        return future.result()
    future.cancel()
    # Its ``finally`` blocks run now; a coroutine that swallows the cancellation is not
    # waited for (asyncio.run cancels it once more on the way out).
    await asyncio.wait({future}, timeout=1.0)
    raise CoroutineTimedOut


def time_left(run: TaskRun) -> float | None:
    """Seconds until the run's timeout (None: no timeout), counted from its claim.

    From the claim, as the watchdog counts (``housekeeping.expire_overdue_runs``): whoever
    stops a run at its timeout (the process executor, a coroutine's cancellation) agrees
    with the watchdog on when it has overrun, and acts first.
    """
    timeout = getattr(run.task, "timeout", None)
    if not timeout:
        return None
    spent = (timezone.now() - run.started_at).total_seconds() if run.started_at else 0.0
    return max(0.0, timeout - spent)


def _check_arguments(args: Any, kwargs: Any) -> None:
    """Arguments of a row written past validation: never spread a string into characters."""
    if args is not None and not isinstance(args, list):
        raise TaskConfigError("the task's args are not a JSON list", field="args")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise TaskConfigError("the task's kwargs are not a JSON object", field="kwargs")


def call_here(run: TaskRun) -> Outcome:
    """Call the run's function in this thread (the thread executor, ``runtask``, inline)."""
    return call_task(run, get_settings().RUN_LOG_LIMIT)


def call_stoppable(run: TaskRun) -> Outcome:
    """Call the run's function in this thread; stop it if the run is ended elsewhere meanwhile.

    Stopped only in the main thread (see :mod:`django_tasks_sched.stopping`), where a fleet's
    worker calls its runs; elsewhere as :func:`call_here`.
    """
    return call_task(run, get_settings().RUN_LOG_LIMIT, guard=lambda: stoppable(run.pk))


def run_here(task: Task, origin: str) -> TaskRun:
    """Run ``task`` once now in this process (``run_now(inline=True)``, ``runtask``)."""
    return execute_run(lifecycle.start_here(task, origin, default_worker_id()))


def execute_run(
    run: TaskRun,
    *,
    worker_id: str | None = None,
    next_run_time: datetime | object | None = KEEP,
    record: Callable[[TaskRun], None] | None = None,
    announce: Callable[[logging.LogRecord], None] | None = None,
    call: Callable[[TaskRun], Outcome] | None = None,
    trace: Mapping[str, str] | None = None,
) -> TaskRun:
    """Run ``run`` and record its outcome; returns the finished run.

    A QUEUED run is claimed first (and left alone if it was cancelled or claimed elsewhere);
    a RUNNING run is taken as already claimed by the caller. ``started_at`` becomes the moment
    the function was called (see :func:`call_task`).

    The outcome is written by :func:`.lifecycle.finish`, with ``next_run_time`` (when given) in
    the task's summary. A scheduler passes ``record`` instead to collect finished runs and
    write many of them at once; it then owns the summary's ``next_run_time`` too. It may pass
    ``announce`` as well, to have one thread write the "started" and "finished" log lines of
    all its runs, and ``call`` to have the function called elsewhere than in this thread (a
    worker process: :mod:`django_tasks_sched.service.processes`). The call is one span
    (:mod:`django_tasks_sched.tracing`), the child of ``trace`` (a hand-off's context) if given.
    """
    worker_id = worker_id or default_worker_id()
    claimed = run.status == TaskRun.Status.RUNNING
    if run.status == TaskRun.Status.QUEUED and not lifecycle.start(run, worker_id):
        run.refresh_from_db()
        return run
    if run.status != TaskRun.Status.RUNNING:
        return run
    if claimed and _may_end_before_its_call(run.task) and not lifecycle.called(run):
        # Claimed (by a scheduler, or inserted RUNNING here), then ended before its call (by
        # a watchdog, stuck detection, cancel_other): not called after all.
        logger.info("Run %s was ended before a thread could call it; not calling", run.pk)
        run.refresh_from_db()
        return run

    task = run.task
    _log(announce, "Run %s of task %r started", run.pk, task.name)
    if record is None:
        # Alive until its outcome is written (a scheduler passing ``record`` keeps its runs
        # alive itself, until it has written their outcomes).
        with alive(run.pk):
            with tracing.run_span(run, trace):
                _take_outcome(run, (call or call_here)(run))
            lifecycle.finish_or_fail((run, next_run_time))
    else:
        with tracing.run_span(run, trace):
            _take_outcome(run, (call or call_here)(run))
        record(run)
    duration = run.duration.total_seconds() if run.duration else 0.0
    _log(
        announce, "Run %s of task %r finished: %s in %.3fs", run.pk, task.name, run.status, duration
    )
    return run


def _may_end_before_its_call(task: Any) -> bool:
    """Whether another process may end a claimed run of ``task`` while it waits for a thread.

    Stuck detection (``heartbeat_timeout``) and the watchdog (``timeout``) count from the claim,
    and ``cancel_other`` replaces the oldest run, called or not. Only their runs pay the one
    guarded UPDATE of :func:`.lifecycle.called` before the call.
    """
    return (
        bool(getattr(task, "heartbeat_timeout", None))
        or bool(getattr(task, "timeout", None))
        or getattr(task, "overlap", "") == Task.Overlap.CANCEL_OTHER
    )


def _take_outcome(run: TaskRun, outcome: Outcome) -> None:
    for name in OUTCOME_FIELDS:
        setattr(run, name, getattr(outcome, name))


def _log(announce: Callable[[logging.LogRecord], None] | None, msg: str, *args: Any) -> None:
    """Log a run line at INFO, or hand the record to ``announce`` to be written elsewhere."""
    if announce is None:
        logger.info(msg, *args, stacklevel=2)
    elif logger.isEnabledFor(logging.INFO):
        # Made here, so the time, thread and source line are the run's.
        path, line, func, _ = logger.findCaller(stacklevel=2)
        announce(logger.makeRecord(logger.name, logging.INFO, path, line, msg, args, None, func))
