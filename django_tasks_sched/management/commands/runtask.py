"""``manage.py runtask NAME``: run one task now in this process and report the outcome."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_tasks_sched.models import Task, TaskRun


class Command(BaseCommand):
    help = "Run one task now in this process, print the outcome, exit non-zero on failure."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="The task's name.")

    def handle(self, *args: Any, name: str, **options: Any) -> None:
        try:
            task = Task.objects.get(name=name)
        except Task.DoesNotExist:
            raise CommandError(f"No task named {name!r}.") from None
        run = task.run_now(origin=TaskRun.Origin.CLI, inline=True)
        duration = run.duration.total_seconds() if run.duration else 0.0
        self.stdout.write(f"Run {run.pk} of {task.name!r}: {run.status} in {duration:.3f}s")
        if run.status == TaskRun.Status.SUCCESSFUL:
            self.stdout.write(json.dumps(run.return_value, indent=2, default=repr))
            return
        self.stderr.write(run.error)
        if run.traceback:
            self.stderr.write(run.traceback)
        retry = (
            TaskRun.objects.queued()
            .filter(first_attempt_id=run.first_attempt_id or run.pk, attempt=run.attempt + 1)
            .first()
        )
        if retry is not None:
            when = retry.not_before.isoformat() if retry.not_before else "now"
            self.stdout.write(
                f"Retry {retry.pk} (attempt {retry.attempt}) queued for a scheduler process, "
                f"not before {when}."
            )
        raise SystemExit(1)
