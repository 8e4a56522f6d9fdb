"""Rows for tests: a valid task in one call, with only what the test cares about spelled out."""

from __future__ import annotations

from typing import Any

from django_tasks_sched.models import Task


def make_task(name: str = "job", **fields: Any) -> Task:
    """A saved task: ``noop`` every 5 minutes unless ``fields`` say otherwise."""
    fields.setdefault("func", "tests.testapp.jobs:noop")
    fields.setdefault("trigger", Task.Trigger.INTERVAL)
    fields.setdefault("trigger_config", {"minutes": 5})
    return Task.objects.create(name=name, **fields)
