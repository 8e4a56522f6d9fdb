"""The one run path: every run (schedule, run-now, ``runtask``, inline) ends here.

:func:`execute_run` takes a ``TaskRun`` from QUEUED or RUNNING to a final status. It re-checks
the callable policy, calls the function with the row's arguments, and records the return value
(JSON, else its ``repr``), the error and traceback, timing, the process that ran it and the
run's own log output, then updates the task's last-run summary. :func:`record_outcomes` writes
outcomes, one run at a time or, from a scheduler, many at once.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import InterfaceError, OperationalError, connections, router, transaction
from django.db.models import Field, Model
from django.utils import timezone

from django_tasks_sched import bounds
from django_tasks_sched.callables import resolve_callable
from django_tasks_sched.conf import get_settings
from django_tasks_sched.exceptions import TaskConfigError
from django_tasks_sched.models import Task, TaskRun
from django_tasks_sched.policy import after_outcomes, end_runs

logger = logging.getLogger(__name__)


def default_worker_id() -> str:
    """Identify a process running a run inline (not a scheduler) as ``inline:host:pid``."""
    return f"inline:{socket.gethostname()}:{os.getpid()}"


class _RunLog:
    """The log output of one run, bounded in size."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.size = 0
        self.truncated = False

    def add(self, line: str) -> None:
        if self.truncated:
            return
        if self.size + len(line) > self.limit:
            self.parts.append(line[: max(0, self.limit - self.size)])
            self.parts.append("... [log truncated]\n")
            self.truncated = True
        else:
            self.parts.append(line)
        self.size += len(line)

    def text(self) -> str:
        return "".join(self.parts)


class _RunLogCapture(logging.Handler):
    """One handler on the root logger for all runs: each record goes to its thread's run.

    A handler per run would be added and removed thousands of times a second on a busy
    scheduler, and every record of every thread would pass through all of them.
    """

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.runs: dict[int, _RunLog] = {}
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def handle(self, record: logging.LogRecord) -> bool:
        # No lock: each run's buffer is only written by its own thread. A record handed on
        # to be written by another thread (a scheduler's run lines) is not the run's output.
        run_log = self.runs.get(record.thread or 0)
        if run_log is not None and record.thread == threading.get_ident():
            run_log.add(self.format(record) + "\n")
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.handle(record)

    @contextmanager
    def capture(self, limit: int) -> Iterator[_RunLog]:
        """Collect what the calling thread logs (at the levels logging lets through)."""
        root = logging.getLogger()
        if self not in root.handlers:
            # Also after a logging reconfiguration replaced the root logger's handlers.
            root.addHandler(self)
        thread = threading.get_ident()
        outer = self.runs.get(thread)  # a run started inline from inside another run
        self.runs[thread] = run_log = _RunLog(limit)
        try:
            yield run_log
        finally:
            if outer is None:
                del self.runs[thread]
            else:
                self.runs[thread] = outer


_capture = _RunLogCapture()


def to_json_value(value: Any) -> Any:
    """The value itself if every database can store it as JSON, else its ``repr`` as text.

    Not storable as it is: what JSON cannot encode, NaN and Infinity, NUL characters (which
    PostgreSQL refuses), and values past the bounds of :func:`bounds.check_json`.
    """
    try:
        bounds.check_json(json.loads(json.dumps(value, allow_nan=False)), "return value")
    except (TypeError, ValueError, RecursionError):  # TaskConfigError is a ValueError
        return storable_text(_safe_repr(value), limit=bounds.MAX_JSON_BYTES)
    return value


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception as exc:
        return f"<{type(value).__name__} whose repr() raised {type(exc).__name__}>"


def storable_text(text: str, *, limit: int | None = None) -> str:
    """``text`` as every database stores it: NUL characters written as ``\\x00``, bounded."""
    text = text.replace("\x00", "\\x00")
    if limit is not None and len(text) > limit:
        text = text[: limit - 15] + "... [truncated]"
    return text


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


def call_task(func: str, args: Any, kwargs: Any, log_limit: int) -> Outcome:
    """Check the callable policy, call ``func`` with the arguments, and say how it went.

    ``started_at`` is taken when the function is called, so it is the real start even for a
    run that waited for a thread or a worker process. What the calling thread logs meanwhile
    is the run's log output (at most ``log_limit`` characters).
    """
    status, value, error, trace = TaskRun.Status.SUCCESSFUL, None, "", ""
    with _capture.capture(log_limit) as run_log:
        started_at = timezone.now()
        try:
            # The policy is checked again here: the row may have been edited, or the
            # allow-list narrowed, since the task was saved.
            function = resolve_callable(func)
            _check_arguments(args, kwargs)
            value = function(*(args or []), **(kwargs or {}))
        except TaskConfigError as exc:
            status, error = TaskRun.Status.FAILED, describe_exception(exc)
        except (Exception, SystemExit) as exc:  # sys.exit() in a task ends the run, not us
            status, error = TaskRun.Status.FAILED, describe_exception(exc)
            trace = traceback.format_exc()
    return Outcome(str(status), started_at, timezone.now(), value, error, trace, run_log.text())


