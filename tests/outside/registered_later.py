"""Registers a callable when imported; the tests check that refusal does not import it."""

from __future__ import annotations

from django_tasks_sched import register


@register
def job() -> str:
    return "ran"
