"""The audit trail in the admin: a task's latest changes on its page, and every change listed
(read-only, filterable); the admin's own changes recorded as the admin's, by the user."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import quote
from django.core.exceptions import FieldDoesNotExist
from django.db.models import Model
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import SafeString
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from django_tasks_sched import audit
from django_tasks_sched.admin import display
from django_tasks_sched.models import Task, TaskChange

#: Changes shown on a task's page; the link under them lists them all.
RECENT_CHANGES = 10

#: Most characters of a value in a list; the change's own page shows what was stored.
SHORT_VALUE = 60


def field_label(name: str) -> str:
    """A Task field's verbose name (the name itself for a field since removed)."""
    try:
        return str(getattr(Task._meta.get_field(name), "verbose_name", name))
    except FieldDoesNotExist:
        return name


def value_text(value: Any, limit: int | None = None) -> str:
    """A stored value for people: text as it is, the rest as JSON, a truncated one marked."""
    cut = audit.truncated(value)
    if cut is not None:
        start, length = cut
        return gettext("%(start)s… (cut, %(length)s characters in all)") % {
            "start": start[: limit or audit.VALUE_LIMIT],
            "length": length,
        }
    if value is None or value == "":
        return "-"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if limit is not None and len(text) > limit:
        return text[: limit - 1] + "…"
    return text


def fields_table(change: TaskChange, limit: int | None = None) -> SafeString:
    """The change's fields, one line each: "label: old → new"."""
    fields = change.fields if isinstance(change.fields, dict) else {}
    pairs = [
        (name, pair) for name, pair in fields.items() if isinstance(pair, list) and len(pair) == 2
    ]
    if not pairs:
        return format_html("{}", "-")
    return format_html(
        '<ul class="dts-changes">{}</ul>',
        format_html_join(
            "",
            "<li><b>{}</b>: <del>{}</del> → <ins>{}</ins></li>",
            (
                (field_label(name), value_text(old, limit), value_text(new, limit))
                for name, (old, new) in pairs
            ),
        ),
    )


class AuditedAdminMixin(admin.ModelAdmin):
    """For ``TaskAdmin``: changes made in its views are recorded as the admin's, by the user;
    its page shows the task's latest changes (the ``recent_changes`` read-only field)."""

    def _recording(self, request: HttpRequest) -> Any:
        return audit.recording(TaskChange.Via.ADMIN, request.user.get_username())

    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        with self._recording(request):
            return super().changeform_view(request, *args, **kwargs)

    def changelist_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # The actions (activate, deactivate, delete selected) run inside the changelist view.
        with self._recording(request):
            return super().changelist_view(request, *args, **kwargs)

    def delete_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        with self._recording(request):
            return super().delete_view(request, *args, **kwargs)

    @admin.display(description=_("recent changes"))
    def recent_changes(self, obj: Task) -> SafeString:
        # Sliced: the index (task, -at) serves this without reading the task's whole trail.
        changes = list(obj.changes.order_by("-at", "-id")[:RECENT_CHANGES])
        site = self.admin_site.name
        changelist = reverse(f"{site}:django_tasks_sched_taskchange_changelist")
        rows = [
            {
                "change": change,
                "when": display.show_time(change.at),
                "url": reverse(
                    f"{site}:django_tasks_sched_taskchange_change", args=[quote(change.pk)]
                ),
                "fields": fields_table(change, SHORT_VALUE),
            }
            for change in changes
        ]
        return render_to_string(
            "admin/django_tasks_sched/task/recent_changes.html",
            {"rows": rows, "all_url": f"{changelist}?{urlencode({'task__id__exact': obj.pk})}"},
        )


@admin.register(TaskChange)
class TaskChangeAdmin(admin.ModelAdmin):
    """Every recorded change of a task: read-only, filterable by path, action and date."""

    list_display = ["when", "task_link", "action", "via", "who", "changed_fields"]
    list_display_links = ["when"]
    list_filter = ["via", "action", "at"]
    search_fields = ["task_name", "who"]
    date_hierarchy = "at"
    fields = ["when", "task_link", "action", "via", "who", "fields_display"]
    readonly_fields = ["when", "task_link", "action", "via", "who", "fields_display"]

    class Media:
        css = {"all": ["django_tasks_sched/admin.css"]}

    # -- permissions: the trail is written by the changes themselves ------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        # Pruning follows the run history's retention; by hand, superusers only.
        return bool(request.user.is_active and request.user.is_superuser)

    # -- columns ------------------------------------------------------------------------------

    when = display.time_field(TaskChange, "at")

    @admin.display(description=_("task"), ordering="task_name")
    def task_link(self, obj: TaskChange) -> str | SafeString:
        """The task, linked while it exists (a deleted one keeps its name here)."""
        if obj.task_id is None:
            return obj.task_name
        url = reverse(
            f"{self.admin_site.name}:django_tasks_sched_task_change", args=[quote(obj.task_id)]
        )
        return format_html('<a href="{}">{}</a>', url, display.breakable(obj.task_name))

    @admin.display(description=_("changed fields"))
    def changed_fields(self, obj: TaskChange) -> SafeString:
        return fields_table(obj, SHORT_VALUE)

    @admin.display(description=_("fields: old → new"))
    def fields_display(self, obj: TaskChange) -> SafeString:
        return fields_table(obj)
