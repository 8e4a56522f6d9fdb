"""Rows for tests: a valid task in one call, with only what the test cares about spelled out;
and an empty, paused job store for tests of the passes that fill one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import django

from django_tasks_sched.models import Task
from django_tasks_sched.service.executor import FiringExecutor
from django_tasks_sched.service.jobs import Jobs

#: ADMINS with one address (Django 6 takes plain addresses; (name, address) pairs are deprecated).
OPS: list[Any] = ["ops@example.com"] if django.VERSION >= (6,) else [("Ops", "ops@example.com")]


def make_task(name: str = "job", **fields: Any) -> Task:
    """A saved task: ``noop`` every 5 minutes unless ``fields`` say otherwise."""
    fields.setdefault("func", "tests.testapp.jobs:noop")
    fields.setdefault("trigger", Task.Trigger.INTERVAL)
    fields.setdefault("trigger_config", {"minutes": 5})
    return Task.objects.create(name=name, **fields)


@contextmanager
def paused_jobs() -> Iterator[Jobs]:
    """A job store whose jobs never fire: what the reconciler's passes put in it is read back."""
    executor = FiringExecutor(
        "scheduler:test", 1, next_fire_time=lambda task_id: None, coalesces=lambda task_id: True
    )
    jobs = Jobs(executor)
    jobs.start_paused()
    try:
        yield jobs
    finally:
        jobs.shutdown()
        # APScheduler's shutdown leaves the executor's threads (dispatcher, log writer,
        # hand-off) running, as the service closes it itself: left, they outlive the test.
        executor.close()
