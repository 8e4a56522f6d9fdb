"""The APScheduler executor: APScheduler decides *when*, this module records and runs.

APScheduler's own executors call the job function and lose the nominal fire time. This one
only queues each due job's ``run_times`` (already coalesced by APScheduler). One dispatcher
thread then does the scheduler's run bookkeeping in batches: it writes the outcomes of the runs
that finished, claims the queued fires (misfire grace time, ``max_instances``, exactly-once:
see :mod:`.claims`) and hands the RUNNING runs to a pool of threads, which run them through the
one run path and pass the outcomes back. The pool threads run user code and nothing else, so
a burst of ten thousand fires costs a few dozen transactions, not tens of thousands. With the
process executor each pool thread calls the function in a worker process instead
(:mod:`.processes`), and the bookkeeping stays the same.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import datetime
from queue import SimpleQueue
from typing import Any

from apscheduler.executors.base import BaseExecutor
from django.db import close_old_connections

from django_tasks_sched.conf import get_settings
from django_tasks_sched.execution import execute_run
from django_tasks_sched.fleet.handoff import HandOffThread
from django_tasks_sched.lifecycle import KEEP, TRANSIENT_ERRORS, Finished, finish, finish_or_fail
from django_tasks_sched.liveness import liveness
from django_tasks_sched.models import TaskRun
from django_tasks_sched.rawsql import is_deadlock
from django_tasks_sched.reasons import COALESCED
from django_tasks_sched.service.claims import BATCH_SIZE, Fire, claim_fires
from django_tasks_sched.service.processes import WorkerPool

logger = logging.getLogger(__name__)

#: Most finished runs written in one transaction.
RECORD_BATCH_SIZE = 1000
#: The first claim batch of a burst (see batch_bounds).
FIRST_BATCH = 25

#: Seconds between the dispatcher's ``close_old_connections()`` (also its idle wake-up): per
#: batch would reconnect hundreds of times a second under the default ``CONN_MAX_AGE = 0``.
CONNECTION_CHECK_INTERVAL = 5.0


class FiringExecutor(BaseExecutor):
    """Claims due fires in batches and runs them, and queued runs, on a pool of threads."""

    def __init__(
        self,
        worker_id: str,
        threads: int,
        *,
        next_fire_time: Callable[[int], object],
        coalesces: Callable[[int], bool],
        processes: bool = False,
    ) -> None:
        """``next_fire_time`` and ``coalesces`` answer for a task from the service's jobs:
        its next fire (stored with each finished run) and whether it coalesces overdue fires.
        """
        super().__init__()
        self.worker_id = worker_id
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="dts-run")
        #: With ``processes``, each thread calls the function in a worker process of its own.
        self.workers = WorkerPool(threads) if processes else None
        self.futures: set[Future[Any]] = set()
        #: Runs whose function was called and whose outcome is not written yet.
        self.started: set[int] = set()
        #: Stamps ``alive_at`` on each run from its claim until its outcome is written.
        self.liveness = liveness()
        self.next_fire_time = next_fire_time
        self.coalesces = coalesces
        self._fires: deque[Fire] = deque()
        self._finished: deque[TaskRun] = deque()
        self._wake = threading.Event()
        self._firing_stopped = threading.Event()
        self._closing = threading.Event()
        self._dispatcher = threading.Thread(target=self._dispatch, name="dts-dispatch", daemon=True)
        self._lines = LineWriter()
        #: Sends the claimed runs of tasks with a backend to it, off the dispatcher's path.
        self.handoffs = HandOffThread(get_settings().RECONCILE_INTERVAL)

    # -- APScheduler's side -------------------------------------------------------------------

    def start(self, scheduler: Any, alias: str) -> None:
        super().start(scheduler, alias)
        self._dispatcher.start()
        self._lines.start()
        self.handoffs.start()

    def submit_job(self, job: Any, run_times: list[datetime]) -> None:
        # Not BaseExecutor.submit_job: its per-process instance count needs a callback per
        # fire, and max_instances is enforced across processes by the claim anyway.
        self._do_submit_job(job, run_times)

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        if self._firing_stopped.is_set():
            return
        task_id, grace = int(job.id), job.misfire_grace_time
        # APScheduler's own coalescing is off (it would drop the earlier fires unrecorded):
        # the task's setting is applied when the fires are claimed (see coalesce).
        self._fires.extend(Fire(task_id, when, grace) for when in run_times)
        self._wake.set()

    def add_fires(self, fires: list[Fire]) -> None:
        """Claim (or record) these fires as if APScheduler had handed them over."""
        self._fires.extend(fires)
        self._wake.set()

    def shutdown(self, wait: bool = True) -> None:
        """Stop taking fires; runs not yet started are cancelled (the service records them)."""
        # Fires queued but not yet claimed are dropped unrecorded, as APScheduler's own
        # executors drop the jobs they had not started.
        self._firing_stopped.set()
        self.pool.shutdown(wait=wait, cancel_futures=True)

    # -- the service's side -------------------------------------------------------------------

    def unclaimed_fires(self) -> list[Fire]:
        """After :meth:`shutdown`: the fires handed over that were never claimed (dropped)."""
        return list(self._fires)

    def submit_run(self, run: TaskRun) -> None:
        """Execute an already claimed (RUNNING) run, e.g. a run-now, on the pool."""
        self._submit(run)

    def running(self) -> int:
        """Runs claimed by this process and not finished (running, or waiting for a thread)."""
        return len(self.futures)

    def stop_runs(self, timeout: float = 10.0) -> None:
        """After the grace period: stop the runs still going, where they can be stopped.

        Worker processes are killed, and their runs recorded INTERRUPTED by their threads. A
        thread cannot be stopped: its run is left for the service to record INTERRUPTED.
        """
        if self.workers is None:
            return
        self.workers.stop()
        wait(list(self.futures), timeout=timeout)

    def close(self, timeout: float = 30.0) -> None:
        """After :meth:`shutdown`: record the outcomes still pending and stop the dispatcher."""
        self._closing.set()
        self._wake.set()
        self._dispatcher.join(timeout)
        self._lines.stop()
        self.handoffs.stop()

    # -- the dispatcher thread ----------------------------------------------------------------

    def _dispatch(self) -> None:
        failures = 0
        next_check = time.monotonic() + CONNECTION_CHECK_INTERVAL
        while True:
            self._wake.wait(CONNECTION_CHECK_INTERVAL)
            self._wake.clear()
            closing = self._closing.is_set()
            try:
                # Outcomes first: a run that finished must not still count as RUNNING
                # against max_instances when the next fire of its task is claimed.
                self._record_finished()
                if not self._firing_stopped.is_set():
                    self._claim_fires()
            except Exception as exc:
                if is_deadlock(exc):
                    # Another writer locked the same rows in the other order; nothing was
                    # written, and the next pass writes it: a line, not a traceback.
                    logger.warning("Recording runs met a deadlock (%s); retrying", exc)
                    time.sleep(0.05)
                    self._wake.set()
                    continue
                failures += 1
                logger.exception("Recording runs failed (%d in a row); retrying", failures)
                close_old_connections()
                if closing and failures >= 3:
                    return
                time.sleep(min(30.0, 0.25 * 2**failures))
                self._wake.set()
                continue
            failures = 0
            if closing and not self._finished:
                close_old_connections()
                return
            if time.monotonic() >= next_check:
                close_old_connections()
                next_check = time.monotonic() + CONNECTION_CHECK_INTERVAL

    def _claim_fires(self) -> None:
        first = FIRST_BATCH
        while self._fires and not self._firing_stopped.is_set():
            # The whole backlog at once (APScheduler appends on the right meanwhile), so that
            # coalescing sees every pending fire of a task, however many batches they fill.
            pending = [self._fires.popleft() for _ in range(len(self._fires))]
            pending = coalesce(pending, self.coalesces)
            for start, end in batch_bounds(len(pending), first):
                # Fires that came while these were claimed are the same burst's: their first
                # batch goes on growing (runs are going already; small ones only cost).
                first = min(BATCH_SIZE, max(FIRST_BATCH, 2 * (end - start)))
                if self._firing_stopped.is_set():
                    self._fires.extendleft(reversed(pending[start:]))  # seen at shutdown
                    return
                batch = pending[start:end]
                try:
                    runs = claim_fires(batch, self.worker_id)
                except TRANSIENT_ERRORS:
                    self._fires.extendleft(reversed(pending[start:]))
                    raise
                except Exception:
                    logger.exception("Could not claim %d fire(s) together; one by one", len(batch))
                    runs = self._claim_one_by_one(batch)
                handed_off = False
                for run in runs:
                    if run.status == TaskRun.Status.QUEUED:
                        handed_off = True  # for a backend's workers
                    else:
                        self._submit(run)
                if handed_off:
                    self.handoffs.request()

    def _claim_one_by_one(self, fires: list[Fire]) -> list[TaskRun]:
        runs = []
        for fire in fires:
            try:
                runs += claim_fires([fire], self.worker_id)
            except Exception:
                logger.exception("Could not fire task %s at %s", fire.task_id, fire.scheduled_for)
        return runs

    def _record_finished(self) -> None:
        while self._finished:
            count = min(RECORD_BATCH_SIZE, len(self._finished))
            batch = [self._finished.popleft() for _ in range(count)]
            finished = self._with_next_fires(batch)
            try:
                finish(finished)
            except TRANSIENT_ERRORS:
                self._finished.extendleft(reversed(batch))
                raise
            except Exception:
                logger.exception("Could not record %d run(s) together; one by one", len(batch))
                for index, item in enumerate(finished):
                    try:
                        finish_or_fail(item)
                    except TRANSIENT_ERRORS:
                        # Kept for the next pass, as the batch would have been.
                        self._finished.extendleft(reversed([run for run, _ in finished[index:]]))
                        raise
                    self.started.discard(item[0].pk)
            # Recorded: a shutdown now has nothing to say of them.
            self.started.difference_update(run.pk for run in batch)
            for run in batch:
                self.liveness.discard(run.pk)

    def _with_next_fires(self, batch: list[TaskRun]) -> list[Finished]:
        """Each run, with the next fire its task's row is to hold: its job's, or a fire of the
        task still queued here, if earlier. Should this process die before claiming that fire,
        the process that takes the task over resumes there, and the fire is not lost.

        The jobs are read before the queue: APScheduler queues a fire before it moves the job
        on, so a fire the job has already passed is in the queue by the time it is read.
        """
        finished: list[Finished] = [(run, self._next_run_time(run)) for run in batch]
        if not self._fires:
            return finished
        queued = earliest_fires(self._fires.copy(), {run.task_id for run in batch})
        return [(run, earlier(when, queued.get(run.task_id))) for run, when in finished]

    def _next_run_time(self, run: TaskRun) -> object:
        # Scheduled runs refresh the task's next fire; a run-now leaves it alone.
        return KEEP if run.scheduled_for is None else self.next_fire_time(run.task_id)

    # -- the pool threads ---------------------------------------------------------------------

    def _submit(self, run: TaskRun) -> None:
        try:
            future = self.pool.submit(self._execute, run)
        except RuntimeError:
            # Shutting down: the run stays RUNNING, and the service records it INTERRUPTED.
            logger.info("Run %s of task %s not started: shutting down", run.pk, run.task_id)
            return
        # Alive while it waits for a thread too: its start was written at the claim.
        self.liveness.add(run.pk)
        self.futures.add(future)
        future.add_done_callback(self.futures.discard)

    def _execute(self, run: TaskRun) -> None:
        self.started.add(run.pk)
        handed = False

        def record(finished: TaskRun) -> None:
            nonlocal handed
            handed = True
            self._finish(finished)

        # The task's own queries follow Django's rules for long-running processes; a run that
        # does not touch the database opens no connection here.
        close_old_connections()
        try:
            execute_run(
                run,
                worker_id=self.worker_id,
                record=record,
                announce=self._lines.put,
                call=self.workers.call if self.workers else None,
            )
        except Exception:
            logger.exception("Could not execute run %s", run.pk)
        finally:
            # With an outcome, the run leaves ``started`` once that is written (the dispatcher
            # discards it): until then a shutdown must not take it for never started.
            if not handed:
                self.started.discard(run.pk)
                self.liveness.discard(run.pk)
            close_old_connections()

    def _finish(self, run: TaskRun) -> None:
        self._finished.append(run)
        self._wake.set()


def batch_bounds(count: int, first: int = FIRST_BATCH) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of the claim batches for ``count`` fires: ``first`` long, then doubling.

    A burst's first functions start once a batch of :data:`FIRST_BATCH` has committed, not
    after the whole burst's claims; the batches grow to :data:`BATCH_SIZE`, where a claim's
    statements cost least per fire. A pass that continues a burst starts at twice its last
    batch (see ``FiringExecutor._claim_fires``).
    """
    start, size = 0, first
    while start < count:
        yield start, min(count, start + size)
        start += size
        size = min(BATCH_SIZE, size * 2)


