"""Triggers: ``trigger_config`` to an APScheduler 3 trigger, cron's daylight-saving rule, words.

Modules, one concern each: ``config`` (validate ``trigger_config``), ``crontab`` (five-field
strings), ``cron`` (the zone-aware cron trigger), ``dates`` (ISO dates and local times),
``build`` (config to trigger, fire-time preview) and ``describe`` (the schedule in words).
"""

from __future__ import annotations

from django_tasks_sched.triggers.build import build_trigger, next_fire_times
from django_tasks_sched.triggers.config import TRIGGER_KEYS
from django_tasks_sched.triggers.cron import ZonedCronTrigger
from django_tasks_sched.triggers.describe import describe_schedule

__all__ = [
    "TRIGGER_KEYS",
    "ZonedCronTrigger",
    "build_trigger",
    "describe_schedule",
    "next_fire_times",
]
