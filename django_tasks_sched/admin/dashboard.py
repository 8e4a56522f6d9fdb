"""The admin's dashboard page, and the small bar charts it draws as inline SVG on the server.

The numbers come from :mod:`django_tasks_sched.dashboard`; this module only words and draws
them. No chart library and no JavaScript: each chart is a few ``<rect>`` elements whose
``aria-label`` (and ``<title>``) says the numbers, so a screen reader reads what the eye sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.contrib.admin import ModelAdmin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from django_tasks_sched.admin.display import format_duration, show_time
from django_tasks_sched.dashboard import FIRES_PER_TASK, Bucket, Timeline, dashboard
from django_tasks_sched.times import DATE_FORMAT, TIME_FORMAT

#: Seconds between the page's own reloads (a meta refresh: works without JavaScript).
REFRESH_SECONDS = 60
BAR_WIDTH = 6
CHART_HEIGHT = 24


def dashboard_view(model_admin: ModelAdmin[Any], request: HttpRequest) -> HttpResponse:
    """The dashboard; for staff who may view tasks."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    board = dashboard()
    context = {
        **model_admin.admin_site.each_context(request),
        "title": _("Scheduler dashboard"),
        "opts": model_admin.opts,
        "board": board,
        "now": show_time(board.now),
        "zone": timezone.get_current_timezone_name(),
        # For the template's date filter: times written as everywhere else (times.py).
        "time_format": f"{DATE_FORMAT} {TIME_FORMAT}",
        "windows": [board.hour, board.day],
        "fires_per_task": FIRES_PER_TASK,
        "hour_chart": timeline_chart(board.hour, "%H:%M"),
        "day_chart": timeline_chart(board.day, "%H:%M"),
        "health": [
            {
                "row": health,
                "day_rate": percent(health.day_rate),
                "week_rate": percent(health.week_rate),
                "day_lateness": format_duration(health.day_lateness),
                "week_lateness": format_duration(health.week_lateness),
                "day_chart": outcome_chart(health.day, "%H:%M"),
                "week_chart": outcome_chart(health.week, "%a %d"),
                "day_late_chart": lateness_chart(health.day, "%H:%M"),
                "week_late_chart": lateness_chart(health.week, "%a %d"),
            }
            for health in board.health
        ],
        "refresh": None if request.GET.get("refresh") == "off" else REFRESH_SECONDS,
    }
    return TemplateResponse(request, "admin/django_tasks_sched/dashboard.html", context)


def percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.0%}"


def _label(when: Any, pattern: str) -> str:
    return timezone.localtime(when).strftime(pattern)


def _svg(label: str, bars: SafeString, count: int) -> SafeString:
    width = count * BAR_WIDTH
    return format_html(
        '<svg class="dts-chart" role="img" aria-label="{}" width="{}" height="{}" '
        'viewBox="0 0 {} {}"><title>{}</title>{}</svg>',
        label,
        width,
        CHART_HEIGHT,
        width,
        CHART_HEIGHT,
        label,
        bars,
    )


def _rect(i: int, value: float, top: float, css: str) -> tuple[int, str, int, str, str]:
    """A bar of ``value`` (0 to 1 of the chart's height) whose top is at ``top`` (0 to 1)."""
    height = value * CHART_HEIGHT
    y = CHART_HEIGHT - top * CHART_HEIGHT
    return (i * BAR_WIDTH, f"{y:.1f}", BAR_WIDTH - 1, f"{height:.1f}", css)


RECT = '<rect x="{}" y="{}" width="{}" height="{}" class="{}"></rect>'


def timeline_chart(line: Timeline, pattern: str) -> SafeString:
    """One bar per slot, as tall as its share of the busiest slot's fires."""
    peak = max((slot.fires for slot in line.slots), default=0) or 1
    label = "; ".join(
        gettext("%(time)s: %(count)d") % {"time": _label(slot.start, pattern), "count": slot.fires}
        for slot in line.slots
    )
    bars = format_html_join(
        "",
        RECT,
        (
            _rect(i, slot.fires / peak, slot.fires / peak, "dts-bar")
            for i, slot in enumerate(line.slots)
        ),
    )
    return _svg(gettext("Fires per slot: %(slots)s") % {"slots": label}, bars, len(line.slots))


def outcome_chart(buckets: Sequence[Bucket], pattern: str) -> SafeString:
    """Stacked bars per bucket: successful runs (below) and the other outcomes (above)."""
    peak = max((b.outcomes for b in buckets), default=0) or 1
    rects = []
    parts = []
    for i, b in enumerate(buckets):
        ok, bad = b.successful / peak, b.failed / peak
        rects.append(_rect(i, ok, ok, "dts-bar-ok"))
        rects.append(_rect(i, bad, ok + bad, "dts-bar-bad"))
        parts.append(
            gettext("%(time)s: %(ok)d of %(count)d successful")
            % {"time": _label(b.start, pattern), "ok": b.successful, "count": b.outcomes}
        )
    bars = format_html_join("", RECT, (r for r in rects if float(r[3]) > 0))
    return _svg("; ".join(parts), bars, len(buckets))


def lateness_chart(buckets: Sequence[Bucket], pattern: str) -> SafeString:
    """One bar per bucket, as tall as its mean lateness against the latest bucket's."""
    lates = [b.lateness or timedelta(0) for b in buckets]
    peak = max(lates).total_seconds() or 1.0
    parts = [
        gettext("%(time)s: %(late)s late on average")
        % {
            "time": _label(b.start, pattern),
            "late": format_duration(b.lateness) if b.lateness is not None else "-",
        }
        for b in buckets
    ]
    bars = format_html_join(
        "",
        RECT,
        (
            _rect(i, late.total_seconds() / peak, late.total_seconds() / peak, "dts-bar-late")
            for i, late in enumerate(lates)
            if late.total_seconds() > 0
        ),
    )
    return _svg("; ".join(parts), bars, len(buckets))
