"""Reading and validating ``trigger_config``: every mistake becomes a ``TaskConfigError``.

Each message names the key, says what is wrong and how to fix it, so the admin form can show
it as it is. Nothing is read from settings at import time.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from typing import Any, NoReturn

from apscheduler.triggers.cron import CronTrigger
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from django_tasks_sched import bounds
from django_tasks_sched.exceptions import TaskConfigError
from django_tasks_sched.triggers.crontab import Crontab, CrontabError, parse_crontab
from django_tasks_sched.triggers.dates import default_zone, get_zone, parse_iso, to_instant
from django_tasks_sched.triggers.fields import FieldWallClock

CRON_FIELDS = ("year", "month", "day", "week", "day_of_week", "hour", "minute", "second")
INTERVAL_UNITS = ("weeks", "days", "hours", "minutes", "seconds")

#: The keys each trigger's ``trigger_config`` accepts, in the order the docs list them.
TRIGGER_KEYS: dict[str, tuple[str, ...]] = {
    "date": ("run_date", "timezone"),
    "interval": (*INTERVAL_UNITS, "start_date", "end_date", "timezone", "jitter"),
    "cron": (*CRON_FIELDS, "crontab", "start_date", "end_date", "timezone", "jitter"),
}

_TRIGGER_PHRASES = {
    "date": gettext_lazy("a date trigger"),
    "interval": gettext_lazy("an interval trigger"),
    "cron": gettext_lazy("a cron trigger"),
}
_EXAMPLES = {
    "date": '{"run_date": "2026-05-01T09:00"}',
    "interval": '{"minutes": 15}',
    "cron": '{"crontab": "0 9 * * mon-fri"}',
}
_FIELD_HINTS = {
    "year": gettext_lazy("a year such as 2026 or a range such as '2026-2028'"),
    "month": gettext_lazy("1-12 or jan-dec, e.g. 6 or 'jun-aug'"),
    "day": gettext_lazy("1-31, 'last' or a weekday position such as '1st mon'"),
    "week": gettext_lazy("an ISO week number 1-53"),
    "day_of_week": gettext_lazy("0-6 (0 is Monday) or mon-sun, e.g. 'mon-fri'"),
    "hour": gettext_lazy("0-23, e.g. 9, '9-17' or '*/2'"),
    "minute": gettext_lazy("0-59, e.g. 0, '*/15' or '0,30'"),
    "second": gettext_lazy("0-59, e.g. 0 or '*/10'"),
}
_UNIT_SECONDS = {"weeks": 604_800, "days": 86_400, "hours": 3_600, "minutes": 60, "seconds": 1}
# Leap years included: a schedule on 29 February is valid, if rare.
_MONTH_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


@dataclass(frozen=True)
class DateConfig:
    """A valid date trigger config."""

    run_date: datetime
    timezone: tzinfo


@dataclass(frozen=True)
class IntervalConfig:
    """A valid interval trigger config; ``units`` holds the given units in canonical order."""

    units: dict[str, float]
    start_date: datetime | None
    end_date: datetime | None
    timezone: tzinfo
    jitter: float | None


@dataclass(frozen=True)
class CronConfig:
    """A valid cron trigger config: a parsed crontab or APScheduler's fields, as a wall clock."""

    walls: Crontab | FieldWallClock
    start_date: datetime | None
    end_date: datetime | None
    timezone: tzinfo
    jitter: float | None


TriggerConfig = DateConfig | IntervalConfig | CronConfig


