"""``manage.py backfilltask NAME START END``: replay a range of a task's schedule."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_tasks_sched.backfill import fire_times
from django_tasks_sched.exceptions import TaskConfigError
from django_tasks_sched.models import Task


def _when(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(
            f"{value!r} is not an ISO 8601 date or datetime, e.g. 2026-12-01 or "
            "2026-12-01T09:00+01:00."
        ) from None


class Command(BaseCommand):
    help = (
        "Queue one run for each fire time of a task's schedule in [START, END) that has no run "
        "yet; the scheduler processes run them in order. Naive times are in TIME_ZONE."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="The task's name.")
        parser.add_argument("start", type=_when, help="The first instant (included), ISO 8601.")
        parser.add_argument("end", type=_when, help="The last instant (excluded), ISO 8601.")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Only print the fire times it would queue runs for.",
        )

    def handle(
        self, *args: Any, name: str, start: datetime, end: datetime, dry_run: bool, **options: Any
    ) -> None:
        task = Task.objects.named(name).first()
        if task is None:
            raise CommandError(f"No task named {name!r}.")
        try:
            if dry_run:
                times = fire_times(task, start, end)
                for when in times:
                    self.stdout.write(when.isoformat())
                self.stdout.write(f"{len(times)} fire time(s) in the range (dry run).")
                return
            runs = task.backfill(start, end)
        except TaskConfigError as exc:
            raise CommandError(f"{exc.field}: {exc.message}") from None
        for run in runs:
            assert run.scheduled_for is not None
            self.stdout.write(f"Run {run.pk} queued for {run.scheduled_for.isoformat()}")
        self.stdout.write(
            f"{len(runs)} run(s) queued for {task.name!r}; fire times that already had a run "
            "were left alone."
        )