def describe_exception(exc: BaseException) -> str:
    """``Type: message``, even for an exception whose ``str()`` raises."""
    try:
        message = str(exc)
    except Exception:
        message = "<its message could not be read>"
    return f"{type(exc).__name__}: {message}"


def _check_arguments(args: Any, kwargs: Any) -> None:
    """Arguments of a row written past validation: never spread a string into characters."""
    if args is not None and not isinstance(args, list):
        raise TaskConfigError("the task's args are not a JSON list", field="args")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise TaskConfigError("the task's kwargs are not a JSON object", field="kwargs")


def call_here(run: TaskRun) -> Outcome:
    """Call the run's function in this thread (the thread executor, ``runtask``, inline)."""
    task = run.task
    return call_task(task.func, task.args, task.kwargs, get_settings().RUN_LOG_LIMIT)


#: Marks "leave next_run_time as it is" (None is a meaningful value: no next fire).
KEEP = object()

#: A finished run and the task's next fire time to store with its summary (or :data:`KEEP`).
Finished = tuple[TaskRun, object]

#: The TaskRun columns a finished run writes (the claim wrote the others): :class:`Outcome`'s.
OUTCOME_FIELDS = (
    "status",
    "started_at",
    "finished_at",
    "return_value",
    "error",
    "traceback",
    "log",
)


def execute_run(
    run: TaskRun,
    *,
    worker_id: str | None = None,
    next_run_time: datetime | object | None = KEEP,
    record: Callable[[TaskRun], None] | None = None,
    announce: Callable[[logging.LogRecord], None] | None = None,
    call: Callable[[TaskRun], Outcome] | None = None,
) -> TaskRun:
    """Run ``run`` and record its outcome; returns the finished run.

    A QUEUED run is claimed first (and left alone if it was cancelled or claimed elsewhere);
    a RUNNING run is taken as already claimed by the caller. ``started_at`` becomes the moment
    the function was called (see :func:`call_task`).

    The outcome is written by :func:`record_outcomes`, with ``next_run_time`` (when given) in
    the task's summary. A scheduler passes ``record`` instead to collect finished runs and
    write many of them at once; it then owns the summary's ``next_run_time`` too. It may pass
    ``announce`` as well, to have one thread write the "started" and "finished" log lines of
    all its runs, and ``call`` to have the function called elsewhere than in this thread (a
    worker process: :mod:`django_tasks_sched.service.processes`).
    """
    worker_id = worker_id or default_worker_id()
    if run.status == TaskRun.Status.QUEUED and not claim(run, worker_id):
        run.refresh_from_db()
        return run
    if run.status != TaskRun.Status.RUNNING:
        return run

    task = run.task
    _log(announce, "Run %s of task %r started", run.pk, task.name)
    outcome = (call or call_here)(run)
    for name in OUTCOME_FIELDS:
        setattr(run, name, getattr(outcome, name))
    if record is None:
        record_outcome((run, next_run_time))
    else:
        record(run)
    duration = run.duration.total_seconds() if run.duration else 0.0
    _log(
        announce, "Run %s of task %r finished: %s in %.3fs", run.pk, task.name, run.status, duration
    )
    return run


def _log(announce: Callable[[logging.LogRecord], None] | None, msg: str, *args: Any) -> None:
    """Log a run line at INFO, or hand the record to ``announce`` to be written elsewhere."""
    if announce is None:
        logger.info(msg, *args, stacklevel=2)
    elif logger.isEnabledFor(logging.INFO):
        # Made here, so the time, thread and source line are the run's.
        path, line, func, _ = logger.findCaller(stacklevel=2)
        announce(logger.makeRecord(logger.name, logging.INFO, path, line, msg, args, None, func))


