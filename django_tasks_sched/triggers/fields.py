"""APScheduler's cron fields (``hour``, ``day_of_week``, ``last`` ...) as a wall clock.

An APScheduler ``CronTrigger`` built in UTC and fed naive wall times enumerates them exactly (UTC
never skips or repeats), with APScheduler's meaning of every field: ``day`` and ``day_of_week``
both must match, 0 is Monday, and ``last``, ``1st mon``, ``week`` and ``year`` work as documented.
"""

from __future__ import annotations

import threading
import weakref
from datetime import datetime, timedelta

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.cron.expressions import (
    AllExpression,
    MonthRangeExpression,
    RangeExpression,
    WeekdayRangeExpression,
)
from apscheduler.triggers.cron.fields import MAX_VALUES, MIN_VALUES
from apscheduler.util import datetime_ceil

from django_tasks_sched.triggers.dates import UTC

#: How far ahead a search goes before the schedule counts as finished. APScheduler alone would
#: search to the year 9999 (seconds of CPU) for fields that can never meet, e.g. week 53 of June.
SEARCH_LIMIT = timedelta(days=150 * 366)

_NUMERIC_EXPRESSIONS = (
    AllExpression,
    RangeExpression,
    MonthRangeExpression,
    WeekdayRangeExpression,
)


class _WallSearch(CronTrigger):
    """A UTC ``CronTrigger`` with a bounded search, held in a weak-value cache."""

    __slots__ = ("__weakref__", "first")

    #: :meth:`FieldWallClock.first_match`, once searched (unset until then).
    first: datetime | None

    def next_wall(self, wall: datetime, limit: datetime) -> datetime | None:
        """The first time at or after ``wall`` (aware UTC) that the fields match, up to ``limit``.

        The loop of APScheduler 3.11's ``CronTrigger.get_next_fire_time`` (same field
        semantics, same private helpers), with the search cut off at ``limit``.
        """
        next_date = datetime_ceil(wall)
        fieldnum = 0
        while 0 <= fieldnum < len(self.fields):
            field = self.fields[fieldnum]
            curr_value = field.get_value(next_date)
            next_value = field.get_next_value(next_date)
            if next_value is None:
                next_date, fieldnum = self._increment_field_value(next_date, fieldnum - 1)
            elif next_value > curr_value:
                if field.REAL:
                    next_date = self._set_field_value(next_date, fieldnum, next_value)
                    fieldnum += 1
                else:
                    next_date, fieldnum = self._increment_field_value(next_date, fieldnum)
            else:
                fieldnum += 1
            if next_date > limit:
                return None
        return next_date if fieldnum >= 0 else None


# Field-form schedules share their APScheduler trigger (~2.4 KB each): a scheduler process
# holds one trigger per task, and most tasks repeat a few schedules.
_shared: weakref.WeakValueDictionary[tuple[tuple[str, str], ...], _WallSearch] = (
    weakref.WeakValueDictionary()
)
_shared_lock = threading.Lock()


class FieldWallClock:
    """Enumerates the local times that APScheduler cron fields match."""

    __slots__ = ("search", "wall_clock")

    def __init__(self, fields: dict[str, str]) -> None:
        key = tuple(sorted(fields.items()))
        with _shared_lock:
            search = _shared.get(key)
            if search is None:
                search = _shared[key] = _WallSearch(**fields, timezone=UTC)
        self.search = search
        # Unspecified fields count as APScheduler fills them in: those below the smallest given
        # field become their minimum (fixed), those above it "*". The field's text says which.
        completed = self.fields()
        minute, hour = completed["minute"], completed["hour"]
        self.wall_clock = not (minute.startswith("*") or hour.startswith("*"))

    def next_match(self, wall: datetime) -> datetime | None:
        """The first wall time at or after ``wall`` (naive) that the fields match."""
        start = wall.replace(tzinfo=UTC)
        match = self.search.next_wall(start, start + SEARCH_LIMIT)
        return None if match is None else match.replace(tzinfo=None)

    def fields(self) -> dict[str, str]:
        """Every field as APScheduler completed it (unspecified ones filled in), for display."""
        return {f.name: str(f) for f in self.search.fields}

    def values(self, name: str) -> list[int] | None:
        """The numbers field ``name`` allows, or None if it uses ``last``, ``1st mon`` etc."""
        ranges = self._ranges(name)
        if ranges is None:
            return None
        allowed: set[int] = set()
        for numbers in ranges:
            allowed.update(numbers)
        return sorted(allowed)

    def _ranges(self, name: str) -> list[range] | None:
        field = next(f for f in self.search.fields if f.name == name)
        low, high = MIN_VALUES[name], MAX_VALUES[name]
        ranges = []
        for expr in field.expressions:
            if type(expr) not in _NUMERIC_EXPRESSIONS:
                return None
            first = getattr(expr, "first", low)
            last = getattr(expr, "last", None)
            ranges.append(range(first, (high if last is None else last) + 1, expr.step or 1))
        return ranges

    def first_match(self) -> datetime | None:
        """The first match from the start of the earliest allowed year (to find dead fields).

        Searched once per schedule: every task of a schedule shares its search, and each
        trigger built (a task loaded, saved or checked) asks. The earliest year is read off the
        field's ranges: ``year`` allows 8,000 numbers, and listing them was most of a
        field-form trigger's build.
        """
        search = self.search
        try:
            return search.first
        except AttributeError:  # not yet searched
            pass
        ranges = self._ranges("year") or []
        earliest = min((numbers.start for numbers in ranges if numbers), default=2000)
        start = datetime(max(earliest, MIN_VALUES["year"]), 1, 1, tzinfo=UTC)
        match = search.first = search.next_wall(start, start + SEARCH_LIMIT)
        return match

    def __str__(self) -> str:
        return ", ".join(f"{f.name}='{f}'" for f in self.search.fields if not f.is_default)
