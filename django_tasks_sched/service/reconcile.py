"""Keep APScheduler's in-memory jobs in step with the Task table, within a window of time.

The table is the truth. A scheduler process holds jobs only for the active tasks whose next
fire falls within the window (``WINDOW_MINUTES`` ahead), in a MemoryJobStore (job id = the
task's primary key); tasks firing later wait in the table, found through the indexed
``next_run_time``, which is exact on every row. So memory and start-up follow the tasks due
soon, not the size of the table (docs/window.md). Four passes keep the jobs in step:

- **load** (start-up, resume): reads the rows in the window, catching up fires missed while
  no scheduler ran, and puts the jobs straight into the store, scheduler paused.
- **advance** (every quarter window): moves the window's edge on, reads the rows that came
  into it, and drops the jobs whose next fire left it (writing that fire to the table).
- **incremental** (the change stamp moved): reads the rows whose ``updated_at`` moved past
  the watermark; a job is touched only if a field that shapes its schedule changed.
- **full** (``RECONCILE_INTERVAL``): compares every row in the window with what is loaded
  (the trigger config as text, nothing parsed), and checks a slice of the rows outside it,
  so raw SQL that no stamp reports is caught: in the window at once, outside it within 60
  full passes.

A row's job is kept only if its next fire is within the window and the task is in this
process's part (:mod:`~django_tasks_sched.service.share`): that one rule, in
:meth:`Reconciler._apply`, serves every pass. Each pass reads only this part's rows; when the
part changes (a process joined or left), :meth:`Reconciler.reshare` drops the tasks now held
elsewhere and loads the ones newly held, catching up their fires as at start-up.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

from apscheduler.job import Job
from django.db import router, transaction
from django.db.models import Case, Max, Q, QuerySet, TextField, When
from django.db.models.functions import Cast
from django.utils import timezone as dj_timezone

from django_tasks_sched.conf import get_settings
from django_tasks_sched.lifecycle import KEEP, refuse
from django_tasks_sched.models import Task, TaskRun, anchored_config
from django_tasks_sched.rawsql import concrete_field, update_rows
from django_tasks_sched.reasons import NOT_RUN
from django_tasks_sched.service.claims import Fire
from django_tasks_sched.service.guard import GuardedTrigger
from django_tasks_sched.service.jitter import DeterministicJitter
from django_tasks_sched.service.jobs import Jobs
from django_tasks_sched.service.rawrows import column_reader, raw_rows
from django_tasks_sched.service.share import WHOLE, Share
from django_tasks_sched.triggers import build_trigger

logger = logging.getLogger(__name__)

#: What decides a task's job: compared on every full pass. The config is read as text.
SCAN_COLUMNS = ("id", "active", "trigger", "config_text", "coalesce", "misfire_grace_time")
#: What building a job needs besides; ``next_run_time`` to skip writing back an equal value.
ROW_COLUMNS = (*SCAN_COLUMNS, "name", "interval_created_at", "next_run_time")

#: Primary keys per ``IN (...)`` when re-reading the rows a full pass found changed.
CHUNK_SIZE = 2000
#: How far back a task without a misfire grace limit catches up fires missed while no
#: scheduler ran (a one-second task down for a week would otherwise make 600,000 runs).
NO_GRACE_CATCH_UP = timedelta(hours=1)

#: Rows outside the window checked by each full pass: a sixtieth of the table, so every row
#: is checked within 60 full passes, and at least this many (each check builds a trigger:
#: a thousand a minute were most of an idle scheduler's CPU time).
VERIFY_MIN = 100
VERIFY_PASSES = 60

#: Rows are re-read from a little before the watermark: other processes' clocks and commit
#: order mean a row can commit with an updated_at slightly older than one we have seen.
CLOCK_MARGIN = timedelta(seconds=5)


class Stretch(NamedTuple):
    """Fires of a task missed past their grace time while no process fired it."""

    #: The MISSED record that stands for them, at the stretch's first fire.
    record: Fire
    trigger: Any
    #: Where the catch-up resumes: the fires from here on are within the grace time.
    until: datetime


class Schedule(NamedTuple):
    """What a task's job is built from: a change in any of these changes the job."""

    trigger: str
    #: The trigger config as the database's text: compared, never parsed, on a full pass.
    text: str
    coalesce: bool
    #: Misfire grace time in seconds; None: no limit.
    grace: int | None


