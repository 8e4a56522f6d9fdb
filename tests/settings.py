"""Settings of the test project: DATABASE_URL picks the database (default: a SQLite file).

A file, not ``:memory:``, so scheduler subprocesses spawned by the tests share the database.
"""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent
env = environ.Env()

# Each pytest process gets its own SQLite file; child processes inherit the name via the env.
os.environ.setdefault(
    "DTS_TEST_SQLITE", str(Path(tempfile.gettempdir()) / f"dts-test-{os.getpid()}.sqlite3")
)

_sqlite_default = "sqlite:///" + os.environ["DTS_TEST_SQLITE"]
DATABASES = {"default": env.db_url("DATABASE_URL", default=_sqlite_default)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": os.environ["DTS_TEST_SQLITE"]}
    # WAL lets the test process read while a scheduler subprocess writes. The busy timeout is
    # shortened for the test of "database is locked" (tests/test_outages.py).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        timeout=float(os.environ.get("DTS_TEST_SQLITE_TIMEOUT", "20")),
        init_command="PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
    )
elif DATABASES["default"]["ENGINE"] == "django.db.backends.mysql":
    DATABASES["default"].setdefault("OPTIONS", {})["charset"] = "utf8mb4"
    DATABASES["default"]["TEST"] = {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"}

if DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
    # One test database per pytest process, so that two suites on one server (CI beside a
    # developer's run) never drop each other's database. Children inherit the number.
    _pid = os.environ.setdefault("DTS_TEST_PID", str(os.getpid()))
    DATABASES["default"].setdefault("TEST", {})["NAME"] = (
        f"test_{DATABASES['default']['NAME']}_{_pid}"
    )

# Scheduler subprocesses spawned by the tests must open the test database, not the real one.
if os.environ.get("DTS_SUBPROCESS_DB_NAME"):
    DATABASES["default"]["NAME"] = os.environ["DTS_SUBPROCESS_DB_NAME"]

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    # The admin's CSS and JavaScript, served by the live server of the browser tests.
    "django.contrib.staticfiles",
    "django_tasks_sched",
    "django_tasks_db",
    "tests.testapp",
]
# django-celery-beat's models, for the tests of importcelerybeat (the "celerybeat" extra; it
# does not support Django 6.1 yet, and those tests say so where it is missing).
HAS_CELERY_BEAT = importlib.util.find_spec("django_celery_beat") is not None
if HAS_CELERY_BEAT:
    INSTALLED_APPS.append("django_celery_beat")

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Django 6.1 sends mail through MAILERS and warns without one (test runs swap in locmem).
MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}

# tests.testapp is a project app (under BASE_DIR), so its jobs are allowed by default.
# A scheduler subprocess may be given its own keys (tests.processes.SchedulerProcess(settings=)).
TASKS_SCHED: dict[str, object] = json.loads(os.environ.get("DTS_TEST_TASKS_SCHED", "{}"))

# OpenTelemetry spans of this process to a file (tests/test_tracing.py follows a trace from a
# scheduler to a fleet's worker).
if os.environ.get("DTS_TEST_SPANS"):
    from tests.spans import export_spans_to

    export_spans_to(os.environ["DTS_TEST_SPANS"])

# Worker fleets (tests/test_fleet.py): django.tasks on Django 6, its backport on Django 5.2.
# Queue names are this test run's own, so two runs on one Redis or RabbitMQ never share work;
# child processes (schedulers, workers) inherit the name.
_TASKS_PACKAGE = "django.tasks" if importlib.util.find_spec("django.tasks") else "django_tasks"
if _TASKS_PACKAGE == "django_tasks":
    INSTALLED_APPS.append("django_tasks")
if os.environ.get("DTS_TEST_NO_FLEET"):
    # A project without fleets (tests/test_fleet.py checks it imports none of their packages).
    INSTALLED_APPS = [
        app
        for app in INSTALLED_APPS
        # django-celery-beat imports Celery: a project without fleets has no reason to.
        if app not in ("django_tasks", "django_tasks_db", "django_celery_beat")
    ]
FLEET_QUEUE = os.environ.setdefault("DTS_TEST_QUEUE", f"dts-{os.getpid()}")
TASKS = {
    "default": {"BACKEND": f"{_TASKS_PACKAGE}.backends.immediate.ImmediateBackend"},
    "db": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default", FLEET_QUEUE]},
    "celery": {
        "BACKEND": "django_tasks_sched.contrib.celery.CeleryBackend",
        "QUEUES": [FLEET_QUEUE],
        "OPTIONS": {"APP": "tests.celery_app:app"},
    },
}
if os.environ.get("DTS_TEST_TASKS_NO_DEFAULT"):
    # No "default" backend, and no "default" queue: the hand-off must not need either.
    TASKS = {"db": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": [FLEET_QUEUE]}}

# The REST API (tests/test_api*.py), where REST framework is installed (the [api] extra): its
# tests skip without it, as the package works without it.
HAS_REST_FRAMEWORK = importlib.util.find_spec("rest_framework") is not None
if HAS_REST_FRAMEWORK:
    INSTALLED_APPS += ["rest_framework", "rest_framework.authtoken"]
# Session, Basic and token authentication.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
}
# The live test server serves STATIC_URL; without one it fails on some requests (TRACE).
STATIC_URL = "/static/"
