"""The heartbeat row of a scheduler process (what orphan recovery judges it alive by)."""

from __future__ import annotations

import logging
import os
import secrets
import socket
from functools import cached_property

from django.db import router, transaction
from django.utils import timezone

import django_tasks_sched
from django_tasks_sched.changes import STAMP_PK, ensure_stamp
from django_tasks_sched.models import SchedulerProcess, ScheduleStamp, alive_since
from django_tasks_sched.rawsql import take_write_lock
from django_tasks_sched.service.compiled import HOLE, Compiled
from django_tasks_sched.service.share import Share, share_of

logger = logging.getLogger(__name__)

SCHEDULER_PREFIX = "scheduler:"


def scheduler_worker_id() -> str:
    """A unique id for this scheduler process: ``scheduler:host:pid:random``."""
    return f"{SCHEDULER_PREFIX}{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Heartbeat:
    """Keeps this process's ``SchedulerProcess`` row fresh and removes it on shutdown."""

    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id

    # Compiled once: each heartbeat's UPDATE and read then cost a fifth of their CPU time.
    @cached_property
    def _beat(self) -> Compiled:
        rows = SchedulerProcess.objects.filter(worker_id=self.worker_id)
        return Compiled.update(rows, last_seen=HOLE)

    @cached_property
    def _live(self) -> Compiled:
        # From the database join() reads: a replica's lag would make the views differ longer.
        using = router.db_for_write(SchedulerProcess)
        rows = SchedulerProcess.objects.using(using).seen_since(HOLE)
        return Compiled.select(rows.values_list("worker_id"))

    def beat(self) -> None:
        """Insert or refresh the row (re-created if another process pruned it as stale)."""
        now = timezone.now()
        if not self._beat.rowcount(now):
            SchedulerProcess.objects.create(
                worker_id=self.worker_id,
                hostname=socket.gethostname(),
                pid=os.getpid(),
                version=django_tasks_sched.__version__,
                started_at=now,
                last_seen=now,
            )

    def join(self) -> bool:
        """Register this process; True if no other live one is registered: scheduling starts.

        Serialised on the change stamp's row (SQLite: the write lock), so of processes
        starting together exactly one finds none before it; the others find its row. A
        process that stopped gracefully removed its row, one that died is live until its
        heartbeat is older than ``HEARTBEAT_TIMEOUT``.
        """
        ensure_stamp()
        using = router.db_for_write(SchedulerProcess)
        with transaction.atomic(using=using):
            take_write_lock(SchedulerProcess, using)
            # Locking reads, so MariaDB's repeatable read sees what committed while we waited.
            list(ScheduleStamp.objects.using(using).select_for_update().filter(pk=STAMP_PK))
            others = (
                SchedulerProcess.objects.using(using)
                .alive()
                .exclude(worker_id=self.worker_id)
                .select_for_update()
            )
            alone = not list(others.values_list("pk", flat=True))
            self.beat()
        return alone

    def share(self, within: float) -> Share:
        """This process's part of the tasks among those whose heartbeat is ``within`` seconds
        old (see :mod:`~django_tasks_sched.service.share`)."""
        live = self._live.rows(alive_since(within))
        return share_of(self.worker_id, [worker_id for (worker_id,) in live])

    def stop(self) -> None:
        SchedulerProcess.objects.filter(worker_id=self.worker_id).delete()
