"""Exceptions raised by the public API."""

from __future__ import annotations

import apscheduler.jobstores.base as _apscheduler_errors


class TaskRunFailed(Exception):
    """``TaskRun.result()`` on a run that FAILED, TIMED_OUT or was INTERRUPTED."""


class TaskRunNotFinished(Exception):
    """``TaskRun.result()`` on a run that has not reached a final status yet."""


class TaskConfigError(ValueError):
    """A task's trigger, trigger_config or callable cannot be used.

    ``field`` names the Task field at fault, so ``Task.clean()`` can key the message by it.
    """

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class JobArgumentError(TypeError):
    """An ``add_job()``-style argument of the wrong kind; ``field`` names it (for the REST API)."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


# The facade's errors are APScheduler's own, subclassed: code written against APScheduler or
# Flask-APScheduler that catches ``apscheduler.jobstores.base.JobLookupError`` keeps working.


class ConflictingIdError(_apscheduler_errors.ConflictingIdError):
    """``scheduler.add_job()`` with the name of an existing task and ``replace_existing=False``."""

    def __init__(self, job_id: str) -> None:
        super().__init__(job_id)
        self.job_id = job_id


class JobLookupError(_apscheduler_errors.JobLookupError):
    """A ``scheduler`` method named a task that does not exist."""

    def __init__(self, job_id: str) -> None:
        super().__init__(job_id)
        self.job_id = job_id


class DeclarationError(ValueError):
    """A task declared in code, settings or ``pyproject.toml`` cannot be used.

    ``where`` names the declaration (``TASKS_SCHED['TASKS'][2]``, a pyproject table, a
    decorated function), so the message can point at the line to fix.
    """

    def __init__(self, message: str, *, where: str, name: str | None = None) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.name = name
        self.message = message
