"""Five-field crontab strings, read as cron and croniter read them, matched on wall-clock time.

Not APScheduler's ``CronTrigger.from_crontab``: that reads day-of-week 0 as Monday and rejects
wrapping ranges such as ``sat-sun``. Each field becomes a bit mask, so a parsed crontab is a few
integers and finding the next matching wall time is a handful of bit operations.
"""

from __future__ import annotations

import calendar
import functools
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils.translation import gettext as _

#: The aliases cron understands, and the five fields each stands for.
ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    #: First number the names count from (jan = 1, sun = 0).
    names_start: int = 0


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day-of-month", 1, 31),
    _Field("month", 1, 12, MONTH_NAMES, 1),
    # 7 is accepted as a second Sunday and folded onto 0 once the field is expanded.
    _Field("day-of-week", 0, 7, WEEKDAY_NAMES, 0),
)
_ITEM = re.compile(
    r"^(?:(?P<star>\*)|(?P<first>[0-9a-z]+)(?:-(?P<last>[0-9a-z]+))?)(?:/(?P<step>\d+))?$",
    re.IGNORECASE,
)
# Quartz/croniter extensions (last day, nearest weekday, nth weekday, "no value").
_OTHER_DIALECTS = re.compile(r"^(?:\d*[lw]|lw|\?|.*#.*)$", re.IGNORECASE)
# Leap years give February 29 days; only a schedule on 29 February waits years for it.
_MAX_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
# Every combination of month, day and weekday recurs within 28 years (more across 2100).
_SEARCH_YEARS = 60
_ONE_MINUTE = timedelta(minutes=1)


class CrontabError(ValueError):
    """A crontab string that cannot be read; the message says where and how to fix it."""


@dataclass(frozen=True, slots=True)
class Crontab:
    """A parsed crontab: one bit mask per field, plus what cron's special rules need to know."""

    expression: str
    minutes: int
    hours: int
    days: int
    months: int
    #: Bit 0 is Sunday, as in cron.
    weekdays: int
    #: Both day fields restricted (neither starts with ``*``): a day matching either fires.
    day_or: bool
    #: Minute and hour both fixed (neither starts with ``*``): cron's wall-clock DST rule.
    wall_clock: bool

    @property
    def reboot(self) -> bool:
        """``@reboot``: fires at each start of scheduling, never on the clock."""
        return self.expression == REBOOT.expression

    def next_match(self, wall: datetime) -> datetime | None:
        """The first wall time at or after ``wall`` (naive) that the crontab matches."""
        if self.reboot:
            return None
        if wall.second or wall.microsecond:
            wall = wall.replace(second=0, microsecond=0) + _ONE_MINUTE
        year, month, day, hour, minute = wall.year, wall.month, wall.day, wall.hour, wall.minute
        last_year = year + _SEARCH_YEARS
        while year <= last_year:
            next_month = _next_bit(self.months, month)
            if next_month is None:
                year, month, day, hour, minute = year + 1, 1, 1, 0, 0
                continue
            if next_month != month:
                month, day, hour, minute = next_month, 1, 0, 0
            next_day = self._next_day(year, month, day)
            if next_day is None:
                year, month = (year + 1, 1) if month == 12 else (year, month + 1)
                day, hour, minute = 1, 0, 0
                continue
            if next_day != day:
                day, hour, minute = next_day, 0, 0
            next_hour = _next_bit(self.hours, hour)
            while next_hour is not None:
                if next_hour != hour:
                    hour, minute = next_hour, 0
                next_minute = _next_bit(self.minutes, minute)
                if next_minute is not None:
                    return datetime(year, month, day, hour, next_minute)
                next_hour = _next_bit(self.hours, hour + 1)
            # Nothing left today: continue with the next day.
            nxt = datetime(year, month, day) + timedelta(days=1)
            year, month, day, hour, minute = nxt.year, nxt.month, nxt.day, 0, 0
        return None

    def _next_day(self, year: int, month: int, day: int) -> int | None:
        """The first day of this month from ``day`` on that the day fields accept."""
        days_in_month = calendar.monthrange(year, month)[1]
        # Weekday of the 1st in cron's numbering (Sunday = 0); Python's Monday is 0.
        first_weekday = (calendar.weekday(year, month, 1) + 1) % 7
        for candidate in range(day, days_in_month + 1):
            by_date = self.days >> candidate & 1
            by_weekday = self.weekdays >> ((first_weekday + candidate - 1) % 7) & 1
            if (by_date or by_weekday) if self.day_or else (by_date and by_weekday):
                return candidate
        return None

    def field_values(self) -> list[list[int]]:
        """The values of each field, in order: minute, hour, day, month, day-of-week."""
        masks = (self.minutes, self.hours, self.days, self.months, self.weekdays)
        return [_bits(mask) for mask in masks]


#: ``@reboot``: no minute matches; each start of scheduling fires it once
#: (``service.reboot``). Its masks are empty, so every walk of the clock ends at once.
REBOOT = Crontab("@reboot", 0, 0, 0, 0, 0, day_or=False, wall_clock=False)


def _next_bit(mask: int, start: int) -> int | None:
    """The smallest set bit of ``mask`` at position ``start`` or above."""
    rest = mask >> start
    if not rest:
        return None
    return start + (rest & -rest).bit_length() - 1


def _bits(mask: int) -> list[int]:
    return [i for i in range(mask.bit_length()) if mask >> i & 1]


