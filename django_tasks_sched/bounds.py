"""What a Task row may hold: every bound in one place, for the form, the API and the scheduler.

A value outside these bounds is refused by ``full_clean()`` with a field error. They are chosen
so that everything accepted can also be computed with (no date arithmetic overflows before
the year 9999), stored on all three databases (PostgreSQL's ``jsonb`` refuses NUL characters
and NaN, SQLite's ``JSON_VALID`` refuses Infinity) and scheduled without starving other tasks.
The scheduler still contains a row that reached the table without validation (raw SQL):
see :mod:`django_tasks_sched.service.guard`.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, NoReturn

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.deconstruct import deconstructible
from django.utils.translation import gettext as _

from django_tasks_sched.exceptions import TaskConfigError

#: The shortest interval. Shorter ones would have a scheduler do nothing but fire them.
MIN_INTERVAL = timedelta(seconds=1)
#: The longest interval: 100 years.
MAX_INTERVAL = timedelta(days=36_500)
#: The most jitter, in seconds: one day.
MAX_JITTER = 86_400
#: Dates (``run_date``, ``start_date``, ``end_date``) and cron ``year`` values lie in these
#: years; far enough from 9999 that an interval or a day of jitter added never overflows.
MIN_YEAR, MAX_YEAR = 1970, 2999
#: Longest time zone name (the longest IANA name has 32 characters).
MAX_ZONE_NAME = 64
#: Longest crontab string, and longest text of one APScheduler cron field.
MAX_CRONTAB = 200
MAX_CRON_FIELD = 100
#: The most seconds a duration option holds (timeout, misfire grace, retry delays): ten years.
MAX_DURATION = 10 * 365 * 86_400
#: The most a count option holds (max_instances, retries, the failure limit, runs kept).
MAX_COUNT = 1_000_000
#: django.tasks' priority range (TASK_MIN_PRIORITY, TASK_MAX_PRIORITY).
MIN_PRIORITY, MAX_PRIORITY = -100, 100
#: JSON values (args, kwargs, trigger_config): nesting levels and encoded size.
MAX_JSON_DEPTH = 20  # MariaDB's JSON_VALID refuses a little over 30
MAX_JSON_BYTES = 64 * 1024
#: Integers in JSON values: the 64-bit range every database and JSON library keeps exactly.
MAX_JSON_INT = 2**63 - 1

_STEP = re.compile(r"/\s*\d+")
_NUMBER = re.compile(r"\d+")


def _fail(field: str, message: str) -> NoReturn:
    raise TaskConfigError(message, field=field)


def check_json(
    value: Any, field: str, *, max_bytes: int = MAX_JSON_BYTES, size: int | None = None
) -> None:
    """Refuse what JSON cannot hold everywhere: NaN, NUL characters, deep or huge values.

    Walks the value without recursion, so a value nested a hundred thousand levels deep is
    refused, not a ``RecursionError``.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            _fail(
                field,
                _("%(field)s is nested more than %(limit)d levels deep")
                % {"field": field, "limit": MAX_JSON_DEPTH},
            )
        if isinstance(item, str):
            _check_text(item, field)
        elif isinstance(item, bool) or item is None:
            pass
        elif isinstance(item, int):
            if not -MAX_JSON_INT - 1 <= item <= MAX_JSON_INT:
                _fail(
                    field,
                    _("%(field)s holds an integer outside the 64-bit range; pass it as a string")
                    % {"field": field},
                )
        elif isinstance(item, float):
            if not math.isfinite(item):
                _fail(
                    field,
                    _("%(field)s holds %(value)s, which JSON cannot store; use a finite number")
                    % {"field": field, "value": item},
                )
            if abs(item) > MAX_JSON_INT:
                # PostgreSQL's jsonb keeps it as an exact number, read back as a huge integer.
                _fail(
                    field,
                    _("%(field)s holds %(value)s, beyond the 64-bit range; pass it as a string")
                    % {"field": field, "value": item},
                )
        elif isinstance(item, Mapping):
            for key, child in item.items():
                if not isinstance(key, str):
                    _fail(field, _("%(field)s has a key that is not a string") % {"field": field})
                _check_text(key, field)
                stack.append((child, depth + 1))
        elif isinstance(item, list | tuple):
            stack.extend((child, depth + 1) for child in item)
        else:
            _fail(
                field,
                _("%(field)s holds a %(type)s, which is not a JSON value")
                % {"field": field, "type": type(item).__name__},
            )
    if size is None:  # the caller may have encoded it already
        size = len(json.dumps(value, ensure_ascii=False).encode())
    if size > max_bytes:
        _fail(
            field,
            _("%(field)s is %(size)d bytes long as JSON; the most is %(limit)d")
            % {"field": field, "size": size, "limit": max_bytes},
        )


