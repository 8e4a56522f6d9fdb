"""The APScheduler seam: the one module that drives APScheduler 3's scheduler and job store.

APScheduler decides *when*: it holds one job per active task in a ``MemoryJobStore`` (job id =
the task's primary key; nothing is pickled into the database) and hands each due fire to the
firing executor (:mod:`.executor`). Everything else (the reconcile, the run path, shutdown)
talks to :class:`Jobs`, never to APScheduler's scheduler or store directly. The triggers it
is given are APScheduler triggers, wrapped by :mod:`.guard` (and :mod:`.jitter`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.util import obj_to_ref

#: APScheduler's per-process instance limit is bypassed: max_instances is enforced across all
#: processes by the database claim instead.
UNLIMITED_INSTANCES = 1_000_000

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def fire_placeholder() -> None:
    """The ``func`` of every APScheduler job; never called (the executor runs the task)."""


_FUNC_REF = obj_to_ref(fire_placeholder)


class Jobs:
    """APScheduler's scheduler, with its store of one job per active task."""

    def __init__(self, executor: BaseExecutor) -> None:
        self.store = MemoryJobStore()
        self.scheduler = BackgroundScheduler(
            jobstores={"default": self.store},
            executors={"default": executor},
            timezone=timezone.utc,
        )

    # -- the scheduler's life -----------------------------------------------------------------

    def start_paused(self) -> None:
        """Start with firing paused: the store is filled first (:meth:`load`)."""
        self.scheduler.start(paused=True)

    def resume(self) -> None:
        self.scheduler.resume()

    def pause_and_clear(self) -> dict[int, datetime | None]:
        """Stop firing and drop every job; each task's next fire time as it was.

        Under APScheduler's store lock, which a pass over due jobs holds throughout: a pass
        under way finishes first (its fires are handed over), and none sees a job vanish.
        """
        self.scheduler.pause()
        with self.scheduler._jobstores_lock:
            points = self.next_fires()
            self.store.remove_all_jobs()
        return points

    def clear(self) -> None:
        """Drop every job (the scheduler paused), as before a fresh :meth:`load`."""
        with self.scheduler._jobstores_lock:
            self.store.remove_all_jobs()

    def shutdown(self) -> None:
        """Stop firing; APScheduler empties the store (read :meth:`next_fires` before)."""
        self.scheduler.shutdown(wait=False)

    # -- reading ------------------------------------------------------------------------------

    def get(self, task_id: int) -> Job | None:
        """The task's job, if it has one."""
        job: Job | None = self.store.lookup_job(str(task_id))
        return job

    def all(self) -> list[Job]:
        """Every job, in the store's order (next fire time, then id)."""
        jobs: list[Job] = self.store.get_all_jobs()
        return jobs

    def next_fire(self, task_id: int) -> datetime | None:
        """The task's next fire time; None when it has no job (finished, or inactive).

        The store's own lookup, without the scheduler's lock: the executor asks for each run
        it records, while APScheduler may hold that lock for a whole burst.
        """
        job = self.get(task_id)
        return job.next_run_time if job else None

    def next_fires(self) -> dict[int, datetime | None]:
        """Every task's next fire time."""
        return {int(job.id): job.next_run_time for job in self.all()}

    # -- writing ------------------------------------------------------------------------------

    def build(
        self,
        task_id: int,
        name: str,
        trigger: Any,
        next_run_time: datetime | None,
        grace: int | None,
    ) -> Job:
        """A job built as APScheduler's job stores restore them, without per-job validation.

        The one check of APScheduler's that a row can fail is made here, so a row refused at
        load is refused as it would be later, by ``add_job``.
        """
        if grace is not None and grace < 1:
            raise ValueError(f"misfire_grace_time must be at least 1 second or empty, not {grace}")
        job = Job.__new__(Job)
        job.__setstate__(
            {
                "version": 1,
                "id": str(task_id),
                "func": _FUNC_REF,
                "trigger": trigger,
                "executor": "default",
                "args": (),
                "kwargs": {},
                "name": name,
                "misfire_grace_time": grace,
                # Never APScheduler's coalescing: the executor applies the task's own,
                # recording the fires it folds (APScheduler would drop them without a trace).
                "coalesce": False,
                "max_instances": UNLIMITED_INSTANCES,
                "next_run_time": next_run_time,
            }
        )
        job._scheduler = self.scheduler
        job._jobstore_alias = "default"
        return job

    def load(self, jobs: Iterable[Job]) -> None:
        """Fill the store at start-up (the scheduler paused), with no per-job wake-up."""
        # In the store's own order (fire time, then id), each insert lands at the end of its
        # sorted list: 100,000 inserts do not each shift the whole list.
        for job in sorted(jobs, key=_store_order):
            self.store.add_job(job)

    def put(
        self,
        task_id: int,
        name: str,
        trigger: Any,
        first: datetime | None,
        grace: int | None,
        *,
        replace_trigger: bool,
    ) -> tuple[datetime | None, bool]:
        """Change the task's job (its trigger too, with ``replace_trigger``), or add one.

        Through APScheduler's API, which wakes it up for the change. Returns the job's next
        fire time and whether a job was changed (else one was added).
        """
        job_id = str(task_id)
        options: dict[str, Any] = {"coalesce": False, "misfire_grace_time": grace, "name": name}
        if replace_trigger:
            options.update(trigger=trigger, next_run_time=first)
        if self.get(task_id) is not None:
            job = self.scheduler.modify_job(job_id, **options)
            return job.next_run_time, True
        # None yet, or a date task that already fired (APScheduler dropped its job).
        options.update(trigger=trigger, next_run_time=first)
        self.scheduler.add_job(
            fire_placeholder,
            id=job_id,
            replace_existing=True,
            max_instances=UNLIMITED_INSTANCES,
            **options,
        )
        return first, False

    def beyond(self, until: datetime) -> dict[int, datetime]:
        """The jobs whose next fire is after ``until``, with that fire time.

        From the end of the store's sorted list, under the store lock: the cost is the number
        of jobs found, not the number held.
        """
        edge = until.timestamp()
        found: dict[int, datetime] = {}
        with self.scheduler._jobstores_lock:
            for job, timestamp in reversed(self.store._jobs):
                if timestamp is None:
                    continue  # paused: no next fire, sorted last
                if timestamp <= edge:
                    break
                found[int(job.id)] = job.next_run_time
        return found

    def remove(self, task_id: int) -> None:
        """Drop the task's job, if it has one."""
        with contextlib.suppress(JobLookupError):
            self.scheduler.remove_job(str(task_id))


def _store_order(job: Job) -> tuple[bool, datetime, str]:
    # The store's order: by next fire time (paused jobs, with none, last), then by id.
    when = job.next_run_time
    return (when is None, when or _EPOCH, job.id)
