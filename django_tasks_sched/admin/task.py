"""The Task admin: the schedule in words, a preview of the next fires, and the actions."""

from __future__ import annotations

import copy
import logging
from datetime import timedelta
from functools import partial
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.db import router
from django.db.models import Model, QuerySet
from django.forms import ModelForm
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.templatetags.static import static
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import SafeString
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from django_tasks_sched import options
from django_tasks_sched.admin import alerts, display
from django_tasks_sched.admin.audit import AuditedAdminMixin
from django_tasks_sched.admin.dashboard import dashboard_view
from django_tasks_sched.admin.declared import DeclaredTaskAdminMixin
from django_tasks_sched.admin.preview import preview_view
from django_tasks_sched.backfill import fire_times
from django_tasks_sched.conf import get_settings
from django_tasks_sched.counters import fire_counts
from django_tasks_sched.exceptions import TaskConfigError
from django_tasks_sched.explain import explain
from django_tasks_sched.firing import firing
from django_tasks_sched.forms import BackfillForm, PauseForm, TaskForm
from django_tasks_sched.models import SchedulerProcess, Task, TaskRun
from django_tasks_sched.policy import makes_due_now, run_permission_message
from django_tasks_sched.rawsql import take_write_lock
from django_tasks_sched.times import time_text

logger = logging.getLogger(__name__)

#: How many fire times the change page previews, and how many recent runs it lists.
PREVIEW_FIRES = 5
RECENT_RUNS = 10
#: Fire times a backfill preview lists (it counts them all).
PREVIEW_SHOWN = 100


def run_now_message(count: int) -> tuple[str, int]:
    """The sentence (and message level) reporting runs queued from the admin.

    Says whether a live scheduler process will pick the runs up, or that none is running.
    """
    if SchedulerProcess.objects.alive().exists():
        text = ngettext(
            "%(count)d task queued to run now; a live scheduler process will start it "
            "within about a second.",
            "%(count)d tasks queued to run now; a live scheduler process will start them "
            "within about a second.",
            count,
        )
        return text % {"count": count}, messages.SUCCESS
    text = ngettext(
        "%(count)d task queued to run now, but no scheduler process is running: it waits "
        "until one is started (manage.py runscheduler).",
        "%(count)d tasks queued to run now, but no scheduler process is running: they wait "
        "until one is started (manage.py runscheduler).",
        count,
    )
    return text % {"count": count}, messages.WARNING


def retention_defaults() -> str:
    """The retention fieldset's note: what it limits, and what an empty box means now."""
    conf = get_settings()
    days, count = conf.RUN_RETENTION_DAYS, conf.RUN_RETENTION_COUNT
    age = ngettext("%(n)d day", "%(n)d days", days) % {"n": days} if days else gettext("forever")
    most = (
        ngettext("the newest %(n)d run", "the newest %(n)d runs", count) % {"n": count}
        if count
        else gettext("any number")
    )
    return gettext(
        "How long this task's finished runs (its run history) are kept. Runs past these "
        "limits are deleted in small batches by the scheduler and by manage.py prunetaskruns. "
        "Left empty, these follow the project's settings: runs are kept %(age)s, %(most)s."
    ) % {"age": age, "most": most}


class ActiveFilter(admin.SimpleListFilter):
    """Active or not, with the tasks the scheduler switched off (failure limit) on their own."""

    title = _("active")
    parameter_name = "active"
    DEACTIVATED = "deactivated"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, Any]]:
        return [
            ("1", _("Yes")),
            ("0", _("No")),
            (self.DEACTIVATED, _("Switched off by the scheduler")),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Task]) -> QuerySet[Task]:
        value = self.value()
        if value == self.DEACTIVATED:
            return queryset.filter(active=False).exclude(inactive_reason="")
        if value in ("0", "1"):
            return queryset.filter(active=value == "1")
        return queryset


