"""The two tables: ``Task`` (what runs and when: the source of truth) and ``TaskRun`` (history)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.core.validators import (
    MaxValueValidator,
    MinValueValidator,
    ProhibitNullCharactersValidator,
)
from django.db import models, router, transaction
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from django_tasks_sched import audit, bounds
from django_tasks_sched.bounds import BoundedJSONField
from django_tasks_sched.changes import schedule_changed
from django_tasks_sched.exceptions import TaskConfigError, TaskRunFailed, TaskRunNotFinished

if TYPE_CHECKING:
    from django_tasks_sched.apps import TasksSchedConfig

logger = logging.getLogger(__name__)

#: Text every database stores: NUL (PostgreSQL refuses it) and lone surrogates (no UTF-8 form)
#: become a field error, not a DataError on save.
NO_NUL: list[Callable[[Any], None]] = [
    ProhibitNullCharactersValidator(),
    bounds.StorableTextValidator(),
]

#: Fields whose change alters the schedule, so ``next_run_time`` must be recomputed.
SCHEDULE_FIELDS = frozenset({"trigger", "trigger_config", "active"})


def anchored_config(trigger: str, config: Any, created_at: datetime | None) -> Any:
    """``config`` with an interval's default start: the task's creation, to the second.

    Every scheduler process must compute the same fire times for a fire to be claimed once;
    APScheduler's default (when the job was added) differs between processes and restarts.
    """
    if trigger != Task.Trigger.INTERVAL or not isinstance(config, dict) or config.get("start_date"):
        return config
    anchor = (created_at or timezone.now()).replace(microsecond=0)
    return {**config, "start_date": anchor.isoformat()}


#: ``QuerySet.bulk_create()``'s arguments after ``objs``, in order.
BULK_CREATE_ARGUMENTS = (
    "batch_size",
    "ignore_conflicts",
    "update_conflicts",
    "update_fields",
    "unique_fields",
)


class TaskQuerySet(models.QuerySet["Task"]):
    """Every bulk write nudges the scheduler processes: they get no signal for these."""

    def active(self) -> TaskQuerySet:
        return self.filter(active=True)

    def named(self, name: str) -> TaskQuerySet:
        """The task called ``name`` (none for a name no task can have, such as one with NUL)."""
        # PostgreSQL refuses NUL in a query parameter: a DataError instead of "no such task".
        return self.none() if "\x00" in name else self.filter(name=name)

    def on_backend(self) -> TaskQuerySet:
        """Tasks whose runs are handed to a ``django.tasks`` backend's workers."""
        return self.exclude(backend="")

    def inactive(self) -> TaskQuerySet:
        return self.filter(active=False)

    def _write_alias(self) -> str:
        """The database this queryset's writes go to (as ``QuerySet.update()`` picks it)."""
        return self._db or router.db_for_write(self.model)  # type: ignore[attr-defined, unused-ignore]

    def update(self, **kwargs: Any) -> int:
        # updated_at is what incremental reconcile reads, so bulk updates must move it too.
        kwargs.setdefault("updated_at", timezone.now())
        # A new schedule gets its next fire, as save() gives it: the old one would be wrong,
        # and a scheduler's window trusts it (a task moved from yearly to every minute would
        # wait a year). Read before the UPDATE, which may make the filter match other rows.
        recompute = bool(SCHEDULE_FIELDS & kwargs.keys()) and "next_run_time" not in kwargs
        pks = list(self.values_list("pk", flat=True)) if recompute else []
        if audit.is_audited(kwargs):
            using = self._write_alias()
            # The old values are read, and the record written, in the UPDATE's transaction.
            with audit.writing(using):
                record = audit.before_update(self.using(using), kwargs)
                count = super().update(**kwargs)
                if count:  # nothing changed, nothing to record (another process got there)
                    record()
        else:
            count = super().update(**kwargs)
        if count and pks:
            self._store_next_run_times(pks)
        if count:
            schedule_changed(self.db)
        return count

    update.alters_data = True  # type: ignore[attr-defined]

    def _store_next_run_times(self, pks: list[int]) -> None:
        """Compute and store the next fire of each of these tasks, a chunk at a time."""
        from django_tasks_sched.rawsql import update_rows

        using = self._write_alias()
        columns = ("pk", "trigger", "trigger_config", "active", "created_at", "name")
        for start in range(0, len(pks), 2000):
            chunk = Task.objects.using(using).filter(pk__in=pks[start : start + 2000])
            rows = [[task.pk, task.compute_next_run_time()] for task in chunk.only(*columns)]
            with transaction.atomic(using=using):
                update_rows(Task, ["next_run_time"], rows, using)

    def switch_off(self, reason: str) -> int:
        """Deactivate these tasks for the scheduler's ``reason`` (no person paused them)."""
        return self.filter(active=True).update(
            active=False,
            inactive_reason=reason[:255],
            paused_by="",
            paused_at=timezone.now(),
            next_run_time=None,
        )

    switch_off.alters_data = True  # type: ignore[attr-defined]

    def update_quietly(self, **kwargs: Any) -> int:
        """UPDATE without moving ``updated_at`` or the change stamp (scheduler bookkeeping)."""
        return super().update(**kwargs)

    update_quietly.alters_data = True  # type: ignore[attr-defined]

    def delete(self) -> tuple[int, dict[str, int]]:
        using = self._write_alias()
        with audit.writing(using):
            record = audit.before_delete(self.using(using))
            result = super().delete()
            if result[0]:
                record()
        if result[0]:
            schedule_changed(self.db)
        return result

    delete.alters_data = True  # type: ignore[attr-defined]

    # django-stubs 5.2 and 6.1 disagree on this signature's types; the ignores cover both.
    def bulk_create(  # type: ignore[override, unused-ignore]
        self, objs: Iterable[Task], *args: Any, **kwargs: Any
    ) -> list[Task]:
        # bulk_create skips save(), so next_run_time is filled in here.
        objs = list(objs)
        for obj in objs:
            obj.next_run_time = obj.compute_next_run_time()
        options = {**dict(zip(BULK_CREATE_ARGUMENTS, args, strict=False)), **kwargs}
        using = self._write_alias()
        with audit.writing(using):
            existed = {}
            if options.get("ignore_conflicts") or options.get("update_conflicts"):
                existed = audit.existing_rows(objs, options.get("update_fields"), using)
            created: list[Task] = super().bulk_create(objs, **options)  # type: ignore[arg-type, assignment, unused-ignore]
            audit.after_bulk_create(created, existed, using)
        if created:
            schedule_changed(self.db)
        return created


