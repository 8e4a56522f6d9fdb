"""django-apscheduler started as its README does: a management command of the project."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Benchmark 8's peer: APScheduler with django-apscheduler's job store."

    def handle(self, *args: Any, **options: Any) -> None:
        from benchmarks.peers import serve_django_apscheduler

        serve_django_apscheduler()
