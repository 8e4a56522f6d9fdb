"""The Celery app of the tests' fleet: ``celery -A tests.celery_app worker``.

The broker is ``DTS_CELERY_BROKER`` (Redis by default; RabbitMQ in some tests). Celery's Django
fix-up sets Django up in the worker from ``DJANGO_SETTINGS_MODULE``.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

app = Celery("tests", broker=os.environ.get("DTS_CELERY_BROKER", "redis://127.0.0.1:6379/15"))
app.conf.update(
    imports=["django_tasks_sched.contrib.celery.tasks"],
    task_ignore_result=True,
    # One message at a time per worker process: a killed worker takes at most one run with it.
    worker_prefetch_multiplier=1,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)