#: The schedule of a row that should have no job (inactive): compared, never held in ``known``.
NO_JOB: tuple[()] = ()
Known = Schedule | tuple[()]


@dataclass
class ReconcileResult:
    added: int = 0
    changed: int = 0
    removed: int = 0
    #: Jobs dropped because their next fire left the window (their task stays active).
    left: int = 0
    #: Jobs dropped because another process holds their task now (see reshare).
    moved: int = 0
    #: Found at load: fires missed beyond their grace window while no scheduler ran, for the
    #: executor to record MISSED.
    missed: list[Fire] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed or self.left or self.moved)


def _with_text(queryset: QuerySet[Task]) -> QuerySet[Task]:
    # Text, not JSON: comparing 10,000 configs then costs no parsing and no re-serialising.
    return queryset.order_by().annotate(config_text=Cast("trigger_config", TextField()))


def _rows(queryset: QuerySet[Task]) -> Iterator[tuple[Any, ...]]:
    # The creation time only anchors an interval without a start_date: not read for others.
    created = Case(When(trigger=Task.Trigger.INTERVAL, then="created_at"), default=None)
    queryset = _with_text(queryset).annotate(interval_created_at=created)
    return raw_rows(queryset.values_list(*ROW_COLUMNS))


def _in_window(until: datetime) -> QuerySet[Task]:
    # The (active, next_run_time) index; NULL: finished, refused, or forced in by raw SQL.
    soon = Q(next_run_time__lte=until) | Q(next_run_time__isnull=True)
    return Task.objects.filter(soon, active=True)


def _stretch_records(stretches: list[Stretch]) -> list[Fire]:
    """One MISSED record per stretch, on its first fire that has no run yet.

    A stretch starts at the table's ``next_run_time``. A process that held the task before and
    stopped or died may have claimed fires from there (the outcomes of a task with a backend
    leave the row alone), and a record on a claimed fire would be dropped by the claim's
    unique constraint, leaving the stretch unrecorded. So the record goes on the first fire
    after the task's latest run; there is none when the runs reach the grace window.
    """
    if not stretches:
        return []
    since = {stretch.record.task_id: stretch.record.scheduled_for for stretch in stretches}
    latest: dict[int, datetime] = {}
    ids = sorted(since)
    for start in range(0, len(ids), CHUNK_SIZE):
        chunk = ids[start : start + CHUNK_SIZE]
        # From the stretches' start only: a task's whole history is not read.
        runs = TaskRun.objects.order_by().filter(
            task_id__in=chunk, scheduled_for__gte=min(since[task_id] for task_id in chunk)
        )
        for task_id, last in (
            runs.values("task_id")
            .annotate(last=Max("scheduled_for"))
            .values_list("task_id", "last")
        ):
            if last is not None and last >= since[task_id]:
                latest[task_id] = last
    records = []
    for record, trigger, until in stretches:
        last = latest.get(record.task_id)
        if last is not None:
            after = trigger.get_next_fire_time(last, last + timedelta(microseconds=1))
            if after is None or after >= until:
                continue  # the runs reach the fires being caught up: nothing was missed
            record = record._replace(scheduled_for=after)
        records.append(record)
    return records


def _schedule(active: Any, trigger: str, text: str, coalesce: Any, grace: int | None) -> Known:
    # Raw values: SQLite and MySQL give booleans as 0 and 1.
    return Schedule(trigger, text, bool(coalesce), grace) if active else NO_JOB


