"""``manage.py checkalerts``: evaluate the alerts once, send the changes; exit 1 if any is raised.

The "no scheduler process alive" alert cannot come from a scheduler: run this from cron or a
Kubernetes CronJob. It evaluates the other alerts too, which is all they need without a
scheduler (say, with every task handed to a fleet's workers).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from django_tasks_sched.alerts.channels import send
from django_tasks_sched.alerts.evaluate import LOOKBACK, AlertChecker, check_no_scheduler
from django_tasks_sched.alerts.states import Change
from django_tasks_sched.models import AlertState

#: Most minutes ``--since`` accepts (one week of runs, read in bounded pages).
MAX_SINCE_MINUTES = 7 * 24 * 60


class Command(BaseCommand):
    help = (
        "Evaluate the alerts once (including 'no scheduler process alive') and send the "
        "changes; exit with status 1 while any alert is raised."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--scheduler-only",
            action="store_true",
            help="Only check whether a scheduler process is alive.",
        )
        parser.add_argument(
            "--since",
            type=int,
            default=int(LOOKBACK.total_seconds() // 60),
            metavar="MINUTES",
            help="Read the runs finished in the last MINUTES (default: %(default)s).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        since = options["since"]
        if not 1 <= since <= MAX_SINCE_MINUTES:
            self.stderr.write(f"--since must be from 1 to {MAX_SINCE_MINUTES} minutes.")
            raise SystemExit(2)
        now = timezone.now()
        if options["scheduler_only"]:
            for change in check_no_scheduler(now):
                self.send(change)
        else:
            checker = AlertChecker(since=now - timedelta(minutes=since), notify=self.send)
            checker.check(now, no_scheduler=True)
        raised = list(AlertState.objects.filter(raised=True).select_related("task")[:100])
        for state in raised:
            self.stdout.write(f"Raised now: {state}")
        if raised:
            raise SystemExit(1)
        self.stdout.write("No alert is raised.")

    def send(self, change: Change) -> None:
        """Send a change this command won, at once, and say so."""
        failed = send(change)
        verb = "Raised" if change.raised else "Resolved"
        note = f" (failed channels: {', '.join(failed)})" if failed else ""
        self.stdout.write(f"{verb}: {change.state}{note}")
