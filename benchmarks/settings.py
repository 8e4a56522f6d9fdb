"""Settings of the benchmark project: ``DATABASE_URL`` picks the database.

Independent of example_project and tests: the scheduler processes the benchmarks spawn and the
benchmark process itself both load this module. SQLite gets the options docs/scheduler.md
recommends (WAL, a busy timeout).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent
env = environ.Env()

_default_sqlite = Path(tempfile.gettempdir()) / "dts-bench.sqlite3"
DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{_default_sqlite}")}
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
]

# Every other key keeps its default: the benchmarks measure the out-of-the-box scheduler.
TASKS_SCHED = {"ALLOWED_MODULES": ["benchmarks.jobs"]}
