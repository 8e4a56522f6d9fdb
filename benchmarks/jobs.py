"""The callables the benchmarks schedule (allowed by ``TASKS_SCHED["ALLOWED_MODULES"]``)."""

from __future__ import annotations


def noop() -> None:
    """Do nothing: the benchmarks measure the scheduler, not the task."""


def trace(path: str) -> None:
    """Append the current run's id to ``path``: one line per real execution (duplicates show)."""
    from django_tasks_sched import current_run

    run = current_run()
    with open(path, "a") as out:  # O_APPEND: whole short lines, however many processes write
        out.write(f"{run.pk if run else '?'}\n")
