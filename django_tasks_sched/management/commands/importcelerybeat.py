"""``manage.py importcelerybeat``: django-celery-beat's periodic tasks as Tasks."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from django_tasks_sched import audit
from django_tasks_sched.celerybeat import convert
from django_tasks_sched.models import Task, TaskChange


class Command(BaseCommand):
    help = (
        "Create a Task for each django-celery-beat PeriodicTask, with the same schedule, time "
        "zone, arguments and enabled state, and report what cannot be converted and why. "
        "Tasks whose name exists already are left alone. Exit status 1 when some could not be "
        "converted."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "names", nargs="*", help="Only the periodic tasks of these names (default: all)."
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Report what would be created; save nothing."
        )
        parser.add_argument(
            "--disable-celerybeat",
            action="store_true",
            help="Disable each periodic task that was imported, so the two schedulers do not "
            "both run it.",
        )

    def handle(
        self,
        *args: Any,
        names: list[str],
        dry_run: bool,
        disable_celerybeat: bool,
        **options: Any,
    ) -> None:
        if not apps.is_installed("django_celery_beat"):
            raise CommandError(
                "django_celery_beat is not in INSTALLED_APPS: its PeriodicTask table is what "
                "this command reads."
            )
        from django_celery_beat.models import PeriodicTask

        periodic = PeriodicTask.objects.select_related(
            "interval", "crontab", "clocked", "solar"
        ).order_by("name")
        if names:
            periodic = periodic.filter(name__in=names)
            missing = sorted(set(names) - set(periodic.values_list("name", flat=True)))
            if missing:
                raise CommandError(f"No periodic task named {', '.join(map(repr, missing))}.")
        existing = set(Task.objects.values_list("name", flat=True))
        created, skipped, failed = [], [], []
        # The tasks it creates are recorded in the audit trail as this command's.
        with transaction.atomic(), audit.recording(TaskChange.Via.COMMAND):
            for row in periodic:
                if row.name in existing:
                    skipped.append(row.name)
                    self.stdout.write(f"= {row.name}: a task of that name exists; left alone")
                    continue
                conversion = convert(row)
                if conversion.task is None:
                    failed.append(row.name)
                    self.stdout.write(f"x {row.name}: not converted")
                    for problem in conversion.problems:
                        self.stdout.write(f"    {problem}")
                    continue
                task = conversion.task
                if not dry_run:
                    task.save()
                    if disable_celerybeat and row.enabled:
                        row.enabled = False
                        row.save(update_fields=["enabled"])
                created.append(row.name)
                self.stdout.write(
                    f"+ {row.name}: {task.trigger} {task.trigger_config}"
                    + ("" if task.active else " (inactive)")
                )
                for note in conversion.notes:
                    self.stdout.write(f"    note: {note}")
        verb = "would be created" if dry_run else "created"
        self.stdout.write(
            f"{len(created)} task(s) {verb}, {len(skipped)} left alone (name taken), "
            f"{len(failed)} not converted."
        )
        if created and not dry_run and not disable_celerybeat:
            self.stdout.write(
                "Both schedulers now run the imported tasks: disable them in django-celery-beat "
                "(or run again with --disable-celerybeat) before starting runscheduler."
            )
        if failed:
            raise CommandError(f"{len(failed)} periodic task(s) not converted.", returncode=1)
