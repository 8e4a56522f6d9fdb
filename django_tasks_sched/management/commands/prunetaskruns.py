"""``manage.py prunetaskruns``: delete the run history the retention settings no longer keep."""

from __future__ import annotations

from argparse import ArgumentTypeError
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from django_tasks_sched.conf import get_settings
from django_tasks_sched.retention import prune_runs


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ArgumentTypeError(
            _("%(value)r is not a whole number of at least 1") % {"value": text}
        )
    return value


class Command(BaseCommand):
    help = (
        "Delete finished task runs older than RUN_RETENTION_DAYS or beyond RUN_RETENTION_COUNT "
        "per task (or the task's own keep_runs_days / keep_runs_count), in small batches."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Count the runs that would be deleted, and delete nothing.",
        )
        parser.add_argument(
            "--batch-size",
            type=positive_int,
            default=None,
            help="Runs deleted per statement and transaction (default: PRUNE_BATCH_SIZE).",
        )
        parser.add_argument(
            "--max-batches",
            type=positive_int,
            default=None,
            help="Stop after this many batches (default: until nothing is due).",
        )

    def handle(
        self,
        *args: Any,
        dry_run: bool = False,
        batch_size: int | None = None,
        max_batches: int | None = None,
        **options: Any,
    ) -> None:
        if options["verbosity"] >= 2:
            self.stdout.write(self.describe_settings())
        report = prune_runs(batch_size=batch_size, max_batches=max_batches, dry_run=dry_run)
        for line in report.lines():
            self.stdout.write(line)

    @staticmethod
    def describe_settings() -> str:
        """The default limits in one line (shown at ``--verbosity 2``)."""
        conf = get_settings()
        days, count = conf.RUN_RETENTION_DAYS, conf.RUN_RETENTION_COUNT
        age = ngettext("%(n)d day", "%(n)d days", days) % {"n": days} if days else _("no age limit")
        most = (
            ngettext("the newest %(n)d run per task", "the newest %(n)d runs per task", count)
            % {"n": count}
            if count
            else _("no count limit")
        )
        return _(
            "Default retention: %(age)s, %(most)s; a task's keep_runs_days and keep_runs_count "
            "override these."
        ) % {"age": age, "most": most}
