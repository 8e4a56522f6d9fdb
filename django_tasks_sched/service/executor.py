"""The APScheduler executor: APScheduler decides *when*, this module records and runs.

APScheduler's own executors call the job function and lose the nominal fire time. This one
receives the job's due ``run_times`` (already coalesced by APScheduler), applies the task's
misfire grace time, claims each fire in the database and runs it through the one run path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any

from apscheduler.executors.base import BaseExecutor
from django.db import close_old_connections
from django.utils import timezone

from django_tasks_sched.execution import execute_run
from django_tasks_sched.models import TaskRun
from django_tasks_sched.service.claims import claim_fire, record_missed

logger = logging.getLogger(__name__)

#: APScheduler's per-process instance limit is bypassed: max_instances is enforced across all
#: processes by the database claim instead.
UNLIMITED_INSTANCES = 1_000_000


def fire_placeholder() -> None:
    """The ``func`` of every APScheduler job; never called (the executor runs the task)."""


class FiringExecutor(BaseExecutor):
    """Runs due fires and queued runs on a pool of threads."""

    def __init__(self, worker_id: str, max_workers: int) -> None:
        super().__init__()
        self.worker_id = worker_id
        self.pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="dts-run")
        self.futures: set[Future[Any]] = set()
        #: Set by the service: returns the job's next fire time, for the task's display field.
        self.next_fire_time: Callable[[str], datetime | None] = lambda job_id: None

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        grace = job.misfire_grace_time
        future = self.pool.submit(self._fire, int(job.id), list(run_times), grace)
        self._track(future, on_done=lambda: self._run_job_success(job.id, []))

    def submit_run(self, run: TaskRun) -> None:
        """Execute an already claimed (RUNNING) run, e.g. a run-now, on the pool."""
        self._track(self.pool.submit(self._execute, run))

    def _track(self, future: Future[Any], on_done: Callable[[], None] | None = None) -> None:
        self.futures.add(future)

        def done(f: Future[Any]) -> None:
            self.futures.discard(f)
            if on_done is not None:
                on_done()

        future.add_done_callback(done)

    def _fire(self, task_id: int, run_times: list[datetime], grace: int | None) -> None:
        close_old_connections()
        try:
            for scheduled_for in run_times:
                lateness = (timezone.now() - scheduled_for).total_seconds()
                if grace is not None and lateness > grace:
                    record_missed(
                        task_id,
                        scheduled_for,
                        self.worker_id,
                        f"Started {lateness:.1f}s late, past the misfire grace time of {grace}s.",
                    )
                    continue
                run = claim_fire(task_id, scheduled_for, self.worker_id)
                if run is not None and run.status == TaskRun.Status.RUNNING:
                    execute_run(
                        run,
                        worker_id=self.worker_id,
                        next_run_time=self.next_fire_time(str(task_id)),
                    )
        except Exception:
            # A database outage or a bug here must never kill the pool thread silently.
            logger.exception("Could not fire task %s at %s", task_id, run_times)
        finally:
            close_old_connections()

    def _execute(self, run: TaskRun) -> None:
        close_old_connections()
        try:
            execute_run(run, worker_id=self.worker_id)
        except Exception:
            logger.exception("Could not execute run %s", run.pk)
        finally:
            close_old_connections()

    def running(self) -> int:
        return len(self.futures)

    def shutdown(self, wait: bool = True) -> None:
        self.pool.shutdown(wait=wait, cancel_futures=True)
