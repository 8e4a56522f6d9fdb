"""``manage.py schedulerstatus``: list live scheduler processes; exit 1 if none (health check)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from django_tasks_sched.firing import firing
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
        switch = firing()
        if not switch.on:
            # Alive but not firing: said, not a failed health check (it was asked for).
            self.stdout.write(
                f"Firing is paused in every scheduler process (by {switch.changed_by or '?'} "
                f"at {switch.changed_at:%Y-%m-%d %H:%M:%S}Z)."
                if switch.changed_at
                else "Firing is paused in every scheduler process."
            )
        if not processes:
            self.stderr.write("No live scheduler process.")
            raise SystemExit(1)
        self.stdout.write(f"{len(processes)} live scheduler process(es).")
