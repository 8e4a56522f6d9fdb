"""How the admin renders statuses, times, durations, fire times and JSON."""

from __future__ import annotations

import json
import re
import zoneinfo
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, tzinfo
from typing import Any

from django.contrib import admin
from django.db.models import Model
from django.utils import timezone
from django.utils.dateformat import format as format_date
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.timesince import timeuntil
from django.utils.translation import gettext_lazy as _

from django_tasks_sched.models import TaskRun
from django_tasks_sched.times import DATE_FORMAT, TIME_FORMAT

Status = TaskRun.Status

#: Badge colour per run status: good, bad, did not happen, in progress.
STATUS_COLOURS: dict[str, str] = {
    Status.SUCCESSFUL: "green",
    Status.FAILED: "red",
    Status.TIMED_OUT: "red",
    Status.INTERRUPTED: "red",
    Status.MISSED: "amber",
    Status.CANCELLED: "amber",
    Status.RUNNING: "blue",
    Status.QUEUED: "blue",
}

#: The preview names the weekday too: a schedule is often about it.
FIRE_TIME_FORMAT = f"D {DATE_FORMAT} {TIME_FORMAT}"


def status_badge(status: str) -> SafeString | str:
    """A coloured badge for a run status; empty statuses render as the admin's dash."""
    if not status:
        return "-"
    label = Status(status).label if status in Status.values else status
    colour = STATUS_COLOURS.get(status, "grey")
    return format_html(
        '<span class="dts-badge dts-badge-{}" data-status="{}">{}</span>', colour, status, label
    )


def format_duration(value: timedelta | None) -> str:
    """A short human duration: "0.42 s", "3 min 5 s", "2 h 4 min"."""
    if value is None:
        return "-"
    seconds = value.total_seconds()
    if seconds < 60:
        return _("%(seconds).2f s") % {"seconds": seconds}
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return _("%(minutes)d min %(seconds)d s") % {"minutes": minutes, "seconds": secs}
    hours, minutes = divmod(minutes, 60)
    return _("%(hours)d h %(minutes)d min") % {"hours": hours, "minutes": minutes}


def progress_bar(progress: float | None) -> SafeString | str:
    """A run's progress as a bar with its percentage; the admin's dash when none was reported."""
    if progress is None:
        return "-"
    percent = max(0.0, min(1.0, progress)) * 100
    return format_html(
        '<progress class="dts-progress" max="100" value="{}" aria-label="{}"></progress> {}',
        f"{percent:.1f}",
        _("progress"),
        f"{percent:.0f}%",
    )


def between(start: datetime | None, end: datetime | None) -> str:
    """The duration from ``start`` to ``end`` (negative: ``end`` came first), or the dash."""
    if start is None or end is None:
        return "-"
    delta = end - start
    if delta < timedelta(0):
        return "-" + format_duration(-delta)
    return format_duration(delta)


def pretty_json(value: Any) -> SafeString:
    """JSON indented inside a ``<pre>``."""
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=repr)
    return format_html('<pre class="dts-pre">{}</pre>', text)


def preformatted(text: str) -> SafeString | str:
    """Text (a traceback, a log) kept as written, inside a ``<pre>``."""
    if not text:
        return "-"
    return format_html('<pre class="dts-pre">{}</pre>', text)


def zone_name(value: datetime) -> str:
    """The name of an aware datetime's zone ("Europe/Berlin"), else its abbreviation."""
    return getattr(value.tzinfo, "key", None) or value.tzname() or ""


def show_time(value: datetime | None, zone: tzinfo | None = None) -> SafeString | str:
    """A time as ``time_text`` words it, the zone's full name on hover; the dash for none.

    A narrow column may break it between the date and the time, never inside either.
    """
    if value is None:
        return "-"
    local = timezone.localtime(value, zone)
    return format_html(
        '<time class="dts-time" datetime="{}" title="{}"><span>{}</span> <span>{}</span></time>',
        value.isoformat(),
        zone_name(local),
        format_date(local, DATE_FORMAT),
        format_date(local, TIME_FORMAT),
    )


def time_field(model: type[Model], name: str) -> Callable[[Any, Any], str | SafeString]:
    """An admin column (and read-only field) showing the datetime field ``name`` of ``model``
    with its zone, sortable by that field."""
    field = model._meta.get_field(name)

    @admin.display(description=getattr(field, "verbose_name", name), ordering=name)
    def show(model_admin: Any, obj: Any) -> str | SafeString:
        return show_time(getattr(obj, name))

    return show


def breakable(text: str) -> SafeString:
    """``text`` with line-break opportunities after the dots, colons and slashes of a dotted
    path, a host name or a worker id, so a narrow column wraps it at those."""
    pieces = re.split(r"(?<=[.:/_])", text)
    return format_html(
        '<span class="dts-wrap">{}</span>',
        format_html_join(mark_safe("<wbr>"), "{}", ((piece,) for piece in pieces if piece)),
    )


def display_zone(config: Any) -> tzinfo:
    """The zone to show a task's fire times in: its own ``timezone``, else the current one."""
    name = config.get("timezone") if isinstance(config, dict) else None
    if isinstance(name, str) and name:
        try:
            return zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            pass
    return timezone.get_current_timezone()


def fire_times_list(times: Sequence[datetime], zone: tzinfo) -> SafeString:
    """The fire times as a list, each with how far off it is."""
    now = timezone.now()
    rows = [
        (
            dt.isoformat(),
            zone_name(dt.astimezone(zone)),
            format_date(dt.astimezone(zone), FIRE_TIME_FORMAT),
            _("in %(delay)s") % {"delay": timeuntil(dt, now)} if dt > now else "",
        )
        for dt in times
    ]
    return format_html(
        '<ol class="dts-fire-times">{}</ol>',
        format_html_join(
            "",
            '<li><time datetime="{}" title="{}">{}</time> <span class="quiet">{}</span></li>',
            rows,
        ),
    )


def problem(message: str) -> SafeString:
    """An error shown in place of a value that could not be computed."""
    return format_html('<span class="dts-problem">{}</span>', message)