def coalesce(fires: list[Fire], coalesces: Callable[[int], bool]) -> list[Fire]:
    """Fold the due fires of each coalescing task into its latest; the others become MISSED.

    Several fires of one task come due together when APScheduler hands over a backlog (after
    a start-up catch-up) and while the database is away (the dispatcher keeps the fires until
    it is back). Either way a coalescing task runs once, for its latest fire, and each folded
    fire is recorded as coalesced. A task that does not coalesce runs each of them, in order:
    they are marked ``catch_up``, and wait for a slot rather than being skipped (see
    :func:`.overlap.decide`). Applied per backlog.
    """
    latest: dict[int, datetime] = {}
    count: dict[int, int] = {}
    for fire in fires:
        if fire.missed_reason is None:
            count[fire.task_id] = count.get(fire.task_id, 0) + 1
            if coalesces(fire.task_id) and (
                fire.task_id not in latest or fire.scheduled_for > latest[fire.task_id]
            ):
                latest[fire.task_id] = fire.scheduled_for
    if len(count) == sum(count.values()):
        return fires  # one fire per task: nothing to fold (the common case)
    folded = []
    for fire in fires:
        if fire.missed_reason is not None or count[fire.task_id] == 1:
            folded.append(fire)
        elif fire.task_id not in latest:
            folded.append(fire._replace(catch_up=True))
        elif fire.scheduled_for < latest[fire.task_id]:
            folded.append(fire._replace(missed_reason=COALESCED))
        else:
            folded.append(fire)
    return folded


