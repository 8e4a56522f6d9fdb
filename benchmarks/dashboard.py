"""How fast the admin's dashboard page answers on a big history, and with how many queries.

    python benchmarks/dashboard.py --db sqlite --quick      # 10,000 tasks, 100,000 runs
    python benchmarks/dashboard.py --db postgres            # 100,000 tasks, 1,000,000 runs

Fills a fresh database (the same as ``benchmarks/run.py``: SQLite in a temporary directory, or
``BENCH_POSTGRES_URL``, dropped and created again) in bulk batches, then renders the whole page
(the view and its template, as the admin serves it) a few times and prints the table. No
scheduler process runs: the page reads rows, and the rows are what is measured.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.harness import Result, median, ms  # noqa: E402  (needs the path above)

#: Runs created per INSERT batch.
BATCH = 5000
#: Of the runs: these statuses in turn (mostly successful, as in a healthy history).
MIX = ["SUCCESSFUL"] * 17 + ["FAILED", "MISSED"]


def __getattr__(name: str) -> Any:
    # This module is also the benchmark's URLconf (ROOT_URLCONF below), built on first use:
    # the admin cannot be imported before django.setup().
    if name == "urlpatterns":
        from django.contrib import admin
        from django.urls import path

        return [path("admin/", admin.site.urls)]
    raise AttributeError(name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--quick", action="store_true", help="10,000 tasks and 100,000 runs")
    parser.add_argument("--repeat", type=int, default=5, help="renders measured (default 5)")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args()
    tasks, runs = (10_000, 100_000) if args.quick else (100_000, 1_000_000)
    setup(args.db)

    from benchmarks.harness import analyze, machine_notes
    from benchmarks.run import print_notes, print_table

    load_at_start = os.getloadavg()
    results = [measure(args.db, "empty database", args.repeat)]
    began = time.monotonic()
    fill(tasks, runs)
    analyze()
    print(f"filled {tasks:,} tasks and {runs:,} runs in {time.monotonic() - began:.0f} s")
    results.append(measure(args.db, f"{tasks:,} tasks, {runs:,} runs", args.repeat))
    print_notes({args.db: machine_notes(args.db, load_at_start)})
    print_table(results, markdown=args.markdown)
    return 0 if all(r.met for r in results) else 1


def setup(db: str) -> None:
    """The benchmark settings, with the admin added, on a fresh database."""
    from benchmarks.harness import database_url, recreate_database

    workdir = Path(tempfile.mkdtemp(prefix=f"dts-bench-dashboard-{db}-"))
    url = database_url(db, workdir)
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"
    recreate_database(db, url)

    import django
    from django.conf import settings
    from django.core.management import call_command

    # The page is an admin page: the admin's app, templates and URLs, on top of the settings
    # the other benchmarks use (changed here, before the apps load).
    apps = ["django.contrib.admin", "django.contrib.messages", *settings.INSTALLED_APPS]
    settings.INSTALLED_APPS = apps
    settings.TEMPLATES = [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "APP_DIRS": True,
            "OPTIONS": {
                "context_processors": [
                    "django.template.context_processors.request",
                    "django.contrib.auth.context_processors.auth",
                    "django.contrib.messages.context_processors.messages",
                ]
            },
        }
    ]
    settings.ROOT_URLCONF = "benchmarks.dashboard"
    django.setup()
    # The admin's checks ask for sessions and middleware this page does not need.
    call_command("migrate", verbosity=0, skip_checks=True)


def fill(tasks: int, runs: int) -> None:
    """``tasks`` tasks firing over the next day, and ``runs`` runs over the last two weeks."""
    from benchmarks.harness import create_tasks
    from django_tasks_sched.models import Task, TaskRun

    now = datetime.now(UTC).replace(microsecond=0)
    create_tasks(_tasks(tasks, now), batch=BATCH)
    ids = list(Task.objects.order_by("pk").values_list("pk", flat=True))
    per_task = max(1, runs // len(ids))
    batch: list[TaskRun] = []
    for number, (task_id, j) in enumerate((t, j) for t in ids for j in range(per_task)):
        # Spread over 14 days, one fire time per (task, run): the unique constraint holds.
        at = now - timedelta(minutes=(j + 1) * 14 * 24 * 60 // per_task, seconds=task_id % 60)
        # A few runs still going, and some of them retries: the stuck and retrying sections.
        status = "RUNNING" if number % 5000 == 0 else MIX[number % len(MIX)]
        batch.append(
            TaskRun(
                task_id=task_id,
                status=status,
                scheduled_for=at,
                enqueued_at=at,
                started_at=None if status == "MISSED" else at + timedelta(seconds=number % 7),
                finished_at=None if status == "RUNNING" else at + timedelta(seconds=number % 7 + 1),
                attempt=2 if number % 10_000 == 0 else 1,
                worker_id="bench",
            )
        )
        if len(batch) >= BATCH:
            TaskRun.objects.bulk_create(batch)
            batch = []
    if batch:
        TaskRun.objects.bulk_create(batch)


def _tasks(count: int, now: datetime) -> Iterator[dict[str, Any]]:
    for i in range(count):
        start = now + timedelta(seconds=i % 3600)
        yield {
            "name": f"dash-{i:06d}",
            "trigger": "interval",
            "trigger_config": {"minutes": 5 + i % 120, "start_date": start.isoformat()},
            "alert_no_success_minutes": 60 if i % 10 == 0 else None,
            "timeout": 300 if i % 4 == 0 else None,
        }


def measure(db: str, label: str, repeat: int) -> Result:
    """Render the page ``repeat`` times (after one warm-up); the median, the worst, the queries."""
    from django.contrib.admin import site
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import RequestFactory
    from django.test.utils import CaptureQueriesContext

    from django_tasks_sched.admin.dashboard import dashboard_view
    from django_tasks_sched.models import Task

    model_admin = site._registry[Task]
    request = RequestFactory().get("/admin/django_tasks_sched/task/dashboard/")
    request.user = User(username="bench", is_staff=True, is_superuser=True, is_active=True)

    def render() -> int:
        with CaptureQueriesContext(connection) as captured:
            response = dashboard_view(model_admin, request)
            response.render()  # type: ignore[attr-defined]
        assert response.status_code == 200
        return len(captured.captured_queries)

    queries = render()
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        render()
        times.append(time.perf_counter() - began)
    target = 2.0 if db == "sqlite" else 1.0
    return Result(
        benchmark=f"dashboard page, {label}",
        database=db,
        measured=f"median {ms(median(times))}, worst {ms(max(times))}, {queries} queries",
        target=f"median <= {ms(target)}",
        met=median(times) <= target,
    )


if __name__ == "__main__":
    sys.exit(main())