def record_outcomes(finished: Sequence[Finished]) -> None:
    """Write finished runs and their tasks' last-run summaries in one transaction.

    A few statements for any number of runs, in raw SQL rather than ``save()`` and
    ``QuerySet.update()``: a busy scheduler records thousands of runs a second. The summary
    UPDATE neither moves ``updated_at`` nor nudges the sync.
    """
    if not finished:
        return
    summaries: dict[int, _Summary] = {}
    for run, next_run_time in finished:
        summaries.setdefault(run.task_id, _Summary()).fold(run, next_run_time)
    runs = sorted((run for run, _ in finished), key=lambda run: run.pk)
    using = router.db_for_write(TaskRun)
    with transaction.atomic(using=using):
        # Task rows first, then run rows: the order a claim takes them in. The other way round,
        # a claim checking its insert against a run row we are updating waits for us while we
        # wait for the task row it locked, and PostgreSQL reports a deadlock.
        _record_summaries(summaries, using)
        # A run may have been recorded meanwhile by someone else: TIMED_OUT by a watchdog, or
        # INTERRUPTED by a process that took ours for dead. That record stands (its retry may
        # already be queued); this late outcome is dropped. The summary above may still show
        # it as the last status, which is harmless.
        live = lock_rows(TaskRun, [run.pk for run in runs], using, status=TaskRun.Status.RUNNING)
        late = [run for run in runs if run.pk not in live]
        runs = [run for run in runs if run.pk in live]
        run_rows = [[run.pk, *(getattr(run, name) for name in OUTCOME_FIELDS)] for run in runs]
        update_rows(TaskRun, OUTCOME_FIELDS, run_rows, using, locked=True)
    for run in late:
        logger.warning(
            "Run %s finished (%s) after it was recorded otherwise; its outcome is dropped",
            run.pk,
            run.status,
        )
        run.refresh_from_db()
    after_outcomes(runs)


def record_outcome(item: Finished) -> None:
    """Record one outcome; if the database refuses it, end the run FAILED saying why.

    Through the guarded verb (``end_runs``): a run another process ended meanwhile (TIMED_OUT
    by a watchdog) keeps that status, and a run ended here is followed up (failure count,
    retry) like any other.
    """
    try:
        record_outcomes([item])
        return
    except TRANSIENT_ERRORS:
        raise  # the database is away: the caller retries, or orphan recovery ends the run
    except Exception as exc:
        logger.exception("Could not record run %s", item[0].pk)
        reason = f"Could not record the outcome: {describe_exception(exc)}"
    run = item[0]
    try:
        end_runs([run], TaskRun.Status.FAILED, lambda run: storable_text(reason, limit=10_000))
    except Exception:
        logger.exception("Could not record run %s as FAILED", run.pk)


#: Errors that say the database is unreachable, not that it refused the data.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)


def quoter(connection: Any) -> Callable[[str | None], str]:
    """``connection.ops.quote_name`` for column names, which django-stubs 6 types as optional."""

    def quote(name: str | None) -> str:
        assert name is not None, "a concrete field has a column"
        return str(connection.ops.quote_name(name))

    return quote


def concrete_field(model: type[Model], name: str) -> Field[Any, Any]:
    """The model's field ``name``, which has a column."""
    field = model._meta.get_field(name)
    assert isinstance(field, Field)
    return field


def lock_rows(
    model: type[Model], keys: Sequence[Any], using: str, *, status: str | None = None
) -> set[Any]:
    """Lock rows in primary-key order (where the database locks rows), as claims lock tasks.

    Two scheduler processes writing the same rows in different orders could deadlock. Returns
    the keys found, only those with ``status`` if one is given (one statement for both). With
    no ``status``, a database without row locks (SQLite) is not asked at all.
    """
    connection = connections[using]
    can_lock = connection.features.has_select_for_update
    if not keys or (status is None and not can_lock):
        return set(keys)
    table, key = connection.ops.quote_name(model._meta.db_table), _column(model, "id", using)
    where = f" AND {_column(model, 'status', using)} = %s" if status is not None else ""
    lock = f" {connection.ops.for_update_sql()}" if can_lock else ""
    ordered, found = sorted(keys), set[Any]()
    with connection.cursor() as cursor:
        for start in range(0, len(ordered), UPDATE_CHUNK_SIZE):
            chunk = ordered[start : start + UPDATE_CHUNK_SIZE]
            placeholders = ", ".join(["%s"] * len(chunk))
            cursor.execute(
                f"SELECT {key} FROM {table} WHERE {key} IN ({placeholders}){where} "
                f"ORDER BY {key}{lock}",
                [*chunk, *([status] if status is not None else [])],
            )
            found.update(row[0] for row in cursor.fetchall())
    return found


