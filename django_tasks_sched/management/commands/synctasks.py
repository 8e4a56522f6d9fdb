"""``manage.py synctasks``: bring the Task table in step with the tasks declared in code."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import ngettext

from django_tasks_sched.sync import sync_tasks


class Command(BaseCommand):
    help = (
        "Create, update and retire the tasks declared with @scheduler.task, in "
        'TASKS_SCHED["TASKS"] and in pyproject.toml [tool.scheduled]. Never changes an '
        "admin's active switch or the fields a declaration does not set."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Report what would change, and save nothing.",
        )

    def handle(self, *args: Any, dry_run: bool = False, **options: Any) -> None:
        report = sync_tasks(dry_run=dry_run)
        for line in report.lines():
            self.stdout.write(line)
        if report.errors:
            # After the report: the valid declarations were applied, the broken ones named.
            count = len(report.errors)
            message = ngettext(
                "%(count)d declaration could not be synced; see the error above.",
                "%(count)d declarations could not be synced; see the errors above.",
                count,
            )
            raise CommandError(message % {"count": count})