class LastRunStatusFilter(admin.SimpleListFilter):
    """Filter on the last run's status, with the run statuses' labels and "never run"."""

    title = _("last run status")
    parameter_name = "last_run_status"
    NEVER = "none"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, Any]]:
        return [*TaskRun.Status.choices, (self.NEVER, _("Never run"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Task]) -> QuerySet[Task]:
        value = self.value()
        if value == self.NEVER:
            return queryset.filter(last_run_status="")
        if value:
            return queryset.filter(last_run_status=value)
        return queryset


def refusing_run_now(form: type[ModelForm[Any]], previous: Task | None) -> type[ModelForm[Any]]:
    """``form``, refusing a schedule that would make the task run now (no run permission)."""

    class RunGuardedForm(form):  # type: ignore[valid-type, misc]
        def _post_clean(self) -> None:
            super()._post_clean()
            if self._errors:
                return  # refused already; the instance may hold half-cleaned values
            fire = makes_due_now(self.instance, previous)
            if fire is None:
                return
            # On the field that made it due: "active" when only that was switched on.
            only_switched_on = previous is not None and all(
                getattr(self.instance, name) == getattr(previous, name)
                for name in ("trigger", "trigger_config", "misfire_grace_time")
            )
            field = "active" if only_switched_on else "trigger_config"
            self.add_error(field if field in self.fields else None, run_permission_message(fire))

    return RunGuardedForm


def _saved_schedule(obj: Task) -> Task:
    """A detached Task holding the schedule as stored (the form may have changed ``obj``)."""
    saved: Task | None = getattr(obj, "_dts_saved_schedule", None)
    return saved if saved is not None else obj


def _keep_what_the_scheduler_wrote(obj: Task, form: Any) -> None:
    """Fields the scheduler may have written since the page was loaded (a run counted down,
    the task switched off) keep the stored value unless the user changed them.

    Read under the task's lock (the admin saves in a transaction), so no claim writes between
    this read and the save.
    """
    keep = [
        name
        for name in TaskForm.SCHEDULER_WRITES
        if name in form.fields and name not in form.changed_data
    ]
    if "active" in keep:
        keep += ["paused_by", "paused_at", "consecutive_failures"]
    if not keep:
        return
    using = router.db_for_write(Task)
    take_write_lock(Task, using)
    stored = Task.objects.using(using).select_for_update().filter(pk=obj.pk).values(*keep).first()
    for name, value in (stored or {}).items():
        setattr(obj, name, value)


def _switched_on(task: Task) -> Task:
    switched = copy.copy(task)
    switched.active = True
    return switched


@admin.register(Task)
class TaskAdmin(AuditedAdminMixin, DeclaredTaskAdminMixin, admin.ModelAdmin):
    form = TaskForm
    # Fits 1280 px with the nav sidebar and the filters open: the last run's status and time
    # share a column, and long values wrap.
    list_display = ["task_name", "schedule", "active_state", "next_run", "last_run"]
    list_display_links = ["task_name"]
    list_filter = [ActiveFilter, "trigger", LastRunStatusFilter, "source"]
    search_fields = ["name", "func", "description"]
    actions = ["run_now", "activate_tasks", "deactivate_tasks"]
    change_list_template = "admin/django_tasks_sched/task/change_list.html"

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # The banner: which scheduler processes are alive, or a warning that none is.
        context = {
            "scheduler_processes": list(SchedulerProcess.objects.alive()[:20]),
            "firing": firing(),
        }
        return super().changelist_view(request, {**context, **(extra_context or {})})

    readonly_fields = [
        "declaration",
        "schedule_in_words",
        "upcoming_fire_times",
        "does_it_fire",
        "consecutive_failures",
        "pause_note",
        "fires_not_run",
        "source",
        "source_ref",
        "created",
        "updated",
        "next_run",
        "last_run",
        "recent_runs",
        "recent_changes",
        "alerts_now",
    ]

    class Media:
        css = {"all": ["django_tasks_sched/admin.css"]}

    def get_fieldsets(self, request: HttpRequest, obj: Task | None = None) -> Any:
        schedule = ["trigger", "trigger_config", "active", "inactive_reason"]
        if obj is not None:
            schedule[2:2] = ["schedule_in_words", "upcoming_fire_times", "does_it_fire"]
            if not obj.active:
                schedule.append("pause_note")
        task = ["name", "description", "func", "args", "kwargs"]
        if obj is not None and obj.source != Task.Source.DATABASE:
            task.insert(0, "declaration")  # first: it says which fields below are read-only
        fieldsets: list[tuple[Any, dict[str, Any]]] = [
            (_("Task"), {"fields": task}),
            (_("Schedule"), {"fields": schedule}),
            (
                _("Execution"),
                {
                    "fields": [
                        *options.EXECUTION,
                        *options.POLICIES,
                        *(["fires_not_run"] if obj is not None else []),
                    ]
                },
            ),
            (
                _("Workers"),
                {
                    "fields": list(options.WORKERS),
                    "classes": ["collapse"],
                    "description": _(
                        "Hand each run to the workers of a django.tasks backend (an alias in the "
                        "TASKS setting) instead of running it in runscheduler."
                    ),
                },
            ),
            (
                _("Retries and failures"),
                {
                    "fields": [
                        *options.RETRIES,
                        *(["consecutive_failures"] if obj is not None else []),
                    ]
                },
            ),
            (
                _("Alerts"),
                {
                    "fields": [*alerts.FIELDS, *(["alerts_now"] if obj is not None else [])],
                    "description": alerts.alert_defaults(),
                },
            ),
            (
                _("Retention"),
                {
                    "fields": list(options.HISTORY),
                    "classes": ["collapse"],
                    "description": retention_defaults(),
                },
            ),
        ]
        if obj is not None:
            fieldsets += [
                (_("Status"), {"fields": ["next_run", "last_run"]}),
                (_("Run history"), {"fields": ["recent_runs"]}),
                # Old values too (a secret since removed from kwargs): only for those who
                # may read the trail itself.
                *(
                    [(_("Changes"), {"fields": ["recent_changes"]})]
                    if request.user.has_perm("django_tasks_sched.view_taskchange")
                    else []
                ),
                (
                    _("Origin"),
                    {
                        "fields": ["source", "source_ref", "created", "updated"],
                        "description": _(
                            "A task declared in code or in pyproject.toml is kept in step with "
                            "its declaration when the tasks are synced; change it there."
                        ),
                    },
                ),
            ]
        return fieldsets

    def get_object(
        self, request: HttpRequest, object_id: str, from_field: str | None = None
    ) -> Task | None:
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            # The preview describes the saved row; a rejected POST edits ``obj`` in place.
            obj._dts_saved_schedule = Task(
                name=obj.name,
                trigger=obj.trigger,
                trigger_config=copy.deepcopy(obj.trigger_config),
                active=obj.active,
                misfire_grace_time=obj.misfire_grace_time,
                created_at=obj.created_at,  # an interval counts from it
            )
        return obj

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        # "Next run" is shown through a method, which has no model field to take help text
        # from: the form's Meta lends it the field's own.
        help_texts = {"next_run": Task._meta.get_field("next_run_time").help_text}
        kwargs["help_texts"] = {**help_texts, **kwargs.get("help_texts", {})}
        form = super().get_form(request, obj, change, **kwargs)
        if self.has_run_permission(request):
            return form
        # A schedule that fires at once is a "Run now" by another route.
        return refusing_run_now(form, None if obj is None else _saved_schedule(obj))

    # -- columns and read-only fields ---------------------------------------------------------

    @admin.display(description=Task._meta.get_field("name").verbose_name, ordering="name")
    def task_name(self, obj: Task) -> SafeString:
        # A dotted name ("reports.invoices.nightly") wraps at its dots in a narrow column.
        return display.breakable(obj.name)

    next_run = display.time_field(Task, "next_run_time")
    created = display.time_field(Task, "created_at")
    updated = display.time_field(Task, "updated_at")

    @admin.display(description=_("schedule"))
    def schedule(self, obj: Task) -> str | SafeString:
        # describe_schedule() words invalid configs itself; this guard keeps a bug in it
        # from taking the whole list down.
        try:
            return obj.describe_schedule()
        except Exception as exc:
            logger.exception("Could not describe the schedule of task %r", obj.name)
            return display.problem(str(exc) or type(exc).__name__)

    @admin.display(description=_("active"), ordering="active")
    def active_state(self, obj: Task) -> SafeString:
        # The admin's own yes/no icon, as for a boolean column.
        icon = format_html(
            '<img src="{}" alt="{}">',
            static(f"admin/img/icon-{'yes' if obj.active else 'no'}.svg"),
            obj.active,
        )
        if obj.active:
            return icon
        if obj.paused_by:
            # Paused by a person: who, and why on hover.
            return format_html(
                # A user name can be long: this badge may wrap.
                '{} <span class="dts-badge dts-badge-wrap" title="{}">{}</span>',
                icon,
                obj.inactive_reason,
                gettext("paused by %(user)s") % {"user": obj.paused_by},
            )
        if not obj.inactive_reason:
            return icon
        # Switched off by the scheduler (failure limit, no runs left) or a sync: say so.
        return format_html(
            '{} <span class="dts-badge dts-badge-red" title="{}">{}</span>',
            icon,
            obj.inactive_reason,
            gettext("switched off"),
        )

    @admin.display(description=_("switched off"))
    def pause_note(self, obj: Task) -> str:
        """Who switched the task off and when: a person, or the scheduler."""
        when = time_text(obj.paused_at) if obj.paused_at else "?"
        if obj.paused_by:
            return gettext("Paused by %(user)s at %(when)s.") % {
                "user": obj.paused_by,
                "when": when,
            }
        if obj.paused_at:
            return gettext("Switched off by the scheduler at %(when)s.") % {"when": when}
        return gettext("Switched off.")

    @admin.display(description=_("does it fire?"))
    def does_it_fire(self, obj: Task) -> SafeString:
        """The answer of ``manage.py explaintask``: what keeps the task from firing, if anything."""
        try:
            answer = explain(obj)
        except Exception as exc:  # a row saved past validation: said, never a 500
            logger.exception("Could not explain task %r", obj.name)
            return format_html('<span class="dts-problem">{}</span>', exc)
        items = format_html_join(
            "",
            '<li class="{}">{}</li>',
            [
                ("dts-blocking" if finding.blocking else "", finding.message)
                for finding in answer.findings
            ],
        )
        return format_html(
            '<div class="dts-explain"><p>{}</p><ul>{}</ul></div>', answer.summary(), items
        )

    @admin.display(description=_("fires not run"))
    def fires_not_run(self, obj: Task) -> SafeString:
        """The task's fires that did not run, by cause, over the last day, week and month."""
        now = timezone.now()
        labels = [gettext("last 24 hours"), gettext("last 7 days"), gettext("last 30 days")]
        counts = fire_counts(obj, *(now - timedelta(days=days) for days in (1, 7, 30)))
        windows = zip(labels, counts, strict=True)
        head = format_html_join(
            "",
            "<th>{}</th>",
            [
                (label,)
                for label in (
                    gettext("since"),
                    gettext("missed (late)"),
                    gettext("skipped (overlap)"),
                    gettext("dropped (buffer limit)"),
                    gettext("coalesced"),
                    gettext("replaced (cancel_other)"),
                )
            ],
        )
        rows = format_html_join(
            "",
            "<tr><th>{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            [(label, *counts) for label, counts in windows],
        )
        return format_html(
            '<table class="dts-counters"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>',
            head,
            rows,
        )

    @admin.display(description=_("schedule in words"))
    def schedule_in_words(self, obj: Task) -> str | SafeString:
        return self.schedule(_saved_schedule(obj))

    @admin.display(description=_("next fire times"))
    def upcoming_fire_times(self, obj: Task) -> str | SafeString:
        saved = _saved_schedule(obj)
        try:
            times = saved.next_fire_times(count=PREVIEW_FIRES)
        except TaskConfigError as exc:
            return display.problem(exc.message)
        except Exception as exc:
            logger.exception("Could not compute the fire times of task %r", obj.name)
            return display.problem(str(exc) or type(exc).__name__)
        if not times:
            return gettext("None: the schedule will not fire again.")
        zone = display.display_zone(saved.trigger_config)
        listing = display.fire_times_list(times, zone)
        if not saved.active:
            note = gettext("The task is inactive; these are the times it would fire at.")
            return format_html('<p class="dts-note">{}</p>{}', note, listing)
        return listing

    @admin.display(description=_("last run"), ordering="last_run_at")
    def last_run(self, obj: Task) -> str | SafeString:
        """The last run's status badge and when it started."""
        if not obj.last_run_status and obj.last_run_at is None:
            return gettext("Never run")
        when = display.show_time(obj.last_run_at) if obj.last_run_at else ""
        return format_html("{} {}", display.status_badge(obj.last_run_status), when)

    @admin.display(description=_("raised now"))
    def alerts_now(self, obj: Task) -> SafeString:
        return alerts.alerts_now(obj)

    @admin.display(description=_("recent runs"))
    def recent_runs(self, obj: Task) -> SafeString:
        # Sliced and narrowed: a task may have a million runs; the page needs ten rows.
        runs = list(
            obj.runs.only(
                "id",
                "status",
                "origin",
                "attempt",
                "scheduled_for",
                "enqueued_at",
                "started_at",
                "finished_at",
                "error",
                "progress",
                "meta",
                "worker_id",
            ).order_by("-enqueued_at", "-id")[:RECENT_RUNS]
        )
        site = self.admin_site.name
        changelist = reverse(f"{site}:django_tasks_sched_taskrun_changelist")
        rows = [
            {
                "run": run,
                "url": reverse(f"{site}:django_tasks_sched_taskrun_change", args=[quote(run.pk)]),
                "enqueued": display.show_time(run.enqueued_at),
                "badge": display.status_badge(run.status),
                "duration": display.format_duration(run.duration),
                "lateness": display.between(run.scheduled_for, run.started_at),
                "progress": display.progress_bar(run.progress),
                "meta": display.pretty_json(run.meta) if run.meta else "",
                "worker": display.breakable(run.worker_id) if run.worker_id else "-",
            }
            for run in runs
        ]
        return render_to_string(
            "admin/django_tasks_sched/task/recent_runs.html",
            {
                "rows": rows,
                "all_url": f"{changelist}?{urlencode({'task__id__exact': obj.pk})}",
            },
        )

    # -- saving -------------------------------------------------------------------------------

    def save_model(self, request: HttpRequest, obj: Task, form: Any, change: bool) -> None:
        if change:
            _keep_what_the_scheduler_wrote(obj, form)
        if change and "active" in form.changed_data and obj.active:
            # Ticking "active" back on means what resume() means: a fresh start.
            obj.inactive_reason = ""
            obj.consecutive_failures = 0
        super().save_model(request, obj, form, change)

    # -- actions ------------------------------------------------------------------------------

    def has_run_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        """Whether the user may queue runs ("Can run a task now")."""
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.run_task")

    @admin.action(description=_("Run selected tasks now"), permissions=["run"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        count = 0
        for task in queryset:
            count += self._run_now(request, task)
        if count:
            self.message_user(request, *run_now_message(count))

    def _run_now(self, request: HttpRequest, task: Task) -> int:
        """Queue a run respecting the task's overlap policy; 1 if queued, 0 if skipped."""
        run = task.run_now(origin=TaskRun.Origin.MANUAL, respect_overlap=True)
        if run.status == TaskRun.Status.MISSED:
            self.message_user(
                request,
                gettext("%(task)s was not run: %(reason)s") % {"task": task, "reason": run.error},
                messages.WARNING,
            )
            return 0
        self.log_change(request, task, gettext("Queued a run now."))
        return 1

    @admin.action(description=_("Activate selected tasks"), permissions=["change"])
    def activate_tasks(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        self._set_active(request, queryset, active=True)

    @admin.action(description=_("Deactivate selected tasks"), permissions=["change"])
    def deactivate_tasks(
        self, request: HttpRequest, queryset: QuerySet[Task]
    ) -> TemplateResponse | None:
        # First a page that asks why (kept in inactive_reason), as delete asks to confirm.
        form = PauseForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            self._set_active(request, queryset, active=False, reason=form.cleaned_data["reason"])
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Deactivate tasks"),
            "opts": self.opts,
            "tasks": list(queryset),
            "form": form,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/django_tasks_sched/task/deactivate.html", context)

    def _set_active(
        self, request: HttpRequest, queryset: QuerySet[Task], *, active: bool, reason: str = ""
    ) -> None:
        # One save per task, through pause()/resume(): they recompute next_run_time, which a
        # bare UPDATE would leave stale.
        unchanged = queryset.filter(active=active).count()
        changed = refused = 0
        may_run = self.has_run_permission(request)
        for task in queryset.filter(active=not active):
            if active and not may_run and makes_due_now(_switched_on(task), task) is not None:
                refused += 1
                continue
            if active:
                try:
                    task.resume()
                except TaskConfigError as exc:
                    self.message_user(
                        request,
                        gettext("%(task)s was not activated: %(reason)s")
                        % {"task": task, "reason": exc.message},
                        messages.WARNING,
                    )
                    continue
            else:
                task.pause(reason, by=request.user.get_username())
            self.log_change(request, task, [{"changed": {"fields": ["active"]}}])
            changed += 1
        if active:
            text = ngettext("%(count)d task activated.", "%(count)d tasks activated.", changed) % {
                "count": changed
            }
        else:
            text = ngettext(
                "%(count)d task deactivated.", "%(count)d tasks deactivated.", changed
            ) % {"count": changed}
        self.message_user(request, text, messages.SUCCESS if changed else messages.INFO)
        if refused:
            text = ngettext(
                "%(count)d task was not activated: it would run at once, and making a task run "
                "now needs the permission to run tasks.",
                "%(count)d tasks were not activated: they would run at once, and making a task "
                "run now needs the permission to run tasks.",
                refused,
            ) % {"count": refused}
            self.message_user(request, text, messages.WARNING)
        if unchanged:
            if active:
                text = ngettext(
                    "%(count)d task was already active.",
                    "%(count)d tasks were already active.",
                    unchanged,
                ) % {"count": unchanged}
            else:
                text = ngettext(
                    "%(count)d task was already inactive.",
                    "%(count)d tasks were already inactive.",
                    unchanged,
                ) % {"count": unchanged}
            self.message_user(request, text, messages.INFO)

    # -- the "Run now" button -----------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        return [
            # Before the object URLs: "<path:object_id>/" would take "preview/" too.
            path(
                "preview/",
                self.admin_site.admin_view(partial(preview_view, self)),
                name="{}_{}_preview".format(*info),
            ),
            path(
                "dashboard/",
                self.admin_site.admin_view(partial(dashboard_view, self)),
                name="{}_{}_dashboard".format(*info),
            ),
            path(
                "<path:object_id>/run-now/",
                self.admin_site.admin_view(self.run_now_view),
                name="{}_{}_run_now".format(*info),
            ),
            path(
                "<path:object_id>/backfill/",
                self.admin_site.admin_view(self.backfill_view),
                name="{}_{}_backfill".format(*info),
            ),
            *super().get_urls(),
        ]

    def backfill_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """A range of the schedule to backfill: preview its fire times, then queue the runs."""
        task = self.get_object(request, unquote(object_id))
        if task is None:
            raise Http404
        if not (self.has_view_permission(request, task) and self.has_run_permission(request)):
            raise PermissionDenied
        form = BackfillForm(request.POST if request.method == "POST" else None)
        preview: list[Any] | None = None
        if form.is_valid():
            start, end = form.cleaned_data["start"], form.cleaned_data["end"]
            try:
                if "backfill" in request.POST:
                    runs = task.backfill(start, end)
                    self.log_change(
                        request,
                        task,
                        gettext("Backfilled %(count)d run(s).") % {"count": len(runs)},
                    )
                    text = ngettext(
                        "%(count)d run queued for the range.",
                        "%(count)d runs queued for the range.",
                        len(runs),
                    ) % {"count": len(runs)}
                    self.message_user(request, text, messages.SUCCESS)
                    return redirect(
                        reverse(
                            f"{self.admin_site.name}:{self.opts.app_label}_"
                            f"{self.opts.model_name}_change",
                            args=[quote(task.pk)],
                        )
                    )
                preview = fire_times(task, start, end)
            except TaskConfigError as exc:
                field = exc.field if exc.field in form.fields else None
                form.add_error(field, exc.message)
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Backfill %(task)s") % {"task": task},
            "opts": self.opts,
            "task": task,
            "form": form,
            "schedule": self.schedule(task),
            "preview": preview,
            "shown": [display.show_time(when) for when in (preview or [])[:PREVIEW_SHOWN]],
            "more": max(0, len(preview or []) - PREVIEW_SHOWN),
            "zone": timezone.get_current_timezone_name(),
        }
        return TemplateResponse(request, "admin/django_tasks_sched/task/backfill.html", context)

    def run_now_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST only: queue one run of the task and go back to its change page."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        task = self.get_object(request, unquote(object_id))
        if task is None:
            raise Http404
        if not (self.has_view_permission(request, task) and self.has_run_permission(request)):
            raise PermissionDenied
        if self._run_now(request, task):
            self.message_user(request, *run_now_message(1))
        return redirect(
            reverse(
                f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_change",
                args=[quote(task.pk)],
            )
        )

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "has_run_permission": self.has_run_permission(request),
        }
        return super().change_view(request, object_id, form_url, extra_context)
