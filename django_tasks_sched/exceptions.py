"""Exceptions raised by the public API."""

from __future__ import annotations


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
