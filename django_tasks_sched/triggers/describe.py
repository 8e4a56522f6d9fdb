"""A schedule in words, for the admin and ``Task.describe_schedule()``.

Cron schedules go through cron-descriptor, but only as an expression it reads the way this
package fires it: crontab fields are rewritten from their parsed values (day-of-week 7, wrapping
ranges), and APScheduler's fields are translated (0 is Monday there, Sunday in cron) or, where no
crontab can say the same thing, listed as they are.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cron_descriptor import ExpressionDescriptor, Options
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from django_tasks_sched.exceptions import TaskConfigError
from django_tasks_sched.triggers.config import (
    DateConfig,
    IntervalConfig,
    TriggerConfig,
    parse_config,
)
from django_tasks_sched.triggers.crontab import ALIASES, Crontab
from django_tasks_sched.triggers.dates import format_local, zone_name
from django_tasks_sched.triggers.fields import FieldWallClock

logger = logging.getLogger(__name__)

_STAR_STEP = re.compile(r"^\*/\d+$")
_POSITIONS = {"1st": "#1", "2nd": "#2", "3rd": "#3", "4th": "#4", "5th": "#5", "last": "L"}
_APS_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def describe_schedule(trigger: str, config: Mapping[str, Any]) -> str:
    """The schedule in words, e.g. "At 09:00, Monday through Friday (Europe/Berlin)"."""
    try:
        parsed = parse_config(trigger, config)
    except TaskConfigError as exc:
        return _("Invalid schedule: %(message)s") % {"message": exc.message}
    try:
        return _describe(parsed)
    except Exception:
        # Shown on admin pages: a description must never take a page down.
        logger.exception("Could not describe the %s schedule %r", trigger, config)
        return _("Schedule: %(trigger)s %(config)s") % {"trigger": trigger, "config": dict(config)}


def _describe(parsed: TriggerConfig) -> str:
    zone = zone_name(parsed.timezone)
    if isinstance(parsed, DateConfig):
        when = format_local(parsed.run_date, parsed.timezone)
        return _("Once, at %(when)s (%(zone)s)") % {"when": when, "zone": zone}
    if isinstance(parsed, IntervalConfig):
        text = _every(parsed.units)
        # An interval counts real seconds; its zone matters only for reading its dates.
        show_zone = parsed.start_date is not None or parsed.end_date is not None
    else:
        walls = parsed.walls
        text = _crontab_words(walls) if isinstance(walls, Crontab) else _field_words(walls)
        show_zone = not (isinstance(walls, Crontab) and walls.reboot)
    if parsed.start_date is not None:
        text += _(", from %(date)s") % {"date": format_local(parsed.start_date, parsed.timezone)}
    if parsed.end_date is not None:
        text += _(", until %(date)s") % {"date": format_local(parsed.end_date, parsed.timezone)}
    if show_zone:
        text += f" ({zone})"
    if parsed.jitter:
        text += _("; each fire up to %(duration)s late (jitter)") % {
            "duration": _amount("seconds", parsed.jitter)
        }
    return text


# -- interval ---------------------------------------------------------------------------------


def _every(units: Mapping[str, float]) -> str:
    given = [(unit, value) for unit, value in units.items() if value]
    if len(given) == 1 and given[0][1] == 1:
        return {
            "weeks": _("Every week"),
            "days": _("Every day"),
            "hours": _("Every hour"),
            "minutes": _("Every minute"),
            "seconds": _("Every second"),
        }[given[0][0]]
    parts = [_amount(unit, value) for unit, value in given]
    if len(parts) > 1:
        listed = _("%(first)s and %(last)s") % {"first": ", ".join(parts[:-1]), "last": parts[-1]}
    else:
        listed = parts[0]
    return _("Every %(interval)s") % {"interval": listed}


def _amount(unit: str, value: float) -> str:
    """``value`` of ``unit`` in words, e.g. "15 minutes" or "1.5 hours"."""
    number = int(value) if float(value).is_integer() else value
    # Plural rules need a whole number; a fraction reads as a plural in most languages.
    count = number if isinstance(number, int) else 2
    templates = {
        "weeks": ngettext("%(count)s week", "%(count)s weeks", count),
        "days": ngettext("%(count)s day", "%(count)s days", count),
        "hours": ngettext("%(count)s hour", "%(count)s hours", count),
        "minutes": ngettext("%(count)s minute", "%(count)s minutes", count),
        "seconds": ngettext("%(count)s second", "%(count)s seconds", count),
    }
    return templates[unit] % {"count": f"{number:g}" if isinstance(number, float) else number}


# -- cron -------------------------------------------------------------------------------------


def _crontab_words(crontab: Crontab) -> str:
    """A crontab string in words, rewritten so cron-descriptor reads it as we fire it."""
    if crontab.reboot:
        return _("Once each time scheduling starts (@reboot)")
    raw = ALIASES.get(crontab.expression.lower(), crontab.expression).split()
    minute, hour, dom, month, dow = (
        part if part == "*" or (_STAR_STEP.match(part) and index < 4) else _ranges(values)
        for index, (part, values) in enumerate(zip(raw, crontab.field_values(), strict=True))
    )
    weekdays = crontab.field_values()[4]
    every_date, every_weekday = len(crontab.field_values()[2]) == 31, len(weekdays) == 7
    if dow != "*":
        dow = _weekdays(weekdays)
    if crontab.day_or and (every_date or every_weekday):
        dom = dow = "*"  # either side alone matches every day
    elif not crontab.day_or:
        dom, dow = ("*" if every_date else dom), ("*" if every_weekday else dow)
        if dom != "*" and dow != "*":
            # "*/2" with "mon": both must match (cron's rule when a field starts with "*").
            days = _ranges(crontab.field_values()[2])
            return _and_days(_cron_text(f"{minute} {hour} * {month} {dow}"), days)
    return _cron_text(f"{minute} {hour} {dom} {month} {dow}")


def _field_words(walls: FieldWallClock) -> str:
    """APScheduler's cron fields in words, through a crontab that means the same, if any."""
    fields = walls.fields()
    second, minute, hour = fields["second"], fields["minute"], fields["hour"]
    month, dom, year = fields["month"], fields["day"], fields["year"]
    weekdays = walls.values("day_of_week")
    days = walls.values("day")
    if fields["week"] != "*" or "/" in year or weekdays is None:
        return _listing(walls)
    # APScheduler counts weekdays from Monday = 0; cron from Sunday = 0.
    dow = "*" if len(weekdays) == 7 else _weekdays([(d + 1) % 7 for d in weekdays])
    if days is None:
        # A single "last" or "1st mon" has a crontab spelling when the weekday field is free.
        position = dom.split(" ")
        if dow != "*" or "," in dom:
            return _listing(walls)
        if position == ["last"]:
            dom = "L"
        elif len(position) == 2 and position[0] in _POSITIONS:
            weekday = (_APS_WEEKDAYS.index(position[1]) + 1) % 7
            suffix = _POSITIONS[position[0]]
            dom, dow = "*", (f"{weekday}L" if suffix == "L" else f"{weekday}{suffix}")
        else:
            return _listing(walls)
    parts = [minute, hour, "*" if dow != "*" and dom != "*" else dom, month, dow]
    if second != "0" or year != "*":
        parts.insert(0, second)
    if year != "*":
        parts.append(year)
    text = _cron_text(" ".join(parts))
    if dow != "*" and dom != "*":
        # APScheduler's day and day_of_week must both match; cron would read them as "or".
        return _and_days(text, _ranges(days) if days else dom)
    return text


