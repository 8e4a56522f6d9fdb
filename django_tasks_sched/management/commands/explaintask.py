"""``manage.py explaintask NAME [--at TIME] [--json]``: why a task did not run, or will not."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from django_tasks_sched.explain import explain
from django_tasks_sched.models import Task


def _moment(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(
            f"--at {value!r} is not an ISO 8601 datetime, e.g. 2026-12-01T09:00+01:00."
        ) from None
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


class Command(BaseCommand):
    help = (
        "Say why a task does not fire (inactive, retired, no runs left, its schedule or "
        "function refused, firing paused, no scheduler running, its overlap policy), its next "
        "fire time and what became of its last fire. Exit status 1 when something keeps it "
        "from firing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="The task's name.")
        parser.add_argument(
            "--at",
            type=_moment,
            help="A moment to ask about (ISO 8601; naive times are in TIME_ZONE): whether it "
            "is a fire time, and what became of that fire.",
        )
        parser.add_argument("--json", action="store_true", help="Print the answer as JSON.")

    def handle(self, *args: Any, name: str, at: datetime | None, **options: Any) -> None:
        task = Task.objects.named(name).first()
        if task is None:
            raise CommandError(f"No task named {name!r}.")
        answer = explain(task, at)
        if options["json"]:
            self.stdout.write(json.dumps(answer.as_dict(), indent=2))
        else:
            self.stdout.write(answer.summary())
            for finding in answer.findings:
                mark = "x" if finding.blocking else "-"
                self.stdout.write(f"  {mark} {finding.message}")
        if answer.blocked:
            raise CommandError(f"Task {task.name} will not fire.", returncode=1)
