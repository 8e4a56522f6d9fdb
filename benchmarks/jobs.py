"""The callables the benchmarks schedule (allowed by ``TASKS_SCHED["ALLOWED_MODULES"]``)."""

from __future__ import annotations


def noop() -> None:
    """Do nothing: the benchmarks measure the scheduler, not the task."""
