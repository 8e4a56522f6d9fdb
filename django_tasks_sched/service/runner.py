"""The scheduler process: APScheduler in a background thread, kept in step with the table.

The main thread runs :meth:`SchedulerService.loop`: it waits on a wake-up (PostgreSQL NOTIFY,
a write to SQLite's files, or the poll interval), and when the change stamp moved, reconciles
the changed tasks and claims queued run-now requests. A slow timer does a full reconcile,
refreshes the heartbeat and recovers runs of dead processes. The first SIGINT/SIGTERM stops
gracefully; a second one forces.
"""

from __future__ import annotations

import _thread
import concurrent.futures
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from types import FrameType
from typing import Any

from django.db import DatabaseError, close_old_connections, router, transaction
from django.utils import timezone as dj_timezone

from django_tasks_sched.conf import get_settings
from django_tasks_sched.fleet.handoff import sweep_handoffs, waiting
from django_tasks_sched.lifecycle import KEEP, end
from django_tasks_sched.models import SchedulerProcess, Task, TaskRun
from django_tasks_sched.rawsql import update_rows
from django_tasks_sched.retention import Pruner
from django_tasks_sched.service.alerting import AlertWatch
from django_tasks_sched.service.claims import Fire, claim_queued_runs, release_buffered
from django_tasks_sched.service.compiled import Compiled
from django_tasks_sched.service.executor import FiringExecutor
from django_tasks_sched.service.heartbeat import Heartbeat, scheduler_worker_id
from django_tasks_sched.service.housekeeping import (
    expire_overdue_runs,
    interrupt_stuck_runs,
    prune_dead_processes,
    recover_orphaned_runs,
)
from django_tasks_sched.service.jobs import Jobs
from django_tasks_sched.service.listen import Listener, StampReader, WakeThread
from django_tasks_sched.service.reboot import reboot_fires
from django_tasks_sched.service.reconcile import (
    CLOCK_MARGIN,
    Reconciler,
    ReconcileResult,
    Schedule,
)
from django_tasks_sched.service.watch import FileWatcher

logger = logging.getLogger("django_tasks_sched.scheduler")

#: Longest wait between stamp reads while LISTEN or the file watch is in place (see
#: SchedulerService.poll_wait): every change NOTIFYs or writes the files, so the read only
#: stands in for a wake-up that was lost. The loop also wakes for each heartbeat, so with the
#: default HEARTBEAT_INTERVAL the two coincide.
LISTENING_POLL = 5.0

#: The interpreter's switch interval in a scheduler process (Python's default is 5 ms): how
#: long a thread running Python keeps the interpreter while another waits for it. The threads
#: that fire wait for it after each query, so next to a pass over many rows (a full pass checks
#: thousands of schedules) a fire waited 5 ms many times over: fires due during a 3 s full pass
#: at a million tasks came up to 0.6 s late. At 0.5 ms they wait a tenth as long, and a burst
#: is drained as fast as before (docs/benchmarks.md, 2026-12-08).
SWITCH_INTERVAL = 0.0005

#: Seconds a shutdown waits for the pruner's and the alerts' threads to end their pass.
HOUSEKEEPING_GRACE = 10.0


