"""The TaskRun admin: read-only history, cheap to list on a table of millions of rows."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import quote
from django.contrib.admin.views.main import ChangeList
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from django_tasks_sched.admin import display
from django_tasks_sched.models import TaskRun

#: Columns that may hold megabytes; the changelist never shows them.
HEAVY_FIELDS = ("return_value", "traceback", "log")


class RunChangeList(ChangeList):
    """The changelist query, without the large text columns."""

    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> QuerySet:
        return super().get_queryset(request, exclude_parameters).defer(*HEAVY_FIELDS)


class StatusFilter(admin.SimpleListFilter):
    """Each status, and first the runs that need a look: every way a run can end badly."""

    title = _("status")
    parameter_name = "status"
    PROBLEMS = "problems"
    PROBLEM_STATUSES = (*sorted(TaskRun.FAILED_STATUSES), TaskRun.Status.MISSED)

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, Any]]:
        return [
            (self.PROBLEMS, _("Not successful (failed, timed out, interrupted, missed)")),
            *TaskRun.Status.choices,
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[TaskRun]) -> QuerySet[TaskRun]:
        value = self.value()
        if value == self.PROBLEMS:
            return queryset.filter(status__in=self.PROBLEM_STATUSES)
        if value:
            return queryset.filter(status=value)
        return queryset


@admin.register(TaskRun)
class TaskRunAdmin(admin.ModelAdmin):
    """Runs are written by the scheduler: viewable, deletable with permission, never edited."""

    list_display = [
        "enqueued_at",
        "task_link",
        "status_badge",
        "origin",
        "attempt",
        "scheduled_for",
        "started_at",
        "duration_display",
        "progress_display",
        "worker_id",
    ]
    list_display_links = ["enqueued_at"]
    list_filter = [StatusFilter, "origin", "task__trigger"]
    list_select_related = ["task"]
    search_fields = ["task__name", "error"]
    date_hierarchy = "enqueued_at"
    # COUNT(*) over the whole table on every filtered page is what makes big changelists slow.
    show_full_result_count = False
    fieldsets = [
        (
            None,
            {"fields": ["task_link", "status_badge", "origin", "attempt", "first_attempt"]},
        ),
        (
            _("Timing"),
            {
                "fields": [
                    "scheduled_for",
                    "enqueued_at",
                    "started_at",
                    "finished_at",
                    "waiting_display",
                    "lateness_display",
                    "duration_display",
                ],
                "description": _(
                    "Waiting: from enqueued to started. Lateness: from the nominal fire time to "
                    "the start. Running: from start to finish."
                ),
            },
        ),
        (
            _("Progress"),
            {"fields": ["progress_display", "meta_display", "heartbeat_at", "alive_at"]},
        ),
        (
            _("Where it ran"),
            {"fields": ["worker_id", "backend", "backend_result_id", "handed_at", "handoffs"]},
        ),
        (
            _("Outcome"),
            {"fields": ["return_value_display", "error", "traceback_display", "log_display"]},
        ),
    ]
    readonly_fields = [
        "task_link",
        "status_badge",
        "origin",
        "attempt",
        "first_attempt",
        "scheduled_for",
        "enqueued_at",
        "started_at",
        "finished_at",
        "waiting_display",
        "lateness_display",
        "duration_display",
        "progress_display",
        "meta_display",
        "heartbeat_at",
        "alive_at",
        "worker_id",
        "backend",
        "backend_result_id",
        "handed_at",
        "handoffs",
        "return_value_display",
        "error",
        "traceback_display",
        "log_display",
    ]

    class Media:
        css = {"all": ["django_tasks_sched/admin.css"]}

    def get_queryset(self, request: HttpRequest) -> QuerySet[TaskRun]:
        # The page title (``__str__``) names the task: fetch it with the run.
        return super().get_queryset(request).select_related("task")

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return RunChangeList

    # -- permissions: history is written by the scheduler only --------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    # Deleting runs (to prune history) follows the "Can delete task run" permission.

    # -- columns ------------------------------------------------------------------------------

    @admin.display(description=_("task"), ordering="task__name")
    def task_link(self, obj: TaskRun) -> SafeString:
        url = reverse(
            f"{self.admin_site.name}:django_tasks_sched_task_change", args=[quote(obj.task_id)]
        )
        return format_html('<a href="{}">{}</a>', url, obj.task.name)

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, obj: TaskRun) -> str | SafeString:
        return display.status_badge(obj.status)

    @admin.display(description=_("running"))
    def duration_display(self, obj: TaskRun) -> str:
        return display.format_duration(obj.duration)

    @admin.display(description=_("waiting"))
    def waiting_display(self, obj: TaskRun) -> str:
        return display.between(obj.enqueued_at, obj.started_at)

    @admin.display(description=_("lateness"))
    def lateness_display(self, obj: TaskRun) -> str:
        return display.between(obj.scheduled_for, obj.started_at)

    @admin.display(description=_("progress"), ordering="progress")
    def progress_display(self, obj: TaskRun) -> str | SafeString:
        return display.progress_bar(obj.progress)

    @admin.display(description=_("meta"))
    def meta_display(self, obj: TaskRun) -> str | SafeString:
        return display.pretty_json(obj.meta) if obj.meta else "-"

    @admin.display(description=_("return value"))
    def return_value_display(self, obj: TaskRun) -> str | SafeString:
        if obj.return_value is None:
            return "-"
        return display.pretty_json(obj.return_value)

    @admin.display(description=_("traceback"))
    def traceback_display(self, obj: TaskRun) -> str | SafeString:
        return display.preformatted(obj.traceback)

    @admin.display(description=_("log output"))
    def log_display(self, obj: TaskRun) -> str | SafeString:
        return display.preformatted(obj.log)