class Reconciler:
    """Applies Task rows to an APScheduler scheduler (which must use the firing executor)."""

    def __init__(self, jobs: Jobs, window: timedelta | None = None, share: Share = WHOLE) -> None:
        self.jobs = jobs
        #: The part of the tasks this process holds (see :meth:`reshare`).
        self.share = share
        #: How far ahead jobs are held (``WINDOW_MINUTES``).
        self.window = window or timedelta(minutes=get_settings().WINDOW_MINUTES)
        #: The window's far edge: every active task firing by then has a job (None: not loaded).
        self.until: datetime | None = None
        #: The tasks in the window: with a job, or finished (no next fire).
        self.known: dict[int, Schedule] = {}
        self.watermark: datetime | None = None
        #: Next fire times not yet written to the table (see flush_next_runs).
        self.pending_next_run: dict[int, datetime | None] = {}
        #: Where the check of rows outside the window goes on (the last primary key checked).
        self.verified_up_to = 0
        self.verify_batch = VERIFY_MIN
        # Rows are read raw (see rawrows): these convert the two dates when they are needed.
        using = Task.objects.db
        self._read_next = column_reader(concrete_field(Task, "next_run_time"), using)
        #: Rows refused, with the schedule refused, already recorded in the run history (each
        #: full pass refuses them again; the record is written once).
        self.refused: dict[int, Known] = {}
        self._read_created = column_reader(concrete_field(Task, "created_at"), using)

    # -- passes -------------------------------------------------------------------------------

    def load(self) -> ReconcileResult:
        """The first pass: the rows in the window. The scheduler paused, its store empty."""
        if self.watermark is not None:
            return self.full()
        started = dj_timezone.now()
        self.until = started + self.window
        result = ReconcileResult()
        jobs: list[Job] = []
        self._apply(_rows(self.share.filter(_in_window(self.until))), result, new_jobs=jobs)
        self.jobs.load(jobs)
        self.watermark = started
        return result

    def advance(self) -> ReconcileResult:
        """Move the window on: add the rows that came into it, drop the jobs that left it.

        Rows come in by their stored next fire; one found already past (the pass came late,
        the database was away) is caught up as at start-up, never skipped.
        """
        result = ReconcileResult()
        if self.until is None:
            return result
        start, self.until = self.until, dj_timezone.now() + self.window
        coming = Task.objects.filter(
            active=True, next_run_time__gt=start, next_run_time__lte=self.until
        )
        self._apply(_rows(self.share.filter(coming)), result, catch_up=True)
        for task_id, next_run_time in self.jobs.beyond(self.until).items():
            # The table holds the fire from here on; the advance that reaches it reloads it.
            # Forgotten before the job goes: a run finishing meanwhile reads the job's fire,
            # never "no next fire" (see next_fire).
            self.pending_next_run[task_id] = next_run_time
            self.known.pop(task_id, None)
            self.jobs.remove(task_id)
            result.left += 1
        return result

    def full(self) -> ReconcileResult:
        """Compare every row in the window with what is loaded, and check a slice of the rest."""
        started = dj_timezone.now()
        result = self.advance()
        assert self.until is not None
        seen: set[int] = set()
        changed: list[int] = []
        scan = _with_text(self.share.filter(_in_window(self.until))).values_list(*SCAN_COLUMNS)
        for task_id, *fields in raw_rows(scan):
            seen.add(task_id)
            if self.known.get(task_id) != _schedule(*fields):
                changed.append(task_id)
        self._apply_ids(changed, result)
        # Loaded, but not among the window's rows: deleted, switched off, or its stored next
        # fire moved on by raw SQL.
        self._recheck(set(self.known) - seen, result)
        self._verify(result)
        self.watermark = started
        return result

    def incremental(self) -> ReconcileResult:
        """Apply the rows changed since the last pass.

        Deleted rows leave nothing to read: their jobs go at the next full pass, and until
        then a fire of one claims nothing (the claim finds no task).
        """
        if self.watermark is None:
            return self.full()
        started = dj_timezone.now()
        changed = Task.objects.filter(updated_at__gte=self.watermark - CLOCK_MARGIN)
        result = ReconcileResult()
        self._apply(_rows(self.share.filter(changed)), result)
        self.watermark = started
        return result

    def reshare(self, share: Share) -> ReconcileResult:
        """Hold ``share`` from now on: another process joined, left or died.

        The tasks now held elsewhere are dropped; the table's ``next_run_time`` is where their
        new holder resumes (each run's outcome writes it, or an earlier fire still queued; every
        load wrote what differed). The window's rows newly held are loaded with their missed
        fires caught up, as at start-up: a fire the old holder claimed is not claimed again
        (the claim keeps the first row), and those it left run, or are recorded MISSED past
        their grace time. Before the first load, only the part is noted.
        """
        result = ReconcileResult()
        previous, self.share = self.share, share
        if self.until is None:
            return result
        try:
            for task_id in [task_id for task_id in self.known if not share.holds(task_id)]:
                self._hand_over(task_id, result)
            self._apply(_rows(share.filter(_in_window(self.until))), result, catch_up=True)
        except Exception:
            # Tried again, with its catch-up, at the next heartbeat; meanwhile the passes keep
            # to the old part (a task dropped already is read back by the next full pass).
            self.share = previous
            raise
        self.verified_up_to = 0  # a new round of checks over the new part
        return result

    def next_fire(self, task_id: int) -> object:
        """The task's next fire time, for a run of it that finishes now.

        None when it has none (finished); ``KEEP`` when its task is outside the window: the
        table holds its next fire, written when its job left.
        """
        job = self.jobs.get(task_id)
        if job is not None:
            return job.next_run_time
        return None if task_id in self.known else KEEP

    def resume_points(self, next_fires: dict[int, datetime | None]) -> dict[int, object]:
        """``next_fires`` (the jobs' next fires, as firing stops), with the finished tasks'."""
        points: dict[int, object] = dict.fromkeys(self.known)
        points.update(next_fires)
        return points

    # -- helpers of the full pass -------------------------------------------------------------

    def _apply_ids(self, ids: list[int], result: ReconcileResult) -> set[int]:
        """Apply the rows of ``ids``, ``CHUNK_SIZE`` at a time; the ids that still have a row."""
        present: set[int] = set()
        for start in range(0, len(ids), CHUNK_SIZE):
            rows = list(_rows(Task.objects.filter(pk__in=ids[start : start + CHUNK_SIZE])))
            self._apply(rows, result)
            present.update(row[0] for row in rows)
        return present

    def _recheck(self, task_ids: set[int], result: ReconcileResult) -> None:
        """Re-read loaded tasks missing from the window's rows; drop those deleted."""
        present = self._apply_ids(sorted(task_ids), result)
        for task_id in task_ids:
            if task_id not in present:
                self._remove(task_id, result)
                self.refused.pop(task_id, None)
            elif task_id in self.known:
                # Unchanged, so its job is right and the stored next fire is not.
                self.pending_next_run[task_id] = self.jobs.next_fire(task_id)

    def _verify(self, result: ReconcileResult) -> None:
        """Check a slice of the rows outside the window: each row's stored next fire must be
        its schedule's, or the window would bring it in at the wrong time (or never)."""
        assert self.until is not None
        if not self.verified_up_to:
            # A new round: sized so that it checks the whole table within VERIFY_PASSES.
            self.verify_batch = max(VERIFY_MIN, -(-Task.objects.count() // VERIFY_PASSES))
        later = self.share.filter(
            Task.objects.filter(
                active=True, next_run_time__gt=self.until, pk__gt=self.verified_up_to
            )
        )
        ids = list(later.order_by("pk").values_list("pk", flat=True)[: self.verify_batch])
        self._apply_ids(ids, result)
        self.verified_up_to = ids[-1] if len(ids) == self.verify_batch else 0

    # -- applying rows ------------------------------------------------------------------------

    def _apply(
        self,
        rows: Iterable[tuple[Any, ...]],
        result: ReconcileResult,
        new_jobs: list[Job] | None = None,
        *,
        catch_up: bool = False,
    ) -> None:
        """Bring each row's job in line; with ``new_jobs``, collect new jobs instead of adding.

        A job is kept only if its next fire is within the window; a row outside it gets its
        next fire written to the table, if the table has another one. Fires a new job missed
        are caught up at load, and with ``catch_up``.
        """
        assert self.until is not None
        catch_up = catch_up or new_jobs is not None
        now = datetime.now(timezone.utc)
        triggers: dict[tuple[Any, ...], tuple[Any, datetime | None, float | None]] = {}
        stretches: list[Stretch] = []
        refused: dict[int, str] = {}
        pending_refusals: dict[int, Known] = {}
        for row in rows:
            task_id, active, trigger, text, coalesce, grace, name, created_at, stored_next = row
            if not self.share.holds(task_id):
                # Read by id (a recheck): another process holds it, and writes its next fire.
                self._hand_over(task_id, result)
                continue
            schedule = _schedule(active, trigger, text, coalesce, grace)
            if not schedule or self.refused.get(task_id) != schedule:
                # Switched off, or edited: a refusal from now on is a new one.
                self.refused.pop(task_id, None)
            old = self.known.get(task_id)
            if old == schedule:
                continue
            # Converted once here (made aware, where the driver gives naive UTC).
            stored_at = None if stored_next is None else self._read_next(stored_next)
            next_run_time = None
            if isinstance(schedule, Schedule):
                try:
                    created = None if created_at is None else self._read_created(created_at)
                    aps_trigger, first = self._trigger(
                        triggers, task_id, trigger, text, created, now
                    )
                    next_run_time = self._next(task_id, aps_trigger, first, schedule, old)
                    if old is None and catch_up:
                        next_run_time = self._catch_up(
                            task_id, aps_trigger, next_run_time, stored_at, grace, now, stretches
                        )
                    if next_run_time is not None and next_run_time > self.until:
                        # Outside the window: the table holds it until the window reaches it.
                        self._remove(task_id, result)
                        if stored_at != next_run_time:
                            self.pending_next_run[task_id] = next_run_time
                        continue
                    if new_jobs is not None:
                        new_jobs.append(
                            self.jobs.build(
                                task_id, name, aps_trigger, next_run_time, schedule.grace
                            )
                        )
                        result.added += 1
                    else:
                        self._upsert(
                            task_id, name, aps_trigger, next_run_time, schedule, old, result
                        )
                except Exception as exc:
                    # A row saved past validation: not scheduled, said so once in the run
                    # history and once in each process's log (each full pass finds it again).
                    # Any error, from the trigger or from APScheduler taking the job, not
                    # only TaskConfigError: one row must not stop the pass.
                    repeat = task_id in self.refused
                    level = logging.DEBUG if repeat else logging.ERROR
                    logger.log(level, "Task %r (id %s) is not scheduled: %s", name, task_id, exc)
                    if not repeat:
                        refused[task_id] = str(exc)
                    pending_refusals[task_id] = schedule
                    schedule = NO_JOB
            if not isinstance(schedule, Schedule):
                self._remove(task_id, result)
                if stored_next is not None:
                    self.pending_next_run[task_id] = None
                continue
            if stored_at != next_run_time:
                self.pending_next_run[task_id] = next_run_time
            self.known[task_id] = schedule
        result.missed += _stretch_records(stretches)
        if refused:
            refuse(refused)
        # Only once recorded: a pass that failed before this point records them next time.
        self.refused.update(pending_refusals)

    def _next(
        self,
        task_id: int,
        trigger: Any,
        first: datetime | None,
        schedule: Schedule,
        old: Schedule | None,
    ) -> datetime | None:
        """The next fire of the task's job as it will be: its job's own, where only the
        options changed (the trigger stays, and where it is in its schedule), else ``first``."""
        if old is None or (old.trigger, old.text) != (schedule.trigger, schedule.text):
            return first
        job = self.jobs.get(task_id)
        return first if job is None else job.next_run_time

    def _catch_up(
        self,
        task_id: int,
        trigger: Any,
        first: datetime | None,
        missed: datetime | None,
        grace: int | None,
        now: datetime,
        stretches: list[Stretch],
    ) -> datetime | None:
        """Where a job loaded at start resumes: at the fires missed while no scheduler ran.

        The table's ``next_run_time`` is the fire the last scheduler was waiting for. Fires
        from there that are still within the misfire grace time are handed to APScheduler at
        once (so they run, or coalesce into one run); if the gap began before the grace
        window, one MISSED record stands for that stretch (see :func:`_stretch_records`).
        """
        if first is None or missed is None or missed >= now or missed >= first:
            return first
        reach = NO_GRACE_CATCH_UP if grace is None else timedelta(seconds=grace)
        window = now - reach
        if missed >= window:
            return missed
        resume = trigger.get_next_fire_time(None, window)
        reason = (
            f"{NOT_RUN} no scheduler was running, or the one holding the task had stopped (or "
            "firing was paused). This record stands for every fire of the task from this one "
            f"until {window:%Y-%m-%d %H:%M:%S} UTC, beyond the misfire grace time; later fires "
            "were caught up."
        )
        stretches.append(Stretch(Fire(task_id, missed, grace, reason), trigger, window))
        return resume if resume is not None and resume < first else first

    @staticmethod
    def _trigger(
        cache: dict[tuple[Any, ...], tuple[Any, datetime | None, float | None]],
        task_id: int,
        trigger: str,
        text: str,
        created_at: datetime | None,
        now: datetime,
    ) -> tuple[Any, datetime | None]:
        """The task's trigger and first fire time after ``now``, shared within one pass.

        The trigger is the same in every scheduler process, as exactly-once claims need: an
        interval without a start_date counts from the task's creation (APScheduler would count
        from when the job was added), and jitter is derived from the task and the fire time
        (APScheduler draws it at random). Triggers without jitter hold no state, so tasks with
        the same schedule share one, and its first fire time.
        """
        config: Any = None
        key = (trigger, text, None)
        if trigger == Task.Trigger.INTERVAL:
            config = json.loads(text)
            anchored = anchored_config(trigger, config, created_at)
            if anchored is not config:
                config, key = anchored, (trigger, text, anchored["start_date"])
        entry = cache.get(key)
        if entry is None:
            config = json.loads(text) if config is None else config
            jitter = config.get("jitter") if isinstance(config, dict) else None
            if jitter:
                config = {k: v for k, v in config.items() if k != "jitter"}
            inner = build_trigger(trigger, config)
            first = inner.get_next_fire_time(None, now)
            entry = cache[key] = (inner, first, float(jitter) if jitter else None)
        inner, first, jitter = entry
        if jitter is None:
            return GuardedTrigger(inner, task_id), first
        wrapped = DeterministicJitter(inner, jitter, seed=task_id)
        # Unguarded here, so a failure is a refusal of the row (see _apply).
        first = wrapped.get_next_fire_time(None, now)
        return GuardedTrigger(wrapped, task_id), first

    def _upsert(
        self,
        task_id: int,
        name: str,
        trigger: Any,
        first: datetime | None,
        schedule: Schedule,
        old: Schedule | None,
        result: ReconcileResult,
    ) -> datetime | None:
        """Add or change the task's job (APScheduler wakes up for it); its next fire."""
        replace = old is not None and (old.trigger, old.text) != (
            schedule.trigger,
            schedule.text,
        )
        next_run_time, changed = self.jobs.put(
            task_id, name, trigger, first, schedule.grace, replace_trigger=replace
        )
        if changed:
            result.changed += 1
        else:
            result.added += 1
        return next_run_time

    def _hand_over(self, task_id: int, result: ReconcileResult) -> None:
        """Drop a task another process holds now; its row is that process's to write."""
        if self.known.pop(task_id, None) is not None:
            self.jobs.remove(task_id)
            result.moved += 1
        self.refused.pop(task_id, None)
        self.pending_next_run.pop(task_id, None)

    def _remove(self, task_id: int, result: ReconcileResult) -> None:
        if self.known.pop(task_id, None):
            self.jobs.remove(task_id)
            result.removed += 1

    # -- the table's next fire times (what the window reads) -----------------------------------

    def flush_next_runs(self) -> None:
        """Write the next fire times that differ from the table's, a few statements for all."""
        pending, self.pending_next_run = self.pending_next_run, {}
        if not pending:
            return
        using = router.db_for_write(Task)
        rows = [[task_id, when] for task_id, when in pending.items()]
        # Raw SQL: bookkeeping must neither move updated_at nor nudge the reconcile into a loop.
        with transaction.atomic(using=using):
            update_rows(Task, ["next_run_time"], rows, using)
