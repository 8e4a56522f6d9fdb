"""From a validated config to an APScheduler 3 trigger, and the preview of its next fires."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from django_tasks_sched.triggers.config import DateConfig, IntervalConfig, parse_config
from django_tasks_sched.triggers.cron import ZonedCronTrigger
from django_tasks_sched.triggers.dates import UTC, default_zone, to_instant

_ONE_MICROSECOND = timedelta(microseconds=1)


def build_trigger(trigger: str, config: Mapping[str, Any]) -> BaseTrigger:
    """The APScheduler trigger for ``trigger`` and ``config``; raises ``TaskConfigError``."""
    parsed = parse_config(trigger, config)
    if isinstance(parsed, DateConfig):
        return DateTrigger(run_date=parsed.run_date, timezone=UTC)
    if isinstance(parsed, IntervalConfig):
        # In UTC with UTC dates: APScheduler then counts real elapsed seconds, so an hourly
        # interval stays 3600 s apart across both daylight-saving changes.
        return IntervalTrigger(
            **parsed.units,
            start_date=parsed.start_date,
            end_date=parsed.end_date,
            timezone=UTC,
            jitter=parsed.jitter,
        )
    return ZonedCronTrigger(
        parsed.walls,
        parsed.timezone,
        start_date=parsed.start_date,
        end_date=parsed.end_date,
        jitter=parsed.jitter,
    )


def next_fire_times(trigger: BaseTrigger, *, count: int, after: datetime) -> list[datetime]:
    """The next ``count`` nominal fire times (no jitter) strictly after ``after``."""
    if after.tzinfo is None or after.utcoffset() is None:
        after = to_instant(after, default_zone())  # USE_TZ = False gives naive "now"
    step = _within_the_calendar(_nominal(trigger))
    times: list[datetime] = []
    fire = step(None, after + _ONE_MICROSECOND)
    while fire is not None and len(times) < count:
        # A date trigger returns its run date even when it has passed.
        if fire > after:
            if times and fire <= times[-1]:
                break  # a trigger that does not move forward would loop for ever
            times.append(fire)
        fire = step(fire, fire + _ONE_MICROSECOND)
    return times


Step = Callable[[datetime | None, datetime], datetime | None]


def _within_the_calendar(step: Step) -> Step:
    """``step``, ending the schedule where Python's calendar ends (the year 9999).

    An accepted schedule can still reach it after enough fires: 100 years apart from 2999,
    the seventieth. The fires before are real; there are simply no more.
    """

    def bounded(previous: datetime | None, now: datetime) -> datetime | None:
        try:
            return step(previous, now)
        except (OverflowError, ValueError):  # "date value out of range", "year 10021 ..."
            return None

    return bounded


def _nominal(trigger: BaseTrigger) -> Step:
    """``get_next_fire_time`` of ``trigger`` with its jitter left out."""
    if isinstance(trigger, ZonedCronTrigger):
        return trigger.nominal_fire_time
    if getattr(trigger, "jitter", None):
        # APScheduler's own triggers draw jitter inside get_next_fire_time; a copy without it
        # leaves the caller's trigger untouched. Zero (not None) suits wrappers that multiply.
        trigger = copy.copy(trigger)
        trigger.jitter = 0
    return trigger.get_next_fire_time
