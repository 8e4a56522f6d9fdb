"""Settings of the benchmark project: ``DATABASE_URL`` picks the database.

Independent of example_project and tests: the scheduler processes the benchmarks spawn and the
benchmark process itself both load this module. SQLite gets the options docs/scheduler.md
recommends (WAL, a busy timeout).
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent
env = environ.Env()

_default_sqlite = Path(tempfile.gettempdir()) / "dts-bench.sqlite3"
DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{_default_sqlite}")}
# The fleets' workers keep their connection between runs, as production workers are set up
# (Celery's and db_worker's per-task cleanup would otherwise reconnect for every run); the
# schedulers keep Django's default, which the scheduler benchmarks measure.
DATABASES["default"]["CONN_MAX_AGE"] = int(environ.Env().str("BENCH_CONN_MAX_AGE", "0"))
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        timeout=20, init_command="PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL"
    )

SECRET_KEY = "benchmarks-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django_tasks_sched",
    "django_tasks_db",
]

# The peers benchmark (benchmarks/peers.py) runs django-apscheduler beside us, when installed.
# "benchmarks" for its runapscheduler command, started as django-apscheduler's README shows.
if importlib.util.find_spec("django_apscheduler"):
    INSTALLED_APPS += ["django_apscheduler", "benchmarks"]

# The hand-off benchmark's fleets (benchmarks/handoff.py): django-tasks-db and Celery.
_TASKS_PACKAGE = "django.tasks" if importlib.util.find_spec("django.tasks") else "django_tasks"
if _TASKS_PACKAGE == "django_tasks":
    INSTALLED_APPS.append("django_tasks")
TASKS = {
    "default": {"BACKEND": f"{_TASKS_PACKAGE}.backends.immediate.ImmediateBackend"},
    "db": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["bench"]},
    "celery": {
        "BACKEND": "django_tasks_sched.contrib.celery.CeleryBackend",
        "QUEUES": ["bench"],
        "OPTIONS": {"APP": "benchmarks.celery_app:app"},
    },
}

# Every other key keeps its default: the benchmarks measure the out-of-the-box scheduler.
TASKS_SCHED = {"ALLOWED_MODULES": ["benchmarks.jobs"]}