def parse_config(trigger: str, config: Any) -> TriggerConfig:
    """Validate ``config`` for ``trigger``; raises ``TaskConfigError`` naming what is wrong."""
    if trigger not in TRIGGER_KEYS:
        raise TaskConfigError(
            _("unknown trigger %(trigger)s; expected one of %(expected)s")
            % {"trigger": _show(trigger), "expected": ", ".join(TRIGGER_KEYS)},
            field="trigger",
        )
    if not isinstance(config, Mapping):
        _fail(
            _("trigger_config must be a JSON object such as %(example)s, not %(value)s")
            % {"example": _EXAMPLES[trigger], "value": _show(config)}
        )
    # First, so no check below meets a NaN, a NUL or a value nested too deep to print.
    bounds.check_json(config, "trigger_config")
    allowed = TRIGGER_KEYS[trigger]
    for key in config:
        if key not in allowed:
            _fail(
                _("unknown key %(key)s for %(trigger)s; expected one of %(expected)s")
                % {
                    "key": _show(key),
                    "trigger": _TRIGGER_PHRASES[trigger],
                    "expected": ", ".join(allowed),
                }
            )
    # A null value means the key is not set, as it would be for APScheduler's arguments.
    values = {key: value for key, value in config.items() if value is not None}
    zone = _zone(values)
    if trigger == "date":
        if "run_date" not in values:
            _fail(
                _("a date trigger needs run_date, e.g. %(example)s")
                % {"example": _EXAMPLES["date"]}
            )
        return DateConfig(run_date=_date(values, "run_date", zone), timezone=zone)
    start, end = _date_range(values, zone)
    jitter = _number(values, "jitter") if "jitter" in values else None
    if trigger == "interval":
        units = {unit: _number(values, unit) for unit in INTERVAL_UNITS if unit in values}
        if not any(units.values()):
            _fail(
                _(
                    "an interval trigger needs at least one of %(units)s greater than zero, "
                    "e.g. %(example)s"
                )
                % {"units": ", ".join(INTERVAL_UNITS), "example": _EXAMPLES["interval"]}
            )
        # Added up as floats: timedelta() itself overflows past 999999999 days.
        bounds.check_interval(sum(amount * _UNIT_SECONDS[unit] for unit, amount in units.items()))
        return IntervalConfig(units, start, end, zone, jitter)
    walls = _walls(values)
    if isinstance(walls, Crontab) and walls.reboot:
        for key in ("start_date", "end_date", "jitter"):
            if key in values:
                # It fires when scheduling starts, not on a clock these would bound.
                _fail(_("crontab: @reboot takes no %(key)s") % {"key": key})
    return CronConfig(walls, start, end, zone, jitter)


def _fail(message: str) -> NoReturn:
    raise TaskConfigError(message, field="trigger_config")


def _show(value: Any) -> str:
    """A value as the user wrote it in JSON, quoted like the messages quote keys."""
    if isinstance(value, str):
        return repr(value)
    try:
        text = json.dumps(value, default=repr)
    except (TypeError, ValueError, RecursionError):
        text = f"a {type(value).__name__}" if isinstance(value, list | dict) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _zone(values: Mapping[str, Any]) -> tzinfo:
    if "timezone" not in values:
        return default_zone()
    name = values["timezone"]
    if not isinstance(name, str):
        _fail(
            _("timezone: expected an IANA time zone name such as 'Europe/Berlin', got %(value)s")
            % {"value": _show(name)}
        )
    try:
        if not bounds.is_zone_name(name):
            raise ValueError(name)
        return get_zone(name)
    except (ValueError, OSError):
        # OSError: the name of a directory or an unreadable file under the zone database.
        _fail(
            _("timezone: unknown time zone %(value)s; use an IANA name such as 'Europe/Berlin'")
            % {"value": _show(name)}
        )


def _date(values: Mapping[str, Any], key: str, zone: tzinfo) -> datetime:
    value = values[key]
    try:
        if isinstance(value, (datetime, date)):
            parsed: datetime | date = value
        elif isinstance(value, str):
            parsed = parse_iso(value.strip())
        else:
            raise ValueError(value)
    except ValueError:
        _fail(
            _("%(key)s: %(value)s is not an ISO 8601 date/time, e.g. 2026-05-01T09:00")
            % {"key": key, "value": _show(value)}
        )
    bounds.check_year(key, parsed.year)
    try:
        return to_instant(parsed, zone)
    except OverflowError:
        _fail(
            _("%(key)s: %(value)s is outside the range of supported dates")
            % {"key": key, "value": _show(value)}
        )


def _date_range(values: Mapping[str, Any], zone: tzinfo) -> tuple[datetime | None, datetime | None]:
    start = _date(values, "start_date", zone) if "start_date" in values else None
    end = _date(values, "end_date", zone) if "end_date" in values else None
    if start is not None and end is not None and end < start:
        _fail(
            _(
                "end_date (%(end)s) is before start_date (%(start)s); "
                "use a later end_date or remove it"
            )
            % {"end": _show(values["end_date"]), "start": _show(values["start_date"])}
        )
    return start, end