class LineWriter(threading.Thread):
    """Writes the runs' "started" and "finished" log lines, made in the pool threads.

    Ten threads logging to one handler queue up on its lock, and each holder that gives up
    the interpreter lock for its write waits to get it back: writing those lines cost more
    than recording the runs. One thread writing them all does not (the standard library's
    QueueListener does the same).
    """

    def __init__(self) -> None:
        super().__init__(name="dts-log", daemon=True)
        self.queue: SimpleQueue[logging.LogRecord | None] = SimpleQueue()

    def put(self, record: logging.LogRecord) -> None:
        self.queue.put(record)

    def run(self) -> None:
        while (record := self.queue.get()) is not None:
            try:
                logging.getLogger(record.name).handle(record)
            except Exception:
                logger.exception("Could not write a run's log line")

    def stop(self, timeout: float = 5.0) -> None:
        self.queue.put(None)
        if self.is_alive():
            self.join(timeout)


def earliest_fires(fires: Iterator[Fire] | deque[Fire], task_ids: set[int]) -> dict[int, datetime]:
    """The earliest of ``fires`` of each of ``task_ids``."""
    earliest: dict[int, datetime] = {}
    for fire in fires:
        if fire.task_id in task_ids:
            when = earliest.get(fire.task_id)
            if when is None or fire.scheduled_for < when:
                earliest[fire.task_id] = fire.scheduled_for
    return earliest


def earlier(next_fire: object, queued: datetime | None) -> object:
    """A task's next fire for its row: ``queued`` if it comes first (or there is no next);
    ``KEEP`` stays (the row's value is the task's fire outside the window, or a run-now's)."""
    if queued is None or next_fire is KEEP:
        return next_fire
    if next_fire is None or (isinstance(next_fire, datetime) and queued < next_fire):
        return queued
    return next_fire
