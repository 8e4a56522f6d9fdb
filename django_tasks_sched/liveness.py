"""Each process says its runs are alive: what detects a run whose process died.

One thread per process (started on first use) stamps ``alive_at`` on every run the process is
executing, in one UPDATE per ``HEARTBEAT_INTERVAL``, whatever the function is doing. A run
whose stamp (or start, before the first) is older than ``HEARTBEAT_TIMEOUT`` has lost its
process, wherever that ran (a scheduler, a worker of a fleet, an inline caller): any scheduler's
housekeeping ends it INTERRUPTED (:func:`.service.housekeeping.interrupt_silent_runs`) and the
task's retry policy follows.

A run ended meanwhile by another process (cancelled by overlap ``cancel_other``, timed out by a
watchdog, taken for dead) is noticed at the same beat: a run with a stop registered
(:meth:`Liveness.on_end`) is stopped: the process executor kills its worker process, a fleet's
worker interrupts its main thread (:mod:`django_tasks_sched.stopping`).

This is the process's liveness, not the function's: a function stuck in a loop still looks
alive here. ``Task.heartbeat_timeout`` asks the function itself for heartbeats
(``current_run().heartbeat()``), which :func:`~.service.housekeeping.interrupt_stuck_runs` checks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.db import close_old_connections, connections, router, transaction
from django.utils import timezone

logger = logging.getLogger(__name__)


class Liveness(threading.Thread):
    """The thread that stamps ``alive_at`` on the runs this process executes."""

    def __init__(self, interval: float) -> None:
        super().__init__(name="dts-liveness", daemon=True)
        self.interval = interval
        self._ids: set[int] = set()
        #: How to stop the call of a run that another process ended, where it can be stopped.
        self._stops: dict[int, Callable[[], None]] = {}
        self._lock = threading.Lock()
        self._stop_event = threading.Event()

    def add(self, run_id: int) -> None:
        with self._lock:
            self._ids.add(run_id)

    def discard(self, run_id: int) -> None:
        with self._lock:
            self._ids.discard(run_id)
            self._stops.pop(run_id, None)

    def on_end(self, run_id: int, stop: Callable[[], None] | None) -> None:
        """Call ``stop`` if the run is ended elsewhere while it runs here (None: forget it)."""
        with self._lock:
            if stop is None:
                self._stops.pop(run_id, None)
            else:
                self._stops[run_id] = stop

    def beating(self) -> list[int]:
        with self._lock:
            return sorted(self._ids)

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self.beat()

    def beat(self) -> int:
        """Stamp the runs now; returns how many rows were stamped."""
        ids = self.beating()
        if not ids:
            return 0
        try:
            stamped = _stamp(ids)
            if stamped < len(ids):
                self._stop_ended()
            return stamped
        except Exception:
            # The database is away: the next beat tries again; a run silent for longer than
            # the timeout is what the timeout is for.
            logger.warning("Could not record that %d run(s) are alive", len(ids), exc_info=True)
            return 0
        finally:
            close_old_connections()

    def _stop_ended(self) -> None:
        """Stop the calls of runs that are no longer RUNNING (ended by another process)."""
        from django_tasks_sched.models import TaskRun

        with self._lock:
            watched = dict(self._stops)
        if not watched:
            return
        ended = TaskRun.objects.filter(pk__in=list(watched)).exclude(status=TaskRun.Status.RUNNING)
        for run_id, status in ended.values_list("pk", "status"):
            logger.warning("Run %s was ended elsewhere (%s): stopping its call", run_id, status)
            watched[run_id]()


def _stamp(ids: list[int]) -> int:
    """Stamp the RUNNING runs among ``ids`` alive, skipping rows another transaction holds.

    A run row is held while its outcome is being written (that process's dispatcher, a
    watchdog): waiting for it would hold up the stamps of every other run of this process,
    and lock rows in another order than the writer does. Such a run is stamped next time.
    """
    from django_tasks_sched.models import TaskRun

    using = router.db_for_write(TaskRun)
    running = TaskRun.objects.using(using).filter(pk__in=ids, status=TaskRun.Status.RUNNING)
    if not connections[using].features.has_select_for_update_skip_locked:
        return running.update(alive_at=timezone.now())
    with transaction.atomic(using=using):
        free = list(running.select_for_update(skip_locked=True).order_by("pk").values_list("pk"))
        if not free:
            return 0
        return (
            TaskRun.objects.using(using)
            .filter(pk__in=[pk for (pk,) in free])
            .update(alive_at=timezone.now())
        )


_liveness: Liveness | None = None
_liveness_lock = threading.Lock()


def liveness() -> Liveness:
    """This process's liveness thread, started on first use."""
    global _liveness
    with _liveness_lock:
        if _liveness is None or not _liveness.is_alive():
            from django_tasks_sched.conf import get_settings

            _liveness = Liveness(get_settings().HEARTBEAT_INTERVAL)
            _liveness.start()
        return _liveness


@contextmanager
def alive(run_id: int) -> Iterator[None]:
    """Keep stamping the run alive for the duration of the block."""
    beats = liveness()
    beats.add(run_id)
    try:
        yield
    finally:
        beats.discard(run_id)
