"""Alerts in the admin: the Task form's "Alerts" fieldset helpers, and AlertState read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext

from django_tasks_sched.admin.display import show_time
from django_tasks_sched.alerts.config import alert_settings
from django_tasks_sched.models import AlertState, Task

#: The Task form's alert fields, in order.
FIELDS = ["alert_on_failure", "alert_on_missed", "alert_no_success_minutes"]


def alert_defaults() -> str:
    """The fieldset's note: what an empty box means with the project's settings."""
    conf = alert_settings()
    minutes = conf.NO_SUCCESS_MINUTES
    return gettext(
        "Sent once when an alert is raised and once when it is resolved, through: "
        "%(channels)s. Left empty, these follow the ALERTS setting: on failure %(failure)s, "
        "on a missed fire %(missed)s, minutes without success %(minutes)s."
    ) % {
        "channels": ", ".join(conf.CHANNELS) or gettext("no channel"),
        "failure": gettext("yes") if conf.ON_FAILURE else gettext("no"),
        "missed": gettext("yes") if conf.ON_MISSED else gettext("no"),
        "minutes": minutes if minutes is not None else gettext("off"),
    }


def alerts_now(task: Task) -> SafeString:
    """The task's alerts raised now, with since when and why."""
    raised = list(task.alert_states.filter(raised=True).order_by("kind")[:10])
    if not raised:
        return format_html("{}", gettext("None raised."))
    return format_html(
        '<ul class="dts-alerts-now">{}</ul>',
        format_html_join(
            "",
            "<li><strong>{}</strong> ({} {}): {}</li>",
            [
                (
                    state.get_kind_display(),
                    gettext("since"),
                    show_time(state.changed_at),
                    state.detail[:300],
                )
                for state in raised
            ],
        ),
    )


@admin.register(AlertState)
class AlertStateAdmin(admin.ModelAdmin):
    """Read-only: alert states are written by the scheduler's checks and checkalerts."""

    list_display = ["__str__", "kind", "raised", "changed_at"]
    list_filter = ["raised", "kind"]
    list_select_related = ["task"]
    search_fields = ["task__name"]
    readonly_fields = ["task", "kind", "raised", "changed_at", "detail"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A deleted raised state is raised, and sent, again by the next check.
        return False