def _listing(walls: FieldWallClock) -> str:
    given = ", ".join(f"{name}={value}" for name, value in walls.fields().items() if value != "*")
    return _("Cron fields %(fields)s") % {"fields": given}


def _and_days(text: str, days: str) -> str:
    return _("%(schedule)s, if the day of the month is also %(days)s") % {
        "schedule": text,
        "days": days.replace(",", ", "),
    }


def _ranges(values: list[int]) -> str:
    """``[1, 2, 3, 5]`` as ``"1-3,5"``."""
    runs: list[list[int]] = []
    for value in values:
        if runs and value == runs[-1][1] + 1:
            runs[-1][1] = value
        else:
            runs.append([value, value])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _weekdays(values: list[int]) -> str:
    """Cron weekdays as runs that may wrap past Saturday: ``[5, 6, 0]`` as ``"5-0"``."""
    if len(values) == 7:
        return "*"
    present = set(values)
    # Start the week after a missing day, so that a run such as Saturday-Sunday stays whole.
    start = min(day for day in present if (day - 1) % 7 not in present)
    runs: list[list[int]] = []
    for offset in range(7):
        day = (start + offset) % 7
        if day not in present:
            continue
        if runs and (runs[-1][-1] + 1) % 7 == day:
            runs[-1].append(day)
        else:
            runs.append([day])
    return ",".join(
        f"{run[0]}-{run[-1]}" if len(run) > 2 else ",".join(map(str, run)) for run in runs
    )


def _cron_text(expression: str) -> str:
    locale = _descriptor_locale(translation.get_language())
    try:
        options = Options(locale_code=locale, use_24hour_time_format=True)
    except TypeError:
        # cron-descriptor 1.x takes no arguments (django-celery-beat pins it below 2, so a
        # project moving over has 1.x): set as attributes, which it reads the same way.
        options = Options()
        options.locale_code = locale
        options.use_24hour_time_format = True
    text = str(ExpressionDescriptor(expression, options).get_description())
    fields = expression.split()
    if len(fields) == 5 and fields[2] not in ("*", "?") and fields[4] not in ("*", "?"):
        # A day of the month and a weekday: cron fires on either. cron-descriptor 1.x says
        # "only on" the weekday (in English); 2.x says "or on".
        text = text.replace(", only on ", ", or on ")
    return text


@functools.lru_cache(maxsize=32)
def _descriptor_locale(language: str | None) -> str:
    """The cron-descriptor locale closest to a Django language code (``en_US`` if none)."""
    if not language:
        return "en_US"
    import cron_descriptor

    available = sorted(
        p.stem for p in (Path(cron_descriptor.__file__).parent / "locale").glob("*.mo")
    )
    wanted = translation.to_locale(language)
    if wanted in available:
        return wanted
    prefix = wanted.split("_")[0] + "_"
    return next((code for code in available if code.startswith(prefix)), "en_US")
