"""The TaskRun admin: read-only history, cheap to list on a table of millions of rows."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import quote
from django.contrib.admin.views.main import ChangeList
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from django_tasks_sched.admin import display
from django_tasks_sched.models import TaskRun

#: Columns that may hold megabytes; the changelist never shows them.
HEAVY_FIELDS = ("return_value", "traceback", "log")

#: The model's words for "scheduled for" say nothing of retries; the run's page says this.
SCHEDULED_HELP = _(
    "The nominal fire time. Empty for a run the schedule did not fire: one started by hand, "
    "through the API or the command line, or a retry of a run that failed."
)


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

    # Fits 1280 px with the nav sidebar and the filters open: under the status its progress,
    # under what triggered the run its fire time (or a retry's attempt), under the start the
    # running time; long values wrap.
    list_display = [
        "enqueued",
        "task_link",
        "status_and_progress",
        "triggered_by",
        "started_and_running",
        "worker",
    ]
    list_display_links = ["enqueued"]
    list_filter = [StatusFilter, "origin", "task__trigger"]
    list_select_related = ["task"]
    search_fields = ["task__name", "error"]
    date_hierarchy = "enqueued_at"
    # COUNT(*) over the whole table on every filtered page is what makes big changelists slow.
    show_full_result_count = False
    fieldsets = [
        (
            None,
            {"fields": ["task_link", "status_badge", "origin", "attempt", "first_attempt_link"]},
        ),
        (
            _("Timing"),
            {
                "fields": [
                    "scheduled_detail",
                    "enqueued",
                    "started",
                    "finished",
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
            {"fields": ["progress_display", "meta_display", "heartbeat", "alive"]},
        ),
        (
            _("Where it ran"),
            {"fields": ["worker", "backend", "backend_result_id", "handed", "handoffs"]},
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
        "first_attempt_link",
        "scheduled_detail",
        "enqueued",
        "started",
        "finished",
        "waiting_display",
        "lateness_display",
        "duration_display",
        "progress_display",
        "meta_display",
        "heartbeat",
        "alive",
        "worker",
        "backend",
        "backend_result_id",
        "handed",
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

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        # The run's page shows its times through the methods below, which have no model
        # field to take help text from: the form's Meta lends them the fields' own.
        kwargs["help_texts"] = {**self.help_texts(), **kwargs.get("help_texts", {})}
        return super().get_form(request, obj, change, **kwargs)

    @staticmethod
    def help_texts() -> dict[str, Any]:
        """Help text for the read-only fields shown through methods, by method name."""
        meta = TaskRun._meta
        return {
            "scheduled_detail": SCHEDULED_HELP,
            "worker": meta.get_field("worker_id").help_text,
            "heartbeat": meta.get_field("heartbeat_at").help_text,
            "alive": meta.get_field("alive_at").help_text,
            "handed": meta.get_field("handed_at").help_text,
        }

    # -- permissions: history is written by the scheduler only --------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    # Deleting runs (to prune history) follows the "Can delete task run" permission.

    # -- columns ------------------------------------------------------------------------------

    enqueued = display.time_field(TaskRun, "enqueued_at")
    started = display.time_field(TaskRun, "started_at")
    finished = display.time_field(TaskRun, "finished_at")
    heartbeat = display.time_field(TaskRun, "heartbeat_at")
    alive = display.time_field(TaskRun, "alive_at")
    handed = display.time_field(TaskRun, "handed_at")

    @admin.display(description=TaskRun._meta.get_field("first_attempt").verbose_name)
    def first_attempt_link(self, obj: TaskRun) -> str | SafeString:
        """A retry's first attempt, titled as its own page is."""
        first = obj.first_attempt
        if first is None:
            return "-"
        url = reverse(
            f"{self.admin_site.name}:django_tasks_sched_taskrun_change", args=[quote(first.pk)]
        )
        return format_html('<a href="{}">{}</a>', url, str(first))

    @admin.display(description=TaskRun._meta.get_field("scheduled_for").verbose_name)
    def scheduled_detail(self, obj: TaskRun) -> str | SafeString:
        """The fire time; for a retry, which run it retries and the attempt, instead."""
        if obj.scheduled_for is not None or obj.first_attempt_id is None:
            return display.show_time(obj.scheduled_for)
        url = reverse(
            f"{self.admin_site.name}:django_tasks_sched_taskrun_change",
            args=[quote(obj.first_attempt_id)],
        )
        first = format_html(
            '<a href="{}">{}</a>', url, gettext("run %(id)s") % {"id": obj.first_attempt_id}
        )
        # Escaped first, then the link put in: the sentence is the translator's.
        sentence = conditional_escape(
            gettext("None: this is attempt %(attempt)d, a retry of %(run)s.")
        )
        return mark_safe(sentence % {"attempt": obj.attempt, "run": first})

    @admin.display(
        description=TaskRun._meta.get_field("worker_id").verbose_name, ordering="worker_id"
    )
    def worker(self, obj: TaskRun) -> str | SafeString:
        # A worker id is long ("scheduler:host.example.internal:12345"): it wraps at its parts.
        return display.breakable(obj.worker_id) if obj.worker_id else "-"

    @admin.display(description=_("task"), ordering="task__name")
    def task_link(self, obj: TaskRun) -> SafeString:
        url = reverse(
            f"{self.admin_site.name}:django_tasks_sched_task_change", args=[quote(obj.task_id)]
        )
        return format_html('<a href="{}">{}</a>', url, display.breakable(obj.task.name))

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, obj: TaskRun) -> str | SafeString:
        return display.status_badge(obj.status)

    @admin.display(description=_("status"), ordering="status")
    def status_and_progress(self, obj: TaskRun) -> str | SafeString:
        """The status badge, and under it the progress the function reported, if any."""
        if obj.progress is None:
            return display.status_badge(obj.status)
        return format_html(
            '{}<div class="dts-under">{}</div>',
            display.status_badge(obj.status),
            display.progress_bar(obj.progress),
        )

    @admin.display(description=TaskRun._meta.get_field("origin").verbose_name, ordering="origin")
    def triggered_by(self, obj: TaskRun) -> str | SafeString:
        """What triggered the run, and under it the fire time, or the attempt of a retry."""
        if obj.scheduled_for is not None:
            under = display.show_time(obj.scheduled_for)
        elif obj.attempt > 1:
            under = gettext("attempt %(attempt)d") % {"attempt": obj.attempt}
        else:
            return obj.get_origin_display()
        return format_html('{}<div class="dts-under">{}</div>', obj.get_origin_display(), under)

    @admin.display(
        description=TaskRun._meta.get_field("started_at").verbose_name, ordering="started_at"
    )
    def started_and_running(self, obj: TaskRun) -> str | SafeString:
        """When the run started, and under it how long it ran, once it finished."""
        if obj.started_at is None or obj.finished_at is None:
            return display.show_time(obj.started_at)
        return format_html(
            '{}<div class="dts-under">{}</div>',
            display.show_time(obj.started_at),
            gettext("ran %(duration)s") % {"duration": display.format_duration(obj.duration)},
        )

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
