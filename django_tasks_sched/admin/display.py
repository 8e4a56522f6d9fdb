"""How the admin renders statuses, durations, fire times and JSON."""

from __future__ import annotations

import json
import zoneinfo
from collections.abc import Sequence
from datetime import datetime, timedelta, tzinfo
from typing import Any

from django.utils import timezone
from django.utils.dateformat import format as format_date
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.timesince import timeuntil
from django.utils.translation import gettext_lazy as _

from django_tasks_sched.models import TaskRun

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

#: Unambiguous across locales, and shows the zone the time is in.
FIRE_TIME_FORMAT = "D Y-m-d H:i:s T"


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
            format_date(dt.astimezone(zone), FIRE_TIME_FORMAT),
            _("in %(delay)s") % {"delay": timeuntil(dt, now)} if dt > now else "",
        )
        for dt in times
    ]
    return format_html(
        '<ol class="dts-fire-times">{}</ol>',
        format_html_join(
            "", '<li><time datetime="{}">{}</time> <span class="quiet">{}</span></li>', rows
        ),
    )


def problem(message: str) -> SafeString:
    """An error shown in place of a value that could not be computed."""
    return format_html('<span class="dts-problem">{}</span>', message)
