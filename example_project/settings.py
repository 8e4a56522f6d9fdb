"""Settings of the example project; every value can be overridden from the environment.

``DATABASE_URL`` picks the database (default: the SQLite file ``example_project/db.sqlite3``),
e.g. ``postgres://postgres@127.0.0.1:5432/dts`` or ``mysql://root@127.0.0.1:3306/dts``.
The defaults are for a local demo: DEBUG on and a secret key that is public. Do not deploy them.
"""

from __future__ import annotations

from pathlib import Path

import environ

# The callable policy allows the project's own apps, i.e. those located under BASE_DIR,
# so example_project.jobs may be scheduled while django.* and the standard library may not.
BASE_DIR = Path(__file__).resolve().parent

env = environ.Env(
    DEBUG=(bool, True),
    ALLOWED_HOSTS=(list, ["127.0.0.1", "localhost", "[::1]"]),
    TIME_ZONE=(str, "UTC"),
)

SECRET_KEY = env.str("SECRET_KEY", default="django-insecure-example-project-dev-only-not-secret")
DEBUG = env("DEBUG")
ALLOWED_HOSTS: list[str] = env("ALLOWED_HOSTS")

DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The dev server and a scheduler process write to the same file: WAL lets readers go on
    # while one writes, and the timeout makes a writer wait for the lock instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        timeout=20, init_command="PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL"
    )
elif DATABASES["default"]["ENGINE"] == "django.db.backends.mysql":
    DATABASES["default"].setdefault("OPTIONS", {})["charset"] = "utf8mb4"

TIME_ZONE: str = env("TIME_ZONE")
USE_TZ = True
USE_I18N = True
LANGUAGE_CODE = "en-us"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_tasks_sched",
    "rest_framework",
    "example_project.jobs",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"
WSGI_APPLICATION = "example_project.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

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

STATIC_URL = "static/"

# Where example_project.jobs.jobs.write_heartbeat appends its lines.
HEARTBEAT_FILE = Path(env.str("HEARTBEAT_FILE", default=str(BASE_DIR / "heartbeat.log")))

# Every key is optional; with no ALLOWED_MODULES, only this project's apps may be scheduled.
TASKS_SCHED: dict[str, object] = {}
