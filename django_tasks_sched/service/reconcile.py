"""Keep APScheduler's in-memory jobs in step with the Task table.

The table is the truth; APScheduler holds a MemoryJobStore copy of the active tasks, one job
per task (job id = the task's primary key). Reconcile is incremental: when the change stamp
moves, only rows whose ``updated_at`` moved past the watermark are read, and a job is touched
only if a field that shapes its schedule changed. A slow full pass compares every row and
catches what no stamp reports (raw SQL that does not touch ``updated_at``).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from apscheduler.jobstores.base import JobLookupError
from django.utils import timezone

from django_tasks_sched.exceptions import TaskConfigError
from django_tasks_sched.models import Task, anchored_config
from django_tasks_sched.service.executor import UNLIMITED_INSTANCES, fire_placeholder
from django_tasks_sched.service.jitter import DeterministicJitter
from django_tasks_sched.triggers import build_trigger

logger = logging.getLogger(__name__)

#: The columns that decide a task's APScheduler job; nothing else is loaded into memory.
SCHEDULE_COLUMNS = (
    "id",
    "name",
    "active",
    "trigger",
    "trigger_config",
    "coalesce",
    "misfire_grace_time",
    "created_at",
    "updated_at",
)

#: Rows are re-read from a little before the watermark: other processes' clocks and commit
#: order mean a row can commit with an updated_at slightly older than one we have seen.
CLOCK_MARGIN = timedelta(seconds=5)


@dataclass(frozen=True, slots=True)
class Known:
    """What the reconciler last saw of a row: enough to tell whether its job must change."""

    updated_at: datetime
    schedule: tuple[Any, ...]  # () when the task has no job (inactive or invalid)


@dataclass
class SyncResult:
    added: int = 0
    changed: int = 0
    removed: int = 0

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)


class Reconciler:
    """Applies Task rows to an APScheduler scheduler (which must use the firing executor)."""

    def __init__(self, scheduler: Any) -> None:
        self.scheduler = scheduler
        self.known: dict[int, Known] = {}
        self.watermark: datetime | None = None
        #: Next fire times not yet written to the table's display column (see flush_next_runs).
        self.pending_next_run: dict[int, datetime | None] = {}

    # -- passes -------------------------------------------------------------------------------

    def full(self) -> SyncResult:
        """Compare every row with what is loaded; add, change and remove jobs to match."""
        started = timezone.now()
        rows = list(Task.objects.values_list(*SCHEDULE_COLUMNS))
        result = self._apply(rows)
        seen = {row[0] for row in rows}
        for task_id in set(self.known) - seen:
            self._remove(task_id, result)
        self.watermark = started
        return result

    def incremental(self) -> SyncResult:
        """Apply rows changed since the last pass, and drop jobs of deleted rows."""
        if self.watermark is None:
            return self.full()
        started = timezone.now()
        rows = list(
            Task.objects.filter(updated_at__gte=self.watermark - CLOCK_MARGIN).values_list(
                *SCHEDULE_COLUMNS
            )
        )
        result = self._apply(rows)
        # Deletions leave no row to see; a count that differs from ours is the cheap tell.
        if Task.objects.count() != len(self.known):
            ids = set(Task.objects.values_list("id", flat=True))
            for task_id in set(self.known) - ids:
                self._remove(task_id, result)
            missing = ids - set(self.known)
            if missing:
                # Rows that appeared with an old updated_at (raw SQL, restored backups).
                self._apply(Task.objects.filter(id__in=missing).values_list(*SCHEDULE_COLUMNS))
        self.watermark = started
        return result

    # -- applying rows ------------------------------------------------------------------------

    def _apply(self, rows: Iterable[tuple[Any, ...]]) -> SyncResult:
        result = SyncResult()
        for row in rows:
            task_id, name, active, trigger, config, coalesce, grace, created_at, updated_at = row
            old = self.known.get(task_id)
            schedule = (
                (trigger, json.dumps(config, sort_keys=True), coalesce, grace) if active else ()
            )
            if old is not None and old.schedule == schedule:
                if old.updated_at != updated_at:
                    self.known[task_id] = Known(updated_at, schedule)
                continue
            if not schedule:
                self._remove(task_id, result)
                self.known[task_id] = Known(updated_at, ())
                continue
            try:
                aps_trigger = job_trigger(task_id, trigger, config, created_at)
            except TaskConfigError as exc:
                # A row saved past validation: not scheduled, and said so once per change.
                logger.error("Task %r (id %s) is not scheduled: %s", name, task_id, exc)
                self._remove(task_id, result)
                self.known[task_id] = Known(updated_at, ())
                continue
            self._upsert(task_id, name, aps_trigger, schedule, old, result)
            self.known[task_id] = Known(updated_at, schedule)
        return result

    def _upsert(
        self,
        task_id: int,
        name: str,
        trigger: Any,
        schedule: tuple[Any, ...],
        old: Known | None,
        result: SyncResult,
    ) -> None:
        job_id = str(task_id)
        _, _, coalesce, grace = schedule
        options = {"coalesce": coalesce, "misfire_grace_time": grace, "name": name}
        if old is not None and old.schedule:
            self.scheduler.modify_job(job_id, **options)
            if old.schedule[:2] != schedule[:2]:
                self.scheduler.reschedule_job(job_id, trigger=trigger)
            result.changed += 1
        else:
            self.scheduler.add_job(
                fire_placeholder,
                trigger=trigger,
                id=job_id,
                replace_existing=True,
                max_instances=UNLIMITED_INSTANCES,
                **options,
            )
            result.added += 1
        job = self.scheduler.get_job(job_id)
        self.pending_next_run[task_id] = job.next_run_time if job else None

    def flush_next_runs(self) -> None:
        """Write pending next_run_time values, grouped so 10,000 loads cost a few UPDATEs."""
        pending, self.pending_next_run = self.pending_next_run, {}
        by_time: dict[datetime | None, list[int]] = {}
        for task_id, when in pending.items():
            by_time.setdefault(when, []).append(task_id)
        for when, ids in by_time.items():
            for start in range(0, len(ids), 500):
                # Quietly: this is bookkeeping, it must not nudge the sync into a loop.
                Task.objects.filter(pk__in=ids[start : start + 500]).update_quietly(
                    next_run_time=when
                )

    def _remove(self, task_id: int, result: SyncResult) -> None:
        known = self.known.pop(task_id, None)
        if known is not None and known.schedule:
            with contextlib.suppress(JobLookupError):
                self.scheduler.remove_job(str(task_id))
            result.removed += 1
        self.pending_next_run[task_id] = None


def job_trigger(task_id: int, trigger: str, config: Any, created_at: datetime) -> Any:
    """The trigger a task's job runs on: identical in every scheduler process.

    Two things would otherwise differ between processes and break exactly-once claims: an
    interval with no start_date (APScheduler counts from when the job was added; here from the
    task's creation, as Task.next_fire_times does) and jitter (random; here deterministic).
    """
    config = anchored_config(trigger, config, created_at)
    jitter = config.get("jitter") if isinstance(config, dict) else None
    if not jitter:
        return build_trigger(trigger, config)
    inner = build_trigger(trigger, {k: v for k, v in config.items() if k != "jitter"})
    return DeterministicJitter(inner, float(jitter), seed=task_id)