@functools.lru_cache(maxsize=1024)
def parse_crontab(expression: str) -> Crontab:
    """Parse a five-field crontab string or an ``@alias``; raises :class:`CrontabError`."""
    normalized = text = " ".join(expression.split())
    if not text:
        raise CrontabError(_("crontab: empty; expected five fields such as '*/15 * * * *'"))
    if text.startswith("@"):
        alias = text.lower()
        if alias == REBOOT.expression:
            return REBOOT
        if alias not in ALIASES:
            raise CrontabError(
                _("crontab: unknown alias %(alias)s; expected one of %(aliases)s")
                % {"alias": repr(text), "aliases": ", ".join([*ALIASES, REBOOT.expression])}
            )
        text = ALIASES[alias]
    parts = text.split(" ")
    if len(parts) != len(_FIELDS):
        message = _(
            "crontab: expected 5 fields (minute hour day-of-month month day-of-week), "
            "got %(count)s in %(expression)s"
        ) % {"count": len(parts), "expression": repr(expression)}
        if len(parts) == 6:
            message += _("; for seconds use the separate cron keys instead")
        raise CrontabError(message)
    minutes, hours, days, months, weekdays = (
        _parse_field(part, field, expression) for part, field in zip(parts, _FIELDS, strict=True)
    )
    # Day-of-week 7 is Sunday again; fold it onto bit 0.
    weekdays = (weekdays | weekdays >> 7) & 0b1111111
    # cron's rule: the day fields are OR-ed only when both are restricted, and a field counts
    # as unrestricted when it starts with "*" (so "*/2" is AND-ed, as in Vixie cron).
    day_or = not (parts[2].startswith("*") or parts[4].startswith("*"))
    if not day_or:
        _check_reachable(days, months, expression)
    return Crontab(
        expression=normalized,
        minutes=minutes,
        hours=hours,
        days=days,
        months=months,
        weekdays=weekdays,
        day_or=day_or,
        wall_clock=not (parts[0].startswith("*") or parts[1].startswith("*")),
    )


def _parse_field(text: str, field: _Field, expression: str) -> int:
    """One field (a comma-separated list of items) as a bit mask."""
    mask = 0
    for item in text.split(","):
        match = _ITEM.match(item)
        if not match:
            raise CrontabError(
                _(
                    "crontab: cannot read %(item)s in the %(field)s field of %(expression)s; "
                    "use a number, a range such as 1-5, a step such as */15, or a list of them"
                )
                % {"item": repr(item), "field": field.name, "expression": repr(expression)}
                + _unsupported_hint(item)
            )
        step = int(match["step"]) if match["step"] else 1
        if step == 0:
            raise CrontabError(
                _("crontab: step 0 in the %(field)s field of %(expression)s; use 1 or more")
                % {"field": field.name, "expression": repr(expression)}
            )
        # "*" spans 0-6 for day-of-week: 7 only names Sunday, it is not an eighth day.
        high = 6 if field.names == WEEKDAY_NAMES else field.high
        if match["star"]:
            values = list(range(field.low, high + 1, step))
        else:
            first = _value(match["first"], field, expression)
            if match["last"] is not None:
                last = _value(match["last"], field, expression)
            elif match["step"]:
                last = high  # "10/20" is croniter's "10-59/20"
            else:
                last = first
            values = _expand_range(first, last, step, field, high)
        for value in values:
            mask |= 1 << value
    return mask


def _expand_range(first: int, last: int, step: int, field: _Field, high: int) -> list[int]:
    if first <= last:
        return list(range(first, last + 1, step))
    # A range that wraps (croniter's "sat-sun", "22-2", "nov-feb"): run to the end of the
    # field, then on from its start, keeping the step's rhythm across the wrap.
    if field.names == WEEKDAY_NAMES:
        first, last = first % 7, last % 7
        if first <= last:
            return list(range(first, last + 1, step))
    cycle = list(range(first, high + 1)) + list(range(field.low, last + 1))
    return cycle[::step]


def _value(token: str, field: _Field, expression: str) -> int:
    if token.isdigit():
        value = int(token)
        if not field.low <= value <= field.high:
            raise CrontabError(
                _(
                    "crontab: %(field)s value %(value)s is out of range %(low)s-%(high)s "
                    "in %(expression)s"
                )
                % {
                    "field": field.name,
                    "value": value,
                    "low": field.low,
                    "high": field.high,
                    "expression": repr(expression),
                }
            )
        return value
    if token.lower() in field.names:
        return field.names.index(token.lower()) + field.names_start
    if field.names:
        message = _(
            "crontab: unknown %(field)s name %(token)s in %(expression)s; "
            "use %(names)s or %(low)s-%(high)s"
        )
    else:
        message = _(
            "crontab: %(token)s is not a number in the %(field)s field of %(expression)s; "
            "use %(low)s-%(high)s"
        )
    raise CrontabError(
        message
        % {
            "field": field.name,
            "token": repr(token),
            "expression": repr(expression),
            "names": ", ".join(field.names),
            "low": field.low,
            "high": field.high,
        }
        + _unsupported_hint(token)
    )


def _unsupported_hint(item: str) -> str:
    """Point users of other cron dialects at the equivalent cron field keys."""
    if _OTHER_DIALECTS.match(item):
        return _(
            " (L, W, # and ? are not part of the crontab dialect; the separate cron keys "
            "offer day: 'last' and day: '1st mon')"
        )
    return ""


def _check_reachable(days: int, months: int, expression: str) -> None:
    """Refuse day/month pairs that never occur, which would otherwise search for years."""
    if not any(
        months >> month & 1 and days & ((1 << (_MAX_DAYS[month] + 1)) - 1) for month in range(1, 13)
    ):
        raise CrontabError(
            _("crontab: %(expression)s never fires: none of its months has any of its days")
            % {"expression": repr(expression)}
        )