@dataclass
class Options:
    """How one scheduler process behaves; defaults come from ``TASKS_SCHED``."""

    threads: int
    poll_interval: float
    reconcile_interval: float
    heartbeat_interval: float
    heartbeat_timeout: float
    grace_period: float
    executor: str = "thread"

    @classmethod
    def from_settings(cls, **overrides: Any) -> Options:
        conf = get_settings()
        values: dict[str, Any] = {
            "threads": conf.THREADS,
            "poll_interval": conf.POLL_INTERVAL,
            "reconcile_interval": conf.RECONCILE_INTERVAL,
            "heartbeat_interval": conf.HEARTBEAT_INTERVAL,
            "heartbeat_timeout": conf.HEARTBEAT_TIMEOUT,
            "grace_period": conf.SHUTDOWN_GRACE_PERIOD,
            "executor": conf.EXECUTOR,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


class SchedulerService:
    """One ``runscheduler`` process."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.worker_id = scheduler_worker_id()
        self.stopping = threading.Event()
        self.wake = threading.Event()
        #: Set by the first stop signal (a plain flag: see request_stop).
        self._stop_requested = False
        self.executor = FiringExecutor(
            self.worker_id,
            options.threads,
            next_fire_time=self._next_fire_time,
            coalesces=self._coalesces,
            processes=options.executor == "process",
        )
        self.jobs = Jobs(self.executor)
        self.reconciler = Reconciler(self.jobs)
        self.heartbeat = Heartbeat(self.worker_id)
        self.current_version = StampReader()
        self.version = -1
        #: The firing switch as this process last saw it (see django_tasks_sched.firing).
        self.firing = True
        #: When this process paused firing (None while firing).
        self.paused_at: datetime | None = None
        #: When this process started scheduling, until its @reboot tasks are fired.
        self.reboot_at: datetime | None = None
        #: What wakes the loop on a change, once started: PostgreSQL's LISTEN thread, or on
        #: SQLite (Linux) the watch on the database's files.
        self.listener: WakeThread | None = None
        #: The pruner's and the alerts' threads, which end their pass at shutdown.
        self.housekeepers: list[threading.Thread] = []
        #: From shutdown on: each task's next fire time as it was when firing stopped.
        self.resume_points: dict[int, object] | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def run(self) -> int:
        """Start, serve until asked to stop, shut down; returns the exit status."""
        sys.setswitchinterval(SWITCH_INTERVAL)
        self.install_signal_handlers()
        self.start()
        try:
            self.loop()
        finally:
            self.shutdown()
        return 0

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGTERM, self.request_stop)

    def request_stop(self, signum: int | None = None, frame: FrameType | None = None) -> None:
        """The SIGINT and SIGTERM handler: stop gracefully; a second signal exits at once.

        A handler runs in the main thread between two of its bytecodes, maybe while it holds
        an event's lock (inside ``Event.wait()`` or ``clear()``): setting that event here
        would wait for the lock forever, and the process would go on firing until killed
        (seen in CI). So a thread of its own sets the events; ``_thread``'s, as the
        ``threading`` module's start takes a lock of its own the main thread may hold too.
        """
        if self._stop_requested:
            logger.warning("Second stop signal: exiting now without waiting for runs")
            os._exit(1)
        self._stop_requested = True
        _thread.start_new_thread(self._begin_stop, ())

    def _begin_stop(self) -> None:
        logger.info("Stop requested; finishing running runs (grace %ss)", self.options.grace_period)
        self.stopping.set()
        self.wake.set()

    def start(self) -> None:
        started = time.monotonic()
        # Registered at once: a replica starting next to us must find us live (@reboot).
        if self.heartbeat.join():
            # This start starts scheduling: its @reboot fires, now or at the resume.
            self.reboot_at = dj_timezone.now()
        prune_dead_processes(self.options.heartbeat_timeout)
        recover_orphaned_runs(self.options.heartbeat_timeout, self.worker_id)
        self.reshare()  # the part of the tasks the load reads
        # Paused while loading, so no job fires from a half-loaded table.
        self.jobs.start_paused()
        stamp = self.current_version()
        self.version, self.firing = stamp.version, stamp.firing
        if self.firing:
            added = self.load()
        else:
            added = 0
            # Nothing is loaded: the table's next fire times stand until the resume.
            self.resume_points = {}
            self.paused_at = dj_timezone.now()
            self.executor.handoffs.paused.set()
            logger.warning("Firing is paused in every scheduler process; waiting for resume")
        self.fire_reboot()
        self.listener = self._wake_thread()
        if self.listener is not None:
            self.listener.start()
        # Housekeeping in its own thread: a batch of deletes never delays a change or a fire.
        pruner = threading.Thread(
            target=Pruner.from_settings().run,
            args=(self.stopping,),
            name="dts-pruner",
            daemon=True,
        )
        pruner.start()
        # Alerts in their own thread too: a slow webhook or SMTP server never delays a fire.
        self.housekeepers = [pruner, AlertWatch().start(self.stopping)]
        self.claim_queued()
        if self.executor.workers is not None:
            logger.info("Functions are called in %d worker processes", self.options.threads)
        logger.info(
            "Scheduler %s ready in %.2fs: %d task(s) in the window (the next %g minutes, %s)",
            self.worker_id,
            time.monotonic() - started,
            added,
            self.reconciler.window.total_seconds() / 60,
            self.reconciler.share,
        )
        # The display column only: it can follow the first fires.
        self.reconciler.flush_next_runs()

    def loop(self) -> None:
        opts = self.options
        next_full = time.monotonic() + opts.reconcile_interval
        # A quarter of the window: its edge stays about three quarters ahead (if a wait
        # overruns a tiny window, the late advance catches the fires up).
        advance_every = self.reconciler.window.total_seconds() / 4
        next_advance = time.monotonic() + advance_every
        next_beat = time.monotonic() + opts.heartbeat_interval
        failures = 0
        while not self.stopping.is_set():
            # Up to the next heartbeat, not past it: with a long poll wait (LISTEN) the beats
            # keep their interval, and a beat and a stamp read share one wake-up.
            self.wake.wait(min(self.poll_wait(), max(0.0, next_beat - time.monotonic())))
            self.wake.clear()
            if self.stopping.is_set():
                break
            try:
                self.reconcile()
                now = time.monotonic()
                if now >= next_full:
                    self.full_pass()
                    next_full = now + opts.reconcile_interval
                    next_advance = now + advance_every  # a full pass advances the window
                if now >= next_advance:
                    if self.firing:
                        self.advance()
                    next_advance = now + advance_every
                if now >= next_beat:
                    with self.own_write():
                        self.heartbeat.beat()
                    self.reshare()
                    self.housekeep()
                    next_beat = now + opts.heartbeat_interval
                self.reconciler.flush_next_runs()
                failures = 0
            except Exception:
                # A database outage must not end the process: log, back off, try again.
                failures += 1
                logger.exception("Scheduler loop failed (%d in a row); retrying", failures)
                close_old_connections()
                self.stopping.wait(min(30.0, 0.5 * 2**failures))

    def full_pass(self) -> None:
        """Every ``RECONCILE_INTERVAL``: compare the loaded jobs with the table, trusting no
        stamp (raw SQL), and prune the heartbeat rows of dead processes."""
        # Connection upkeep with the full pass, not every poll: under the default
        # CONN_MAX_AGE = 0 each call reconnects, which was most of an idle scheduler's CPU
        # time. A failed query closes the connection at once.
        close_old_connections()
        if self.firing:
            self.log_reconcile("full", self.reconciler.full())
        # Not every heartbeat: liveness reads last_seen, so a dead row only lingers in lists.
        prune_dead_processes(self.options.heartbeat_timeout)

    def reshare(self) -> None:
        """Each heartbeat: take this process's part of the tasks among the live processes.

        A process counts as live here a heartbeat less long than ``HEARTBEAT_TIMEOUT``, so the
        part of one that died is taken over within the timeout. Taken for dead too early, a
        slow process only has its tasks held twice for a while: the claims keep each fire once.
        """
        if not get_settings().SHARE_WINDOW:
            return
        opts = self.options
        within = opts.heartbeat_timeout
        if within >= 3 * opts.heartbeat_interval:
            within -= opts.heartbeat_interval
        share = self.heartbeat.share(within)
        if share == self.reconciler.share:
            return
        result = self.reconciler.reshare(share)
        if result.missed:
            self.executor.add_fires(result.missed)
        logger.info(
            "Scheduler %s now holds %s (%d in, %d out)",
            self.worker_id,
            share,
            result.added,
            result.moved,
        )

    def housekeep(self) -> None:
        """Each heartbeat: end the runs no outcome will come for; start or hand off queued runs.

        Each pass reads only queued or running runs; while there are none, one indexed read
        stands for their nine queries, which were most of an idle scheduler's CPU time.
        """
        if not self._any_unfinished.rows():
            return
        recover_orphaned_runs(self.options.heartbeat_timeout, self.worker_id)
        # Runs past their task's timeout, in any process: TIMED_OUT, slot freed.
        expire_overdue_runs()
        # Runs whose function stopped sending the heartbeats its task asks for.
        interrupt_stuck_runs()
        # Runs handed to a backend that no worker started within the lease.
        if self.firing and sweep_handoffs(get_settings().HANDOFF_LEASE):
            self.executor.handoffs.request()
        # In case a wake-up was lost, and for retries whose delay has passed.
        self.claim_queued()

    @cached_property
    def _any_unfinished(self) -> Compiled:
        # On the database the claims lock rows on: a replica's lag must not hide a run.
        runs = TaskRun.objects.using(router.db_for_write(TaskRun)).unfinished()
        # Unordered, as exists() reads: the model's ordering would sort a backlog each time.
        return Compiled.select(runs.values("pk").order_by()[:1])

    def _wake_thread(self) -> WakeThread | None:
        if Listener.supported():
            return Listener(self.wake)
        files = self.current_version.files
        if FileWatcher.supported(files):
            return FileWatcher(self.wake, files, self.options.poll_interval)
        return None

    def own_write(self) -> contextlib.AbstractContextManager[None]:
        """Around the heartbeat's write, which the wake thread may then trust at once: if it
        goes to the database watched (a router may send it elsewhere)."""
        watched = self.current_version.using
        if self.listener is None or router.db_for_write(SchedulerProcess) != watched:
            return contextlib.nullcontext()
        return self.listener.own_write()

    def poll_wait(self) -> float:
        """Seconds the loop waits for a wake-up: the poll interval, or while every change wakes
        it (PostgreSQL's NOTIFY, SQLite's file watch), :data:`LISTENING_POLL` (the stamp read
        is then only a safety net, and most of an idle scheduler's CPU time was those reads).

        On SQLite, the poll's pace holds for a second after each write the watch reports: the
        commit whose write woke the loop may not be visible yet (SQLite makes it visible after
        its fsync), and no other event will come for it. After the heartbeat's own write, for
        one poll interval only (:meth:`.watch.FileWatcher.settling`). Under a poll slower than
        that second, the loop reads once more as it ends: a commit read too early would
        otherwise wait a whole poll interval.
        """
        opts = self.options
        listener = self.listener
        if listener is None or not listener.listening.is_set():
            return opts.poll_interval
        settling = listener.settling()
        if settling:
            return min(opts.poll_interval, settling)
        return max(opts.poll_interval, LISTENING_POLL)

    def reconcile(self) -> None:
        """Reconcile and claim run-now requests if the change stamp moved."""
        stamp = self.current_version()
        if stamp.version == self.version and stamp.firing == self.firing:
            return
        # Read the stamp before the rows: a change committed meanwhile moves it again.
        self.version = stamp.version
        if stamp.firing and not self.firing:
            self.resume_firing()
        elif self.firing and not stamp.firing:
            self.pause_firing()
        elif self.firing:
            self.log_reconcile("incremental", self.reconciler.incremental())
        else:
            self.forget_edited_points()
        self.claim_queued()

    def advance(self) -> None:
        """Move the window on; record the fires a late advance found missed."""
        result = self.reconciler.advance()
        if result.missed:
            self.executor.add_fires(result.missed)
        self.log_reconcile("window", result)

    def load(self) -> int:
        """Load every task (APScheduler paused, its store empty), then fire; tasks scheduled."""
        loaded = self.reconciler.load()
        self.fire(loaded)
        return loaded.added

    def fire(self, loaded: ReconcileResult) -> None:
        """Start firing the jobs a load put in the store."""
        if loaded.missed:
            # Recorded MISSED by the executor's dispatcher, like any other fire.
            self.executor.add_fires(loaded.missed)
        self.jobs.resume()

    def pause_firing(self) -> None:
        """Firing switched off: stop firing, and store where each task resumes."""
        # As at shutdown: runs finishing from here on store these points, and the reload
        # at resume catches up from them, as after downtime.
        points = self.reconciler.resume_points(self.jobs.pause_and_clear())
        self.resume_points = points
        self.firing = False
        self.executor.handoffs.paused.set()
        self.reconciler = Reconciler(self.jobs, share=self.reconciler.share)
        self.paused_at = dj_timezone.now()
        self._store_resume_points(set(points))
        logger.warning("Firing paused in every scheduler process; running runs go on")

    def resume_firing(self) -> None:
        """Firing switched back on: reload the table and catch up, as at start-up.

        Nothing changes until the load has succeeded: a failed one (the database away) leaves
        the process paused, with its resume points, to try again at the next poll.
        """
        try:
            loaded = self.reconciler.load()
        except Exception:
            self.jobs.clear()
            self.reconciler = Reconciler(self.jobs, share=self.reconciler.share)
            raise
        self.firing = True
        self.resume_points = None
        self.paused_at = None
        self.executor.handoffs.paused.clear()
        self.fire(loaded)
        self.fire_reboot()
        logger.warning("Firing resumed: %d task(s) in the window", loaded.added)

    def fire_reboot(self) -> None:
        """The @reboot tasks, once, if this process started scheduling and firing is on."""
        if self.reboot_at is not None and self.firing:
            self.executor.add_fires(reboot_fires(self.reboot_at))
            self.reboot_at = None

    def forget_edited_points(self) -> None:
        """While paused: tasks saved since the pause resume from their new schedule.

        ``Task.save()`` stored the new schedule's next fire; a run finishing now must not
        overwrite it with the point taken at the pause.
        """
        if self.paused_at is None or not self.resume_points:
            return
        edited = Task.objects.filter(
            pk__in=list(self.resume_points), updated_at__gte=self.paused_at - CLOCK_MARGIN
        ).values_list("pk", flat=True)
        for task_id in edited:
            self.resume_points[task_id] = KEEP

    def claim_queued(self) -> None:
        """Start queued runs (run-now requests, retries) here, or hand them to their backend."""
        if not self.firing:
            # Nothing new starts while firing is paused: queued runs wait for the resume.
            return
        free = self.options.threads - self.executor.running()
        # Buffered fires first: they wait for a slot of their task (overlap policy), and
        # those of a task with a backend are released to its hand-off (next line).
        released = release_buffered(self.worker_id, limit=max(free, 0))
        if waiting():
            self.executor.handoffs.request()
        for run in released:
            logger.info(
                "Run %s of task %r started from the buffer (fire of %s)",
                run.pk,
                run.task.name,
                run.scheduled_for,
            )
            self.executor.submit_run(run)
            free -= 1
        if free <= 0:
            return
        for run in claim_queued_runs(self.worker_id, limit=free):
            if run.origin == TaskRun.Origin.RETRY:
                logger.info(
                    "Run %s of task %r claimed (retry of run %s, attempt %d)",
                    run.pk,
                    run.task.name,
                    run.first_attempt_id,
                    run.attempt,
                )
            else:
                # Mostly "run now" (admin, API, command line); the origin says which.
                logger.info(
                    "Run %s of task %r claimed (%s)", run.pk, run.task.name, run.origin.lower()
                )
            self.executor.submit_run(run)

    def shutdown(self) -> None:
        """Stop firing, let runs finish within the grace period, record what was cut off."""
        self.stopping.set()
        if self.listener is not None:
            self.listener.request_stop()  # waited for at the end: a stuck connect delays nothing
        # Taken before the store is emptied: a run recorded from here on stores its task's
        # point, never "no next fire" (which would lose the downtime's catch-up). A fire
        # handed over meanwhile only makes a point earlier: a claimed fire is not claimed twice.
        if self.firing:
            self.resume_points = self.reconciler.resume_points(self.jobs.next_fires())
        # (While paused, the points stored at the pause stand.)
        assert self.resume_points is not None
        # Stops the executor taking fires, and empties APScheduler's memory store.
        self.jobs.shutdown()
        # With the fires the dispatcher was still claiming, for the runs that finish in the
        # grace period (one assignment: a recording thread sees the old dict or the new one).
        self.resume_points = resume_points(self.resume_points, self.executor.unclaimed_fires())
        pending = list(self.executor.futures)
        if pending:
            logger.info("Waiting up to %ss for %d run(s)", self.options.grace_period, len(pending))
            concurrent.futures.wait(pending, timeout=self.options.grace_period)
        self.executor.stop_runs()
        # The outcomes of the runs that finished are written before the rest is cut off.
        self.executor.close()
        close_old_connections()
        # The dispatcher has stopped: what is left unclaimed now was really dropped.
        self._store_resume_points({fire.task_id for fire in self.executor.unclaimed_fires()})
        cut = list(
            TaskRun.objects.running()
            .filter(worker_id=self.worker_id)
            .only("id", "task_id", "attempt", "first_attempt_id")
        )
        started = self.executor.started
        # Retried (by another scheduler, or this one when it is back) if retries are left.
        interrupted = end(
            [run for run in cut if run.pk in started],
            TaskRun.Status.INTERRUPTED,
            lambda run: "Interrupted: the scheduler shut down before the run finished.",
        )
        # Claimed, but no thread ever called the function: cancelled, and not as started (no
        # failure is counted, and no retry follows: the fire did not fail, it never ran).
        cancelled = end(
            [run for run in cut if run.pk not in started],
            TaskRun.Status.CANCELLED,
            lambda run: "Not started: the scheduler shut down before it could call the function.",
            started=False,
        )
        if interrupted:
            logger.warning("Marked %d unfinished run(s) INTERRUPTED at shutdown", len(interrupted))
        if cancelled:
            logger.warning("Marked %d run(s) not yet started CANCELLED at shutdown", len(cancelled))
        # Their pass ended, not cut off at exit: the database would go on with a statement
        # cut off, holding its locks after the process had gone. Bounded: a stuck webhook or
        # a batch that waits on a lock does not hold the exit up.
        deadline = time.monotonic() + HOUSEKEEPING_GRACE
        for thread in self.housekeepers:
            thread.join(max(0.0, deadline - time.monotonic()))
        # Last, once every point above is stored: the others take this process's part of the
        # tasks at their next heartbeat, and resume each where it stopped.
        self.heartbeat.stop()
        if self.listener is not None:
            self.listener.stop()
        logger.info("Scheduler %s stopped", self.worker_id)

    # -- helpers ------------------------------------------------------------------------------

    def _store_resume_points(self, task_ids: set[int]) -> None:
        """Store where tasks with dropped fires resume, so the next scheduler catches them up."""
        if not task_ids or self.resume_points is None:
            return
        points = self.resume_points
        # Not the tasks edited while paused (KEEP): their saved next fire stands.
        rows = [[pk, points.get(pk)] for pk in task_ids if points.get(pk) is not KEEP]
        if not rows:
            return
        using = router.db_for_write(Task)
        try:
            with transaction.atomic(using=using):
                update_rows(Task, ["next_run_time"], rows, using)
        except DatabaseError:
            logger.exception("Could not store where %d task(s) resume", len(rows))

    def _coalesces(self, task_id: int) -> bool:
        schedule = self.reconciler.known.get(task_id)
        return isinstance(schedule, Schedule) and schedule.coalesce

    def _next_fire_time(self, task_id: int) -> object:
        if self.resume_points is not None:
            # A task outside the window has its next fire in the table already.
            return self.resume_points.get(task_id, KEEP)
        return self.reconciler.next_fire(task_id)

    @staticmethod
    def log_reconcile(kind: str, result: Any) -> None:
        if result:
            logger.info(
                "Reconcile (%s): %d added, %d changed, %d removed, %d left the window",
                kind,
                result.added,
                result.changed,
                result.removed,
                result.left,
            )


def resume_points(next_fires: dict[int, object], unclaimed: list[Fire]) -> dict[int, object]:
    """Where each task resumes after this scheduler stops: what runs finishing late record.

    APScheduler's memory store forgets its jobs at shutdown, and fires it handed over but
    the executor never claimed are dropped. The earliest of those, or else the job's next
    fire time, is stored as ``next_run_time``, so the next scheduler to start catches up
    from there; a fire that was claimed after all is not claimed twice.
    """
    points = dict(next_fires)
    for fire in unclaimed:
        known = points.get(fire.task_id)
        if known is None or (isinstance(known, datetime) and fire.scheduled_for < known):
            points[fire.task_id] = fire.scheduled_for
    return points