class Task(models.Model):
    """One scheduled job: the callable, its arguments and its trigger."""

    class Trigger(models.TextChoices):
        DATE = "date", _("Once, at a date")
        INTERVAL = "interval", _("Interval")
        CRON = "cron", _("Cron")

    class Source(models.TextChoices):
        """Where the task was declared; code-owned sources keep their fields in step."""

        DATABASE = "database", _("Database (admin, shell, API)")
        DECORATOR = "decorator", _("@scheduler.task decorator")
        SETTINGS = "settings", _("TASKS_SCHED['TASKS'] setting")
        PYPROJECT = "pyproject", _("pyproject.toml [tool.scheduled]")
        MIGRATION = "migration", _("Data migration")

    class Overlap(models.TextChoices):
        """What a fire does when ``max_instances`` runs of its task are already running."""

        SKIP = "skip", _("Skip the fire (recorded missed)")
        BUFFER_ONE = "buffer_one", _("Buffer one fire; skip the rest")
        BUFFER_ALL = "buffer_all", _("Buffer every fire, run them in order")
        CANCEL_OTHER = "cancel_other", _("Cancel the oldest running run, run the fire")

    #: Sources that ``synctasks`` keeps in step with their declaration (and retires).
    DECLARED_SOURCES = frozenset({Source.DECORATOR, Source.SETTINGS, Source.PYPROJECT})

    name = models.CharField(
        _("name"),
        max_length=200,
        unique=True,
        validators=NO_NUL,
        help_text=_("Unique identity of the task."),
    )
    description = models.TextField(_("description"), blank=True, validators=NO_NUL)
    func = models.CharField(
        _("callable"),
        max_length=255,
        validators=NO_NUL,
        help_text=_('Dotted path of the function to run, e.g. "myapp.jobs:cleanup".'),
    )
    args = BoundedJSONField(
        _("positional arguments"), default=list, blank=True, help_text=_("A JSON list.")
    )
    kwargs = BoundedJSONField(
        _("keyword arguments"), default=dict, blank=True, help_text=_("A JSON object.")
    )
    trigger = models.CharField(_("trigger"), max_length=16, choices=Trigger.choices)
    trigger_config = BoundedJSONField(
        _("trigger configuration"),
        default=dict,
        blank=True,
        help_text=_(
            'A JSON object of the trigger\'s parameters, e.g. {"minutes": 15} or '
            '{"crontab": "0 9 * * mon-fri", "timezone": "Europe/Berlin"}.'
        ),
    )
    active = models.BooleanField(
        _("active"), default=True, help_text=_("An inactive task is never fired by its schedule.")
    )
    inactive_reason = models.CharField(
        _("why inactive"),
        max_length=255,
        blank=True,
        validators=NO_NUL,
        help_text=_(
            "Why it is inactive: said by the person who paused it, or by the scheduler "
            "(repeated failures, no runs left)."
        ),
    )
    paused_by = models.CharField(
        _("paused by"),
        max_length=150,
        blank=True,
        editable=False,
        help_text=_("Who paused it; empty when the scheduler switched it off."),
    )
    paused_at = models.DateTimeField(_("paused at"), null=True, blank=True, editable=False)
    max_instances = models.PositiveIntegerField(
        _("max instances"),
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(bounds.MAX_COUNT)],
        help_text=_("Most concurrent runs of this task, across every scheduler process."),
    )
    overlap = models.CharField(
        _("overlap"),
        max_length=16,
        choices=Overlap.choices,
        default=Overlap.SKIP,
        help_text=_("What a fire does when max_instances runs of the task are still running."),
    )
    remaining_runs = models.PositiveIntegerField(
        _("remaining runs"),
        null=True,
        blank=True,
        validators=[MaxValueValidator(bounds.MAX_COUNT)],
        help_text=_(
            "Fires of the schedule left; each claimed fire uses one, and at 0 the task is "
            "switched off. Empty: no limit."
        ),
    )
    coalesce = models.BooleanField(
        _("coalesce"),
        default=True,
        help_text=_("When several fires are overdue at once, run only one of them."),
    )
    misfire_grace_time = models.PositiveIntegerField(
        _("misfire grace time"),
        null=True,
        blank=True,
        default=60,
        # APScheduler refuses 0: the smallest grace is one second (empty: no limit).
        validators=[MinValueValidator(1), MaxValueValidator(bounds.MAX_DURATION)],
        help_text=_(
            "Seconds a fire may start late and still run; later fires are recorded as missed. "
            "Empty: no limit."
        ),
    )
    timeout = models.PositiveIntegerField(
        _("timeout"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(bounds.MAX_DURATION)],
        help_text=_("Seconds a run may take before it is marked timed out. Empty: no limit."),
    )
    heartbeat_timeout = models.PositiveIntegerField(
        _("heartbeat timeout"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(bounds.MAX_DURATION)],
        help_text=_(
            "Seconds a run may go without a heartbeat from its function "
            "(current_run().heartbeat() or update()) before it is ended as stuck and retried. "
            "Empty: off."
        ),
    )
    backend = models.CharField(
        _("backend"),
        max_length=100,
        blank=True,
        validators=NO_NUL,
        help_text=_(
            "Alias of a django.tasks backend in the TASKS setting: its workers run this task's "
            "runs. Empty: runscheduler runs them."
        ),
    )
    queue_name = models.CharField(
        _("queue"),
        max_length=100,
        default="default",
        validators=NO_NUL,
        help_text=_("The backend's queue the runs are enqueued on."),
    )
    priority = models.IntegerField(
        _("priority"),
        default=0,
        validators=[
            MinValueValidator(bounds.MIN_PRIORITY),
            MaxValueValidator(bounds.MAX_PRIORITY),
        ],
        help_text=_("Handed to the backend: from -100 (last) to 100 (first)."),
    )
    max_retries = models.PositiveIntegerField(
        _("retries"),
        default=0,
        help_text=_("How many times a failed run is tried again."),
        validators=[MaxValueValidator(bounds.MAX_COUNT)],
    )
    retry_delay = models.PositiveIntegerField(
        _("retry delay"),
        default=0,
        help_text=_("Seconds to wait before the first retry."),
        validators=[MaxValueValidator(bounds.MAX_DURATION)],
    )
    retry_backoff = models.BooleanField(
        _("exponential backoff"),
        default=False,
        help_text=_("Double the delay for each further retry, with full jitter."),
    )
    retry_backoff_max = models.PositiveIntegerField(
        _("longest retry delay"),
        null=True,
        blank=True,
        help_text=_("Cap on the backoff delay in seconds. Empty: no cap."),
        validators=[MaxValueValidator(bounds.MAX_DURATION)],
    )
    max_consecutive_failures = models.PositiveIntegerField(
        _("failure limit"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(bounds.MAX_COUNT)],
        help_text=_("Deactivate the task after this many failed runs in a row. Empty: never."),
    )
    consecutive_failures = models.PositiveIntegerField(
        _("consecutive failures"), default=0, editable=False
    )
    keep_runs_days = models.PositiveIntegerField(
        _("keep runs for (days)"),
        null=True,
        blank=True,
        help_text=_(
            "Delete this task's finished runs older than this many days. Empty: the "
            "RUN_RETENTION_DAYS setting; 0: keep them however old."
        ),
        validators=[MaxValueValidator(bounds.MAX_INTERVAL.days)],
    )
    keep_runs_count = models.PositiveIntegerField(
        _("keep at most (runs)"),
        null=True,
        blank=True,
        help_text=_(
            "Keep only this many of this task's finished runs, the newest. Empty: the "
            "RUN_RETENTION_COUNT setting; 0: no limit."
        ),
        validators=[MaxValueValidator(bounds.MAX_COUNT)],
    )
    alert_on_failure = models.BooleanField(
        _("alert on failure"),
        null=True,
        blank=True,
        help_text=_(
            "Alert when a run fails, times out or is interrupted, and again when it succeeds. "
            "Empty: the ALERTS setting's default."
        ),
    )
    alert_on_missed = models.BooleanField(
        _("alert on a missed fire"),
        null=True,
        blank=True,
        help_text=_("Alert when a fire is recorded missed. Empty: the ALERTS setting's default."),
    )
    alert_no_success_minutes = models.PositiveIntegerField(
        _("alert after minutes without success"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(bounds.MAX_DURATION // 60)],
        help_text=_(
            "Dead man's switch: alert when no run has succeeded for this many minutes. "
            "Empty: the ALERTS setting's default (off unless set)."
        ),
    )
    source = models.CharField(
        _("declared in"), max_length=16, choices=Source.choices, default=Source.DATABASE
    )
    source_ref = models.CharField(
        _("declaration"),
        max_length=255,
        blank=True,
        help_text=_("Where in code or config the task is declared, e.g. a file and table."),
    )
    declared_fields = models.JSONField(
        _("declared fields"),
        default=list,
        blank=True,
        editable=False,
        help_text=_(
            "Fields set by the task's declaration in code or config: synctasks keeps them in "
            "step, and the admin shows them read-only."
        ),
    )
    retired_at = models.DateTimeField(
        _("retired"),
        null=True,
        blank=True,
        editable=False,
        help_text=_(
            "When synctasks deactivated the task because its declaration disappeared; cleared "
            "when the declaration comes back or the task is switched on or off by hand."
        ),
    )
    next_run_time = models.DateTimeField(
        _("next run"),
        null=True,
        blank=True,
        editable=False,
        db_index=True,
        help_text=_("Next fire time; empty when inactive or finished."),
    )
    last_run_at = models.DateTimeField(_("last run"), null=True, blank=True, editable=False)
    last_run_status = models.CharField(
        _("last run status"), max_length=16, blank=True, editable=False
    )
    #: When a run of the task last succeeded (kept with the last-run summary: the dead man's
    #: switch and the dashboard read it, whatever the run history's retention deleted).
    last_success_at = models.DateTimeField(_("last success"), null=True, blank=True, editable=False)
    # Not auto_now_add: the value must exist before the first save, because an interval
    # without a start_date counts from it (see anchored_config).
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = TaskQuerySet.as_manager()

    class Meta:
        verbose_name = _("task")
        verbose_name_plural = _("tasks")
        ordering = ["name"]
        permissions = [
            ("run_task", _("Can run a task now")),
            ("pause_scheduler", _("Can pause and resume firing in every scheduler process")),
        ]
        indexes = [
            models.Index(fields=["active", "next_run_time"], name="dts_task_active_next"),
            # The incremental reconcile reads the rows changed since its last pass: without
            # this, a scan of the whole table on every change (270 ms at a million rows).
            models.Index(fields=["updated_at"], name="dts_task_updated"),
            # The dead man's switch reads the tasks that set their own minutes every check
            # (30 s): without this, a scan of the whole table, however few set them. (With a
            # default in ALERTS every active task is watched, and read.)
            models.Index(fields=["alert_no_success_minutes"], name="dts_task_no_success"),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        update_fields = kwargs.get("update_fields")
        if update_fields is None or SCHEDULE_FIELDS & set(update_fields):
            self.next_run_time = self.compute_next_run_time()
            if update_fields is not None:
                kwargs["update_fields"] = {*update_fields, "next_run_time"}
        if not audit.is_audited(update_fields):
            super().save(*args, **kwargs)  # bookkeeping: nothing to record
            return
        using = kwargs.get("using") or router.db_for_write(Task, instance=self)
        # The old values are read, and the record written, in the save's transaction.
        with audit.writing(using):
            old = audit.old_values(
                self, update_fields, using, force_insert=kwargs.get("force_insert", False)
            )
            super().save(*args, **kwargs)
            audit.after_save(self, old, using)

    def delete(self, using: Any = None, keep_parents: bool = False) -> tuple[int, dict[str, int]]:
        using = using or router.db_for_write(Task, instance=self)
        with audit.writing(using):
            record = audit.before_delete(Task._base_manager.using(using).filter(pk=self.pk))
            result = super().delete(using, keep_parents)
            if result[0]:
                record()
        return result

    delete.alters_data = True  # type: ignore[attr-defined]

    # -- validation ---------------------------------------------------------------------------

    def clean(self) -> None:
        """Check trigger, trigger_config, func, arguments and backend; errors keyed by field."""
        from django_tasks_sched import bounds, callables, signatures

        errors: dict[str, list[str]] = {}

        def collect(exc: TaskConfigError) -> None:
            errors.setdefault(exc.field, []).append(exc.message)

        # For an unknown trigger this adds, to Django's "not a valid choice", the valid ones.
        # A config out of JSON's bounds was already refused by the field itself: said once.
        try:
            bounds.check_json(self.trigger_config, "trigger_config")
        except TaskConfigError:
            pass
        else:
            try:
                self.build_trigger()
            except TaskConfigError as exc:
                collect(exc)
        if not isinstance(self.args, list):
            errors.setdefault("args", []).append(
                str(_('positional arguments must be a JSON list, e.g. [1, "a"]'))
            )
        if not isinstance(self.kwargs, dict):
            errors.setdefault("kwargs", []).append(
                str(_('keyword arguments must be a JSON object, e.g. {"days": 30}'))
            )
        if self.func:
            try:
                func = callables.resolve_callable(self.func)
            except TaskConfigError as exc:
                collect(exc)
            else:
                if "args" not in errors and "kwargs" not in errors:
                    try:
                        signatures.check_arguments(func, self.args, self.kwargs)
                    except TaskConfigError as exc:
                        collect(exc)
        if (
            self.backend
            and isinstance(self.priority, int)
            and bounds.MIN_PRIORITY <= self.priority <= bounds.MAX_PRIORITY
            and isinstance(self.queue_name, str)
            and len(self.queue_name) <= 100
        ):
            # Values the fields themselves refuse are said once, by the fields.
            # Imported only here: a project without fleets needs no django.tasks.
            from django_tasks_sched.fleet.validation import backend_errors

            for field, message in backend_errors(
                self.backend, self.queue_name, self.priority
            ).items():
                errors.setdefault(field, []).append(message)
        if self.active and self.remaining_runs == 0:
            errors.setdefault("remaining_runs", []).append(str(NO_RUNS_LEFT_TO_RESUME))
        if errors:
            raise ValidationError(errors)

    # -- schedule -----------------------------------------------------------------------------

    def build_trigger(self) -> Any:
        """The APScheduler 3 trigger for this task (nominal: jitter is applied by the scheduler).

        Raises ``TaskConfigError`` when the trigger or its config is invalid.
        """
        from django_tasks_sched.triggers import build_trigger

        return build_trigger(
            self.trigger, anchored_config(self.trigger, self.trigger_config, self.created_at)
        )

    def describe_schedule(self) -> str:
        """The schedule in words, e.g. "At 09:00, Monday through Friday (Europe/Berlin)"."""
        from django_tasks_sched.triggers import describe_schedule

        return describe_schedule(self.trigger, self.trigger_config)

    def next_fire_times(self, count: int = 5, after: datetime | None = None) -> list[datetime]:
        """The next ``count`` aware datetimes the schedule fires at after ``after`` (or now)."""
        from django_tasks_sched.triggers import next_fire_times

        return next_fire_times(self.build_trigger(), count=count, after=after or timezone.now())

    def compute_next_run_time(self) -> datetime | None:
        """The next fire after now, or None when inactive, finished or misconfigured."""
        if not self.active:
            return None
        try:
            times = self.next_fire_times(count=1)
        except TaskConfigError as exc:
            # Rows can reach the table without full_clean() (ORM, raw SQL); the scheduler
            # records the refusal when it would fire, saving must not fail here.
            logger.warning("Task %r has an invalid schedule: %s", self.name, exc)
            return None
        return times[0] if times else None

    def owned_fields(self) -> list[str]:
        """The fields its declaration owns (read-only in the admin and the API)."""
        if self.source not in self.DECLARED_SOURCES or not isinstance(self.declared_fields, list):
            return []
        # A name written by an older version (a field since removed) is ignored, not a crash.
        return [name for name in self.declared_fields if _is_editable_field(name)]

    # -- verbs --------------------------------------------------------------------------------

    def pause(self, reason: str = "", *, by: str = "") -> None:
        """Deactivate the task (its schedule stops firing), saying why and, if known, who.

        ``reason`` is kept in ``inactive_reason``; ``by`` (a user name) and the time in
        ``paused_by`` and ``paused_at``, which tell a person's pause from the scheduler's.
        """
        self.inactive_reason = check_reason(reason)
        self.paused_by = _who(by)
        self.paused_at = timezone.now()
        self.active = False
        # Switched off by hand: synctasks must not switch it back on (see retired_at).
        self.retired_at = None
        self.save(update_fields=[*PAUSE_FIELDS, "active", "retired_at", "updated_at"])

    def resume(self) -> None:
        """Activate the task again and clear any reason it was deactivated for.

        Raises ``TaskConfigError`` (field ``remaining_runs``) for a task with no runs left.
        """
        if self.remaining_runs == 0:
            raise TaskConfigError(str(NO_RUNS_LEFT_TO_RESUME), field="remaining_runs")
        self.active = True
        self.inactive_reason, self.paused_by, self.paused_at = "", "", None
        self.consecutive_failures = 0
        self.retired_at = None
        self.save(
            update_fields=[
                *PAUSE_FIELDS,
                "active",
                "consecutive_failures",
                "retired_at",
                "updated_at",
            ]
        )

    def backfill(self, start: datetime, end: datetime) -> list[TaskRun]:
        """One run for each fire time of the schedule in ``[start, end)`` that has none yet.

        The runs wait their turn (``max_instances``) and start in order of their fire times;
        misfire grace and coalescing do not apply. See :mod:`django_tasks_sched.backfill`.
        """
        from django_tasks_sched.backfill import backfill

        return backfill(self, start, end)

    def run_now(
        self,
        *,
        inline: bool = False,
        origin: str | None = None,
        respect_overlap: bool = False,
    ) -> TaskRun:
        """Queue one run now, outside the schedule; ``inline=True`` runs it in this process.

        By default the run starts whatever runs of the task are going. ``respect_overlap``
        treats it as a fire of the schedule: it waits for a slot of ``max_instances``, and the
        ``overlap`` policy decides when none is free (recorded MISSED, buffered, or the oldest
        run cancelled); a scheduler process starts it, so it cannot be ``inline``.
        """
        if respect_overlap:
            from django_tasks_sched.service.claims import request_run

            if inline:
                raise ValueError("run_now(): respect_overlap runs are started by a scheduler")
            return request_run(self, origin or TaskRun.Origin.MANUAL)
        if inline:
            # The app config holds the run path, so the models do not import it (a cycle).
            config = cast("TasksSchedConfig", apps.get_app_config("django_tasks_sched"))
            return config.run_here(self, origin or TaskRun.Origin.MANUAL)
        return TaskRun.objects.create(
            task=self, status=TaskRun.Status.QUEUED, origin=origin or TaskRun.Origin.MANUAL
        )


NO_RUNS_LEFT_TO_RESUME = _(
    "no runs left: give the number of runs it may still make (or leave it empty for no "
    "limit) to activate it"
)

#: What a pause writes besides ``active``.
PAUSE_FIELDS = ("inactive_reason", "paused_by", "paused_at")


def check_reason(value: Any, *, field: str = "inactive_reason", limit: int = 255) -> str:
    """A pause's reason: text of at most ``limit`` characters that every database stores."""
    if not isinstance(value, str):
        raise TaskConfigError(str(_("must be text")), field=field)
    if len(value) > limit:
        raise TaskConfigError(
            _("at most %(limit)d characters, not %(length)d")
            % {"limit": limit, "length": len(value)},
            field=field,
        )
    for validate in NO_NUL:
        try:
            validate(value)
        except ValidationError as exc:
            raise TaskConfigError(exc.messages[0], field=field) from None
    return value


def _who(by: Any) -> str:
    """Who paused: a user name, stored as it fits (a name is not the caller's mistake)."""
    name = by if isinstance(by, str) else str(by)
    return "".join(ch for ch in name if ch != "\x00" and bounds.is_storable_text(ch))[:150]


def _is_editable_field(name: Any) -> bool:
    try:
        field = Task._meta.get_field(name)
    except (FieldDoesNotExist, TypeError):
        return False
    return bool(getattr(field, "editable", False)) and not field.auto_created


class TaskRunQuerySet(models.QuerySet["TaskRun"]):
    def queued(self) -> TaskRunQuerySet:
        return self.filter(status=TaskRun.Status.QUEUED)

    def due(self, now: datetime | None = None) -> TaskRunQuerySet:
        """Queued runs that may start now: a retry waits for its ``not_before``, a buffered
        fire for a free slot (``service.claims.release_buffered`` releases it)."""
        now = now or timezone.now()
        return self.queued().filter(
            models.Q(not_before__isnull=True) | models.Q(not_before__lte=now), buffered=False
        )

    def running(self) -> TaskRunQuerySet:
        return self.filter(status=TaskRun.Status.RUNNING)

    def unfinished(self) -> TaskRunQuerySet:
        """Queued or running: the runs a scheduler's housekeeping may have to act on."""
        return self.filter(status__in=[TaskRun.Status.QUEUED, TaskRun.Status.RUNNING])

    def finished(self) -> TaskRunQuerySet:
        return self.filter(status__in=TaskRun.FINISHED_STATUSES)


class TaskRun(models.Model):
    """One execution of a task (or one fire that could not run), kept as history."""

    class Status(models.TextChoices):
        QUEUED = "QUEUED", _("Queued")
        """Waiting for a scheduler process to start it, or for a worker of its backend."""
        RUNNING = "RUNNING", _("Running")
        """Started and not finished."""
        SUCCESSFUL = "SUCCESSFUL", _("Successful")
        """Returned without raising."""
        FAILED = "FAILED", _("Failed")
        """Raised an exception, or could not be started (import error, refused callable)."""
        TIMED_OUT = "TIMED_OUT", _("Timed out")
        """Ran past the task's timeout."""
        MISSED = "MISSED", _("Missed")
        """The fire came due but was not run (too late, or too many instances)."""
        CANCELLED = "CANCELLED", _("Cancelled")
        """Cancelled while queued; never started."""
        INTERRUPTED = "INTERRUPTED", _("Interrupted")
        """The process running it stopped or died before it finished, or it was stuck."""

    class Origin(models.TextChoices):
        """What caused the run."""

        SCHEDULE = "SCHEDULE", _("Schedule")
        MANUAL = "MANUAL", _("Manual (run now)")
        API = "API", _("API")
        CLI = "CLI", _("Command line")
        RETRY = "RETRY", _("Retry")
        BACKFILL = "BACKFILL", _("Backfill")

    FINISHED_STATUSES = frozenset(
        {
            Status.SUCCESSFUL,
            Status.FAILED,
            Status.TIMED_OUT,
            Status.MISSED,
            Status.CANCELLED,
            Status.INTERRUPTED,
        }
    )
    FAILED_STATUSES = frozenset({Status.FAILED, Status.TIMED_OUT, Status.INTERRUPTED})

    task = models.ForeignKey(
        Task, on_delete=models.CASCADE, related_name="runs", verbose_name=_("task")
    )
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.QUEUED
    )
    origin = models.CharField(
        _("triggered by"), max_length=16, choices=Origin.choices, default=Origin.SCHEDULE
    )
    attempt = models.PositiveIntegerField(_("attempt"), default=1)
    first_attempt = models.ForeignKey(
        "self",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="retries",
        verbose_name=_("first attempt"),
    )
    scheduled_for = models.DateTimeField(
        _("scheduled for"),
        null=True,
        blank=True,
        help_text=_("The nominal fire time; empty for a run started by hand."),
    )
    enqueued_at = models.DateTimeField(_("enqueued"), default=timezone.now)
    not_before = models.DateTimeField(
        _("not before"),
        null=True,
        blank=True,
        help_text=_("A queued retry waits until this time; empty: as soon as possible."),
    )
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    return_value = models.JSONField(_("return value"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True)
    traceback = models.TextField(_("traceback"), blank=True)
    log = models.TextField(_("log output"), blank=True)
    worker_id = models.CharField(
        _("worker"),
        max_length=255,
        blank=True,
        help_text=_(
            "The process that ran it: a scheduler process, an inline caller, or a worker of "
            "the task's backend (kind, host, pid)."
        ),
    )
    alive_at = models.DateTimeField(
        _("last seen alive"),
        null=True,
        blank=True,
        help_text=_(
            "When the process running it last said it was alive; a run silent for "
            "HEARTBEAT_TIMEOUT seconds is ended as interrupted."
        ),
    )
    heartbeat_at = models.DateTimeField(
        _("last heartbeat"),
        null=True,
        blank=True,
        help_text=_("The function's last heartbeat (current_run().heartbeat() or update())."),
    )
    progress = models.FloatField(
        _("progress"),
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text=_("From 0 to 1, as the function last reported it."),
    )
    meta = BoundedJSONField(
        _("meta"),
        default=dict,
        blank=True,
        help_text=_("A JSON object the function reports through current_run().update(meta=...)."),
    )
    backend = models.CharField(
        _("backend"),
        max_length=100,
        blank=True,
        help_text=_("The django.tasks backend it was handed to; empty: run by a scheduler."),
    )
    backend_result_id = models.CharField(
        _("backend's result id"),
        max_length=255,
        blank=True,
        help_text=_("The id the backend gave the enqueued message."),
    )
    handed_at = models.DateTimeField(
        _("handed off"),
        null=True,
        blank=True,
        help_text=_("When it was last enqueued on its backend."),
    )
    handoffs = models.PositiveSmallIntegerField(
        _("hand-offs"),
        default=0,
        help_text=_("How many times it was enqueued on its backend (more than once: re-sent)."),
    )
    buffered = models.BooleanField(
        _("waits for a slot"),
        default=False,
        help_text=_(
            "A fire held back by the task's overlap policy, or backfilled: it starts, in order "
            "of its fire time, when fewer than max_instances runs of the task are running."
        ),
    )

    objects = TaskRunQuerySet.as_manager()

    class Meta:
        verbose_name = _("task run")
        verbose_name_plural = _("task runs")
        ordering = ["-enqueued_at", "-id"]
        get_latest_by = "enqueued_at"
        constraints = [
            # One run per fire: what makes a fire exactly-once across scheduler processes.
            # NULLs are distinct on every supported database, so manual runs stay free.
            models.UniqueConstraint(fields=["task", "scheduled_for"], name="dts_one_run_per_fire")
        ]
        indexes = [
            models.Index(fields=["status", "enqueued_at"], name="dts_run_status_enqueued"),
            models.Index(fields=["task", "status"], name="dts_run_task_status"),
            models.Index(fields=["task", "-enqueued_at"], name="dts_run_task_recent"),
            # The run changelist's default order and its date drill-down.
            models.Index(fields=["-enqueued_at", "-id"], name="dts_run_recent"),
            # Runs finished in a time range: the alert checks' watermark, pruning by age.
            models.Index(fields=["finished_at"], name="dts_run_finished"),
        ]

    def __str__(self) -> str:
        # Its task, its fire time (else when it was enqueued), its status, and for a retry the
        # attempt, so it is not taken for its first attempt (admin titles, links, logs).
        from django_tasks_sched.times import time_text

        when = self.scheduled_for or self.enqueued_at
        values = {
            "task": self.task.name,
            "when": time_text(when) if when else "?",
            "status": self.get_status_display(),
            "attempt": self.attempt,
        }
        if self.attempt > 1:
            return gettext("%(task)s @ %(when)s, attempt %(attempt)d (%(status)s)") % values
        return gettext("%(task)s @ %(when)s (%(status)s)") % values

    @property
    def duration(self) -> timedelta | None:
        """Time from start to finish, when both are known."""
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None

    # -- run handle (as Jobify's Job) ------------------------------------------------------------

    def is_done(self) -> bool:
        """True once the run has a final status."""
        return self.status in self.FINISHED_STATUSES

    def wait(self, timeout: float | None = None, poll_interval: float = 0.1) -> TaskRun:
        """Block until the run is finished (refreshing from the database) and return it.

        Raises ``TimeoutError`` if ``timeout`` seconds pass first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self.refresh_from_db()
            if self.is_done():
                return self
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"Run {self.pk} of {self.task.name!r} is still {self.status}")
            time.sleep(poll_interval)

    def result(self) -> Any:
        """The callable's return value; raises if the run failed or is not finished."""
        if self.status == self.Status.SUCCESSFUL:
            return self.return_value
        if self.status in self.FAILED_STATUSES:
            raise TaskRunFailed(f"{self.get_status_display()}: {self.error}".rstrip(": "))
        if self.is_done():
            raise TaskRunFailed(str(self.get_status_display()))
        raise TaskRunNotFinished(f"Run {self.pk} is {self.status}")

    def cancel(self) -> bool:
        """Cancel the run if it is still queued; return whether it was cancelled."""
        # A conditional UPDATE, so a scheduler claiming the run at the same moment wins or
        # loses cleanly instead of both thinking they own it.
        cancelled = TaskRun.objects.filter(pk=self.pk, status=self.Status.QUEUED).update(
            status=self.Status.CANCELLED, finished_at=timezone.now()
        )
        self.refresh_from_db()
        if cancelled:
            # A fleet task's queued run held a slot: fires waiting for it may start now.
            from django_tasks_sched.lifecycle import wake_if_waiting

            wake_if_waiting([self.task_id], self._state.db or "default")
        return bool(cancelled)

    # -- reporting from inside the run (current_run()) ---------------------------------------

    def update(self, progress: float | None = None, meta: dict[str, Any] | None = None) -> bool:
        """Store ``progress`` (0 to 1) and merge ``meta`` into the run's; also a heartbeat.

        Visible to every other process at once (on PostgreSQL and MariaDB even inside the
        function's own ``transaction.atomic()``). Returns False when the run is no longer RUNNING
        (timed out, interrupted, cancelled): the function may take that as a cue to stop.
        Raises ``ValueError`` for a progress outside 0..1 or a meta that is not a bounded JSON
        object, so a mistake shows in the run's traceback rather than in the stored data.
        """
        now = timezone.now()
        fields: dict[str, Any] = {"heartbeat_at": now, "alive_at": now}
        if progress is not None:
            fields["progress"] = bounds.check_progress(progress)
        if meta is not None:
            if not isinstance(meta, dict):
                raise TaskConfigError(_("meta must be a JSON object (a dict)"), field="meta")
            merged = {**(self.meta if isinstance(self.meta, dict) else {}), **meta}
            bounds.check_json(merged, "meta")
            fields["meta"] = merged
        # Visible to other processes at once, even inside the function's own transaction.
        from django_tasks_sched.autonomous import update_running_run

        updated = update_running_run(self.pk, fields)
        if updated:
            for name, value in fields.items():
                setattr(self, name, value)
        return bool(updated)

    def heartbeat(self) -> bool:
        """Say the function is alive (what ``Task.heartbeat_timeout`` waits for); see update."""
        return self.update()


def alive_since(seconds: float) -> datetime:
    """The oldest heartbeat of a process still counted live ``seconds`` after it."""
    return timezone.now() - timedelta(seconds=seconds)


class SchedulerProcessQuerySet(models.QuerySet["SchedulerProcess"]):
    def alive(self, timeout: float | None = None) -> SchedulerProcessQuerySet:
        """Processes whose heartbeat is fresher than ``timeout`` (default HEARTBEAT_TIMEOUT)."""
        from django_tasks_sched.conf import get_settings

        seconds = get_settings().HEARTBEAT_TIMEOUT if timeout is None else timeout
        return self.seen_since(alive_since(seconds))

    def seen_since(self, since: datetime) -> SchedulerProcessQuerySet:
        """Processes whose last heartbeat was at ``since`` or later."""
        return self.filter(last_seen__gte=since)


class SchedulerProcess(models.Model):
    """A live ``runscheduler`` process: its heartbeat row, removed on clean shutdown."""

    worker_id = models.CharField(_("process"), max_length=255, unique=True)
    hostname = models.CharField(_("host"), max_length=255)
    pid = models.PositiveIntegerField(_("pid"))
    version = models.CharField(_("version"), max_length=32)
    started_at = models.DateTimeField(_("started"), default=timezone.now)
    last_seen = models.DateTimeField(_("last seen"), default=timezone.now, db_index=True)

    objects = SchedulerProcessQuerySet.as_manager()

    class Meta:
        verbose_name = _("scheduler process")
        verbose_name_plural = _("scheduler processes")
        ordering = ["started_at"]

    def __str__(self) -> str:
        return self.worker_id


class ScheduleStamp(models.Model):
    """One row whose ``version`` moves on every committed change to the Task table.

    Signals only reach the saving process; the stamp is how every other scheduler process
    learns that it should reconcile (as django-celery-beat's ``PeriodicTasks``).
    """

    version = models.BigIntegerField(_("version"), default=0)
    changed_at = models.DateTimeField(_("changed"), default=timezone.now)
    # Firing on or off for every scheduler process, read with the version in each poll (see
    # django_tasks_sched.firing): switching it moves the version, so every process sees it.
    firing = models.BooleanField(_("firing"), default=True)
    firing_changed_at = models.DateTimeField(_("firing switched"), null=True, blank=True)
    firing_changed_by = models.CharField(_("firing switched by"), max_length=150, blank=True)

    class Meta:
        verbose_name = _("schedule change stamp")
        verbose_name_plural = _("schedule change stamps")

    def __str__(self) -> str:
        return f"v{self.version}"


class AlertState(models.Model):
    """Whether one alert (a kind, for one task or for the whole scheduler) is raised now.

    Alerts are sent on a change of state, not per run: a process flips ``raised`` with a
    guarded UPDATE (``WHERE raised = <old>``), and only the process whose UPDATE matched sends.
    """

    class Kind(models.TextChoices):
        FAILURE = "failure", _("run failed")
        MISSED = "missed", _("fire missed")
        NO_SUCCESS = "no_success", _("no successful run")
        NO_SCHEDULER = "no_scheduler", _("no scheduler process alive")

    task = models.ForeignKey(
        Task,
        on_delete=models.CASCADE,
        related_name="alert_states",
        null=True,
        blank=True,
        verbose_name=_("task"),
    )
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    #: "<kind>:<task id>", or "<kind>:*" for the scheduler-wide kinds: unique, so two processes
    #: creating one alert's row race on it (a UNIQUE over a NULL task would not stop them,
    #: and MariaDB has no partial unique index).
    key = models.CharField(_("key"), max_length=40, unique=True, editable=False)
    raised = models.BooleanField(_("raised"), default=False)
    changed_at = models.DateTimeField(_("changed"), default=timezone.now)
    detail = models.TextField(_("detail"), blank=True)

    class Meta:
        verbose_name = _("alert state")
        verbose_name_plural = _("alert states")

    def __str__(self) -> str:
        where = self.task.name if self.task is not None else gettext("scheduler")
        state = gettext("raised") if self.raised else gettext("clear")
        return f"{where}: {self.get_kind_display()} ({state})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.key = self.key_for(self.task_id, self.kind)
        super().save(*args, **kwargs)

    @staticmethod
    def key_for(task_id: int | None, kind: str) -> str:
        """The unique key of the alert ``kind`` of a task (None: of the whole scheduler)."""
        return f"{kind}:{'*' if task_id is None else task_id}"


class TaskChange(models.Model):
    """One change of a task (created, changed, deleted), from whichever path made it."""

    class Action(models.TextChoices):
        CREATED = "created", _("created")
        CHANGED = "changed", _("changed")
        DELETED = "deleted", _("deleted")

    class Via(models.TextChoices):
        ADMIN = "admin", _("admin")
        CODE = "code", _("save() in code")
        FACADE = "facade", _("scheduler facade")
        API = "api", _("REST API")
        SYNCTASKS = "synctasks", _("synctasks (declarations)")
        MIGRATION = "migration", _("migration operation")
        BULK = "bulk", _("bulk update")
        SCHEDULER = "scheduler", _("scheduler process")
        COMMAND = "command", _("management command")

    task = models.ForeignKey(
        Task,
        on_delete=models.SET_NULL,
        related_name="changes",
        null=True,
        blank=True,
        verbose_name=_("task"),
    )
    task_name = models.CharField(_("task name"), max_length=200, db_index=True)
    at = models.DateTimeField(_("when"), default=timezone.now, db_index=True)
    action = models.CharField(_("action"), max_length=16, choices=Action.choices)
    via = models.CharField(_("through"), max_length=16, choices=Via.choices)
    who = models.CharField(_("who"), max_length=150, blank=True)
    # {"field": [old, new], ...}, JSON-safe values.
    fields = models.JSONField(_("fields"), default=dict, blank=True)

    class Meta:
        verbose_name = _("task change")
        verbose_name_plural = _("task changes")
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["task", "-at"], name="dts_change_task_at")]

    def __str__(self) -> str:
        return f"{self.task_name} {self.get_action_display()} ({self.get_via_display()})"
