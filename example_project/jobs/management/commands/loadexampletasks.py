"""``manage.py loadexampletasks``: create the example tasks (safe to run again)."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from example_project.jobs.examples import InvalidExampleTask, load_example_tasks


class Command(BaseCommand):
    help = (
        "Create the example tasks that do not exist yet. Existing ones are kept as they are "
        "(admin edits survive); --reset restores them to the example values."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--reset",
            action="store_true",
            help="Also overwrite example tasks that already exist with the example values.",
        )

    def handle(self, *args: Any, reset: bool, **options: Any) -> None:
        try:
            result = load_example_tasks(reset=reset)
        except InvalidExampleTask as exc:
            raise CommandError(str(exc)) from exc
        for label, names in (
            ("Created", result.created),
            ("Reset", result.reset),
            ("Kept", result.kept),
        ):
            if names:
                self.stdout.write(f"{label} {len(names)} task(s): {', '.join(names)}")
        if result.created or result.reset:
            self.stdout.write(self.style.SUCCESS("Example tasks are ready."))
        else:
            self.stdout.write("Example tasks already exist; nothing changed (use --reset).")
