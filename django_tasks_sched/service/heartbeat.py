"""The heartbeat row of a scheduler process (what orphan recovery judges it alive by)."""

from __future__ import annotations

import logging
import os
import secrets
import socket

from django.utils import timezone

import django_tasks_sched
from django_tasks_sched.models import SchedulerProcess

logger = logging.getLogger(__name__)

SCHEDULER_PREFIX = "scheduler:"


def scheduler_worker_id() -> str:
    """A unique id for this scheduler process: ``scheduler:host:pid:random``."""
    return f"{SCHEDULER_PREFIX}{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Heartbeat:
    """Keeps this process's ``SchedulerProcess`` row fresh and removes it on shutdown."""

    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id

    def beat(self) -> None:
        """Insert or refresh the row (re-created if another process pruned it as stale)."""
        now = timezone.now()
        if not SchedulerProcess.objects.filter(worker_id=self.worker_id).update(last_seen=now):
            SchedulerProcess.objects.create(
                worker_id=self.worker_id,
                hostname=socket.gethostname(),
                pid=os.getpid(),
                version=django_tasks_sched.__version__,
                started_at=now,
                last_seen=now,
            )

    def stop(self) -> None:
        SchedulerProcess.objects.filter(worker_id=self.worker_id).delete()