def _number(values: Mapping[str, Any], key: str) -> float:
    value = values[key]
    # bool is an int to Python, but true/false in JSON is never meant as 1/0.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(_("%(key)s: expected a number, got %(value)s") % {"key": key, "value": _show(value)})
    if not math.isfinite(value):
        _fail(
            _("%(key)s: expected a finite number, got %(value)s")
            % {"key": key, "value": _show(value)}
        )
    if key == "jitter" and value > bounds.MAX_JITTER:
        _fail(
            _("jitter: %(value)s is more than %(limit)d seconds (one day)")
            % {"value": _show(value), "limit": bounds.MAX_JITTER}
        )
    if value < 0:
        if key == "jitter":
            _fail(
                _(
                    "jitter: %(value)s is negative; "
                    "use the most seconds to delay each fire by, e.g. 30"
                )
                % {"value": _show(value)}
            )
        _fail(
            _("%(key)s: %(value)s is negative; use zero or more")
            % {"key": key, "value": _show(value)}
        )
    return value


def _walls(values: Mapping[str, Any]) -> Crontab | FieldWallClock:
    """The wall clock of a cron config: its crontab string, or its APScheduler fields."""
    given = [name for name in CRON_FIELDS if name in values]
    if "crontab" in values:
        if given:
            _fail(
                _(
                    "crontab cannot be combined with %(keys)s; "
                    "give either a crontab string or the separate fields"
                )
                % {"keys": ", ".join(given)}
            )
        expression = values["crontab"]
        if not isinstance(expression, str):
            _fail(
                _("crontab: expected a string such as '*/15 * * * *', got %(value)s")
                % {"value": _show(expression)}
            )
        bounds.check_length("crontab", expression, bounds.MAX_CRONTAB)
        try:
            return parse_crontab(expression)
        except CrontabError as exc:
            _fail(str(exc))
    if not given:
        _fail(
            _(
                "a cron trigger needs a crontab string or at least one of the fields %(fields)s, "
                "e.g. %(example)s"
            )
            % {"fields": ", ".join(CRON_FIELDS), "example": _EXAMPLES["cron"]}
        )
    fields = {name: _cron_field(name, values[name]) for name in given}
    walls = FieldWallClock(fields)
    _check_reachable(walls, fields)
    return walls


def _cron_field(name: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        _fail(
            _("%(key)s: expected a number or a cron expression string, got %(value)s; use %(hint)s")
            % {"key": name, "value": _show(value), "hint": _FIELD_HINTS[name]}
        )
    if isinstance(value, int) and value < 0:
        _fail(
            _("%(key)s: %(value)s is negative; use %(hint)s")
            % {"key": name, "value": value, "hint": _FIELD_HINTS[name]}
        )
    text = str(value).strip()
    bounds.check_length(name, text, bounds.MAX_CRON_FIELD)
    if name == "year":
        bounds.check_cron_years(text)
    try:
        CronTrigger.FIELDS_MAP[name](name, text)
    except ValueError as exc:
        _fail(
            _("%(key)s: %(error)s; use %(hint)s")
            % {"key": name, "error": exc, "hint": _FIELD_HINTS[name]}
        )
    return text


def _check_reachable(walls: FieldWallClock, fields: Mapping[str, str]) -> None:
    """Refuse fields that can never meet (30 February, week 53 of June ...)."""
    days, months = walls.values("day"), walls.values("month")
    if (
        days is not None
        and months is not None
        and not any(day <= _MONTH_DAYS[month] for month in months for day in days)
    ):
        _fail(
            _("day %(day)s never occurs in month %(month)s; choose a day that the months have")
            % {"day": _show(fields.get("day", "*")), "month": _show(fields.get("month", "*"))}
        )
    if walls.first_match() is None:
        given = ", ".join(f"{key}={_show(value)}" for key, value in fields.items())
        _fail(
            _("the fields %(fields)s never match together; check day, week, month and day_of_week")
            % {"fields": given}
        )