def check_progress(value: Any) -> float:
    """A run's progress as a float from 0 to 1; anything else is refused."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        _fail("progress", _("progress must be a number from 0 to 1"))
    progress = float(value)
    if not 0.0 <= progress <= 1.0:  # NaN fails this too
        _fail("progress", _("progress must be from 0 to 1, not %(value)r") % {"value": value})
    return progress


def _check_text(text: str, field: str) -> None:
    if "\x00" in text:
        _fail(field, _("%(field)s holds a NUL character (\\u0000)") % {"field": field})
    if not is_storable_text(text):
        # A lone UTF-16 surrogate (JSON's "\\ud800") has no UTF-8 form: no database stores it.
        message = _("%(field)s holds a lone surrogate character (\\ud800-\\udfff)")
        _fail(field, message % {"field": field})


def is_storable_text(text: str) -> bool:
    """Whether ``text`` has a UTF-8 form (no lone surrogates), as every database needs."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@deconstructible
class StorableTextValidator:
    """Refuses text with a lone surrogate, beside Django's NUL check (a crash on save else)."""

    code = "surrogate"

    def __call__(self, value: Any) -> None:
        if isinstance(value, str) and not is_storable_text(value):
            raise ValidationError(
                _("Lone surrogate characters (\\ud800-\\udfff) are not allowed."),
                code=self.code,
            )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StorableTextValidator)

    def __hash__(self) -> int:
        return hash(self.code)


def check_interval(seconds: float) -> None:
    """An interval (in seconds) between :data:`MIN_INTERVAL` and :data:`MAX_INTERVAL`."""
    if seconds < MIN_INTERVAL.total_seconds():
        _fail(
            "trigger_config",
            _("the interval is %(seconds)s seconds; the shortest is 1 second")
            % {"seconds": f"{seconds:g}"},
        )
    if seconds > MAX_INTERVAL.total_seconds():
        _fail(
            "trigger_config",
            _("the interval is too long; the longest is %(days)d days (100 years)")
            % {"days": MAX_INTERVAL.days},
        )


def check_year(key: str, year: int) -> None:
    """A year between :data:`MIN_YEAR` and :data:`MAX_YEAR`."""
    if not MIN_YEAR <= year <= MAX_YEAR:
        _fail(
            "trigger_config",
            _("%(key)s: the year %(year)d is outside %(min)d-%(max)d")
            % {"key": key, "year": year, "min": MIN_YEAR, "max": MAX_YEAR},
        )


def check_cron_years(text: str) -> None:
    """Every year named in a cron ``year`` expression (steps aside) lies in the bounds."""
    for number in _NUMBER.findall(_STEP.sub("", text)):
        check_year("year", int(number))


def check_length(key: str, text: str, limit: int) -> None:
    """``text`` has at most ``limit`` characters."""
    if len(text) > limit:
        _fail(
            "trigger_config",
            _("%(key)s is %(length)d characters long; the most is %(limit)d")
            % {"key": key, "length": len(text), "limit": limit},
        )


@functools.cache
def zone_names() -> frozenset[str]:
    """Every IANA time zone name this machine knows (read once; the list is a few hundred)."""
    import zoneinfo

    return frozenset(zoneinfo.available_timezones())


def is_zone_name(name: str) -> bool:
    """Whether ``name`` is a time zone (not an area such as "America", not a file path)."""
    return len(name) <= MAX_ZONE_NAME and name in zone_names()


class BoundedJSONField(models.JSONField):
    """A JSONField whose values stay within :func:`check_json`'s bounds.

    Django's own ``validate()`` and ``from_db_value()`` recurse once per nesting level, so a
    deep value (typed in, or forced into the table by raw SQL) would raise ``RecursionError``.
    """

    def validate(self, value: Any, model_instance: Any) -> None:
        try:
            check_json(value, self.name)
        except TaskConfigError as exc:
            raise ValidationError(exc.message, code="invalid") from None
        super().validate(value, model_instance)

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        try:
            return super().from_db_value(value, expression, connection)
        except RecursionError:
            # The text as stored: validation then refuses it like any other wrong type.
            return value
