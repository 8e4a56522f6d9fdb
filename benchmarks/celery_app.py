"""The Celery app of the hand-off benchmark: ``celery -A benchmarks.celery_app worker``."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")

app = Celery(
    "benchmarks", broker=os.environ.get("BENCH_CELERY_BROKER", "redis://127.0.0.1:6379/14")
)
app.conf.update(
    imports=["django_tasks_sched.contrib.celery.tasks"],
    task_ignore_result=True,
    worker_prefetch_multiplier=1,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)
# Celery's Django fix-up closes the database connection before and after every task unless
# this is set (it has no new-style name): reuse it, as CONN_MAX_AGE asks.
app.conf["CELERY_DB_REUSE_MAX"] = 1000
