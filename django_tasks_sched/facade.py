"""``from django_tasks_sched import scheduler``: Flask-APScheduler's job API, backed by Task rows.

The method names and meanings are Flask-APScheduler's (and so APScheduler's): a job's ``id`` is
the Task's ``name``, ``add_job()`` takes the trigger's arguments and the task's options as
keywords, errors are APScheduler's ``ConflictingIdError`` and ``JobLookupError`` (subclassed in
:mod:`django_tasks_sched.exceptions`), and a bad definition raises the model's
``ValidationError``. Methods return ``Task`` rows (``get_job``) and ``TaskRun`` handles
(``run_job``). ``jobstore`` arguments are accepted and ignored: the table is the only store.

The facade is created at import time of the package, so nothing here may touch models or
settings before a method is called; ``@scheduler.task`` only records a declaration.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from django.core.exceptions import ValidationError
from django.db import IntegrityError, router, transaction

from django_tasks_sched import audit
from django_tasks_sched.callables import callable_path, register
from django_tasks_sched.declarations import DECORATOR, declare, from_spec
from django_tasks_sched.exceptions import ConflictingIdError, JobLookupError
from django_tasks_sched.jobspec import DECLARABLE_FIELDS, JobSpec, apply_changes, job_spec
from django_tasks_sched.rawsql import take_write_lock

if TYPE_CHECKING:
    from datetime import datetime

    from django_tasks_sched.models import Task, TaskRun

F = TypeVar("F", bound=Callable[..., Any])


def _audited(method: F) -> F:
    """Record the task changes ``method`` makes as made through the facade (by ``by=``)."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from django_tasks_sched.models import TaskChange

        with audit.recording(TaskChange.Via.FACADE, kwargs.get("by", "")):
            return method(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


class Scheduler:
    """The Flask-APScheduler-compatible facade over the Task table."""

    # -- adding and removing ------------------------------------------------------------------

    @_audited
    def add_job(
        self,
        id: str,
        func: str | Callable[..., Any],
        trigger: str | None = None,
        args: Any = None,
        kwargs: Any = None,
        replace_existing: bool = False,
        **trigger_args_and_options: Any,
    ) -> Task:
        """Create the task ``id``; with ``replace_existing``, overwrite the one of that name.

        Raises ``ConflictingIdError`` if ``id`` exists and ``replace_existing`` is false, and
        ``ValidationError`` (the model's) for a definition ``Task.full_clean()`` refuses.
        """
        spec = job_spec(
            func, trigger, args, kwargs, trigger_args_and_options, default_run_date=True
        )
        with transaction.atomic():
            task, _previous = prepare_job(id, spec, replace_existing)
            save_job(task)
        return task

    @_audited
    def remove_job(self, id: str, jobstore: str | None = None) -> None:
        """Delete the task ``id`` and its run history; ``JobLookupError`` if there is none."""
        from django_tasks_sched.models import Task

        deleted, _per_model = Task.objects.named(id).delete()
        if not deleted:
            raise JobLookupError(id)

    @_audited
    def remove_all_jobs(self, jobstore: str | None = None) -> None:
        """Delete every task (declared ones come back at the next sync)."""
        from django_tasks_sched.models import Task

        Task.objects.all().delete()

    # -- reading ------------------------------------------------------------------------------

    def get_job(self, id: str, jobstore: str | None = None) -> Task | None:
        """The task named ``id``, or None."""
        from django_tasks_sched.models import Task

        return Task.objects.named(id).first()

    def get_jobs(self, jobstore: str | None = None) -> list[Task]:
        """Every task, active or paused, by name."""
        from django_tasks_sched.models import Task

        return list(Task.objects.order_by("name"))

    # -- changing -----------------------------------------------------------------------------

    @_audited
    def modify_job(self, id: str, jobstore: str | None = None, **changes: Any) -> Task:
        """Change the task ``id``; ``changes`` are ``add_job()``'s arguments.

        Given a ``trigger``, the trigger's arguments replace the schedule (APScheduler's
        ``reschedule_job``); without one they are merged into the current ``trigger_config``,
        so ``modify_job("heartbeat", seconds=60)`` changes only the interval.
        """
        with transaction.atomic():
            # Locked: a claim counting remaining_runs down (or switching the task off) waits,
            # and is not undone by this save of every field.
            task = self._get(id, lock=True)
            apply_changes(task, changes)
            task.full_clean(validate_unique=False)
            task.save()
        return task

    @_audited
    def pause_job(
        self, id: str, jobstore: str | None = None, *, reason: str = "", by: str = ""
    ) -> Task:
        """Stop the task's schedule until :meth:`resume_job` (``active=False``), saying why
        (``inactive_reason``) and who (``paused_by``)."""
        task = self._get(id)
        task.pause(reason, by=by)
        return task

    def backfill_job(self, id: str, start: datetime, end: datetime) -> list[TaskRun]:
        """Queue one run per fire time of the task in ``[start, end)`` that has none yet
        (:meth:`Task.backfill <django_tasks_sched.models.Task.backfill>`)."""
        return self._get(id).backfill(start, end)

    @_audited
    def resume_job(self, id: str, jobstore: str | None = None) -> Task:
        """Start the task's schedule again (``active=True``)."""
        task = self._get(id)
        task.resume()
        return task

    def run_job(self, id: str, jobstore: str | None = None, *, inline: bool = True) -> TaskRun:
        """Run the task now, outside its schedule, through the one run path.

        As in Flask-APScheduler, the run happens in this process and the finished run is
        returned; ``inline=False`` queues it for a scheduler process and returns the handle.
        """
        from django_tasks_sched.models import TaskRun

        return self._get(id).run_now(inline=inline, origin=TaskRun.Origin.API)

    # -- the whole scheduler ------------------------------------------------------------------

    def pause(self, by: str = "") -> bool:
        """Stop firing in every scheduler process (running runs go on); False if stopped already."""
        from django_tasks_sched.firing import switch_firing

        return switch_firing(False, by)

    def resume(self, by: str = "") -> bool:
        """Start firing again everywhere, catching up as after downtime; False if it was on."""
        from django_tasks_sched.firing import switch_firing

        return switch_firing(True, by)

    @property
    def running(self) -> bool:
        """Whether firing is on and a scheduler process is alive (Flask-APScheduler's flag)."""
        from django_tasks_sched.firing import firing
        from django_tasks_sched.models import SchedulerProcess

        return firing().on and SchedulerProcess.objects.alive().exists()

    # -- declaring ----------------------------------------------------------------------------

    def task(self, trigger: str, id: str | None = None, **trigger_args: Any) -> Callable[[F], F]:
        """Decorator: allow-list the function and declare its task.

        Without ``id`` the task's name is the function's ``module:qualname``, which stays put
        as long as the function does. The row is written by ``manage.py synctasks`` (and by
        ``runscheduler`` when it starts), never at import time.
        """

        def decorate(func: F) -> F:
            register(func)
            path = callable_path(func)
            options = dict(trigger_args)
            spec = job_spec(
                path, trigger, options.pop("args", None), options.pop("kwargs", None), options
            )
            declare(from_spec(id or path, DECORATOR, path, spec))
            return func

        return decorate

    # -- helpers ------------------------------------------------------------------------------

    def _get(self, id: str, *, lock: bool = False) -> Task:
        """The task named ``id``; ``lock``: its row locked (call it in a transaction)."""
        from django_tasks_sched.models import Task

        tasks = Task.objects.named(id)
        if lock:
            take_write_lock(Task, router.db_for_write(Task))
            tasks = tasks.select_for_update()
        task = tasks.first()
        if task is None:
            raise JobLookupError(id)
        return task

    def __repr__(self) -> str:
        return "<django_tasks_sched.scheduler: Flask-APScheduler's API over the Task table>"


def prepare_job(id: str, spec: JobSpec, replace_existing: bool) -> tuple[Task, Task | None]:
    """``add_job()`` up to the save: the task built and cleaned, and the one it replaces.

    Call inside a transaction: the existing row is locked until :func:`save_job`.
    """
    from django_tasks_sched.models import Task
    from django_tasks_sched.rawsql import take_write_lock
    from django_tasks_sched.sync import model_default

    try:
        # Before the lookup: PostgreSQL cannot even look up a name holding NUL.
        Task._meta.get_field("name").clean(id, None)
    except ValidationError as exc:
        raise ValidationError({"name": exc.messages}) from None
    # SQLite: the write lock before the read (see take_write_lock); elsewhere the row lock.
    take_write_lock(Task, Task.objects.db)
    previous = Task.objects.select_for_update().named(id).first()
    if previous is not None and not replace_existing:
        raise ConflictingIdError(id)
    if previous is None:
        task = Task(name=id, source=Task.Source.DATABASE)
    else:
        task = copy.deepcopy(previous)  # previous stays as stored, for the caller's checks
    # A replaced job is a new job (as in APScheduler): what is not given is reset.
    for name in DECLARABLE_FIELDS:
        setattr(task, name, spec.fields.get(name, model_default(name)))
    task.active = spec.active is not False
    task.inactive_reason = ""
    task.consecutive_failures = 0
    task.retired_at = None
    task.full_clean(validate_unique=False)
    return task, previous


def save_job(task: Task) -> None:
    """Save a task from :func:`prepare_job`; ``ConflictingIdError`` if its id was taken since."""
    try:
        with transaction.atomic():
            task.save()
    except IntegrityError:
        # Another process added the same id between our read and our insert.
        raise ConflictingIdError(task.name) from None


#: The facade: ``from django_tasks_sched import scheduler``.
scheduler = Scheduler()

__all__ = ["Scheduler", "scheduler"]
