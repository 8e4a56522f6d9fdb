"""Tasks declared in code, found by the sync's autodiscovery of each app's ``jobs`` module."""

from __future__ import annotations

from django_tasks_sched import register, scheduler


@scheduler.task("interval", seconds=1)
def heartbeat() -> str:
    return "beat"


@scheduler.task(
    "cron", id="declaring-nightly", hour=3, minute=15, misfire_grace_time=300, name="Nightly"
)
def nightly(day: str = "today") -> str:
    return day


@register
def double(value: int) -> int:
    """Not declared here: a TASKS_SCHED["TASKS"] entry schedules it."""
    return value * 2
