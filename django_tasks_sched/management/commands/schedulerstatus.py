"""``manage.py schedulerstatus``: list live scheduler processes; exit 1 if none (health check)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from django_tasks_sched.models import SchedulerProcess


class Command(BaseCommand):
    help = "List live scheduler processes; exit with status 1 when none is alive."

    def handle(self, *args: Any, **options: Any) -> None:
        processes = list(SchedulerProcess.objects.alive())
        now = timezone.now()
        for proc in processes:
            age = (now - proc.last_seen).total_seconds()
            self.stdout.write(
                f"{proc.worker_id}  host={proc.hostname} pid={proc.pid} "
                f"version={proc.version} up since {proc.started_at:%Y-%m-%d %H:%M:%S}Z "
                f"last seen {age:.1f}s ago"
            )
        if not processes:
            self.stderr.write("No live scheduler process.")
            raise SystemExit(1)
        self.stdout.write(f"{len(processes)} live scheduler process(es).")