def update_rows(
    model: type[Model],
    names: Sequence[str],
    rows: Sequence[Sequence[Any]],
    using: str,
    *,
    locked: bool = False,
) -> None:
    """Set fields ``names`` of many rows, each to its own values: ``rows`` are ``[pk, *values]``.

    The rows are locked in primary-key order first (see :func:`lock_rows`) unless ``locked``
    says the caller did. Call it inside a transaction.
    """
    if not rows:
        return
    connection = connections[using]
    quote = quoter(connection)
    pk, fields = concrete_field(model, "id"), [concrete_field(model, name) for name in names]
    table, key = quote(model._meta.db_table), quote(pk.column)
    prepared = [
        [pk_value, *(f.get_db_prep_save(v, connection) for f, v in zip(fields, row, strict=True))]
        for pk_value, *row in sorted(rows, key=lambda row: row[0])
    ]
    if not locked:
        lock_rows(model, [row[0] for row in prepared], using)
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            sets = ", ".join(f"{quote(field.column)} = %s" for field in fields)
            sql = f"UPDATE {table} SET {sets} WHERE {key} = %s"
            cursor.executemany(sql, [[*row[1:], row[0]] for row in prepared])
            return
        # PostgreSQL: one UPDATE joined to a VALUES list per chunk is planned once; as many
        # single-row UPDATEs took three times as long.
        columns = [pk, *fields]
        row_sql = "({})".format(", ".join(f"CAST(%s AS {f.db_type(connection)})" for f in columns))
        sets = ", ".join(f"{quote(field.column)} = v.{quote(field.column)}" for field in fields)
        aliases = ", ".join(quote(field.column) for field in columns)
        for start in range(0, len(prepared), UPDATE_CHUNK_SIZE):
            chunk = prepared[start : start + UPDATE_CHUNK_SIZE]
            values = ", ".join([row_sql] * len(chunk))
            cursor.execute(
                f"UPDATE {table} AS t SET {sets} FROM (VALUES {values}) AS v({aliases}) "
                f"WHERE t.{key} = v.{key}",
                [value for row in chunk for value in row],
            )


#: Rows per statement of :func:`lock_rows` and :func:`update_rows` (PostgreSQL).
UPDATE_CHUNK_SIZE = 1000


@dataclass
class _Summary:
    """One task's last-run fields, folded over its runs in the order they finished."""

    # Each failure adds one to consecutive_failures and any other outcome resets it: after
    # folding, a reset task stores ``add``, any other adds ``add`` to its stored count.
    reset: bool = False
    add: int = 0
    last_run_at: datetime | None = None
    last_run_status: str = ""
    next_run_time: object = KEEP

    def fold(self, run: TaskRun, next_run_time: object) -> None:
        if run.status in TaskRun.FAILED_STATUSES:
            self.add += 1
        else:
            self.reset, self.add = True, 0
        self.last_run_at = run.started_at or run.finished_at
        self.last_run_status = str(run.status)
        if next_run_time is not KEEP:
            self.next_run_time = next_run_time


def _record_summaries(summaries: dict[int, _Summary], using: str) -> None:
    """The tasks' last-run fields, with one UPDATE for many tasks where the values are known."""
    lock_rows(Task, list(summaries), using)
    known: dict[bool, list[list[Any]]] = {False: [], True: []}
    counting: list[tuple[int, _Summary]] = []
    for task_id, summary in sorted(summaries.items()):
        if not summary.reset:
            counting.append((task_id, summary))
            continue
        with_next = summary.next_run_time is not KEEP
        row = [task_id, summary.last_run_at, summary.last_run_status, summary.add]
        known[with_next].append([*row, summary.next_run_time] if with_next else row)
    names = ["last_run_at", "last_run_status", "consecutive_failures"]
    update_rows(Task, names, known[False], using, locked=True)
    update_rows(Task, [*names, "next_run_time"], known[True], using, locked=True)
    # Only failures since the last write: they add to the stored count (rare: row by row).
    for task_id, summary in counting:
        _add_failures(task_id, summary, using)


def _add_failures(task_id: int, summary: _Summary, using: str) -> None:
    connection = connections[using]
    fields: dict[str, Any] = {
        "last_run_at": summary.last_run_at,
        "last_run_status": summary.last_run_status,
    }
    if summary.next_run_time is not KEEP:
        fields["next_run_time"] = summary.next_run_time
    sets = [f"{_column(Task, name, using)} = %s" for name in fields]
    params = [
        concrete_field(Task, name).get_db_prep_save(v, connection) for name, v in fields.items()
    ]
    failures = _column(Task, "consecutive_failures", using)
    sets.append(f"{failures} = {failures} + %s")
    table = connection.ops.quote_name(Task._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET {', '.join(sets)} WHERE {_column(Task, 'id', using)} = %s",
            [*params, summary.add, task_id],
        )


def _column(model: type[Model], name: str, using: str) -> str:
    return quoter(connections[using])(concrete_field(model, name).column)
