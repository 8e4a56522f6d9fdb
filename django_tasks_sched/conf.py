"""Typed, lazily read access to the ``TASKS_SCHED`` settings dict.

Nothing reads settings at import time: :func:`get_settings` builds an
:class:`AppSettings` on first use and caches it until Django's
``setting_changed`` signal says ``TASKS_SCHED`` changed (tests use
``override_settings`` a lot).
"""

from __future__ import annotations

import keyword
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from os import PathLike
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.translation import gettext as _

SETTING_NAME = "TASKS_SCHED"

#: Every key ``TASKS_SCHED`` accepts, with its default. Documented in docs/settings.md.
DEFAULTS: Mapping[str, Any] = {
    # Module prefixes whose callables tasks may run; None means "the project's own apps".
    "ALLOWED_MODULES": None,
    # Tasks declared in settings, in Flask-APScheduler's ``JOBS`` shape.
    "TASKS": [],
    # The pyproject.toml read for [tool.scheduled] tables; None means BASE_DIR / cwd.
    "PYPROJECT": None,
    # runscheduler: threads that execute runs in one scheduler process.
    "THREADS": 10,
    # runscheduler: "thread" calls functions in those threads, "process" in a worker process
    # per thread (a run past its timeout is killed).
    "EXECUTOR": "thread",
    # runscheduler: seconds between looks at the change stamp (PostgreSQL also LISTENs).
    "POLL_INTERVAL": 0.25,
    # runscheduler: seconds between full reconciles that trust no stamp (catches raw SQL).
    "RECONCILE_INTERVAL": 60,
    # runscheduler: minutes ahead a scheduler process holds tasks in memory; tasks firing later
    # wait in the table, found through the indexed next_run_time (docs/window.md).
    "WINDOW_MINUTES": 10,
    # runscheduler: seconds between heartbeats, and after which a silent process is dead.
    "HEARTBEAT_INTERVAL": 5,
    "HEARTBEAT_TIMEOUT": 30,
    # runscheduler: several processes share the window, each holding its part of the tasks
    # (a dead one's part is taken over within HEARTBEAT_TIMEOUT); False: each holds all of it.
    "SHARE_WINDOW": True,
    # runscheduler: seconds running runs get to finish after SIGTERM/SIGINT.
    "SHUTDOWN_GRACE_PERIOD": 30,
    # Most characters of a run's own log output kept in TaskRun.log.
    "RUN_LOG_LIMIT": 65536,
    # Run history: finished runs older than this many days are deleted (None or 0: never).
    "RUN_RETENTION_DAYS": 30,
    # Run history: most finished runs kept per task, the newest (None or 0: no limit).
    "RUN_RETENTION_COUNT": None,
    # runscheduler: seconds between pruning passes (None: the scheduler never prunes).
    "PRUNE_INTERVAL": 300,
    # Most runs one pruning batch deletes, in one short transaction.
    "PRUNE_BATCH_SIZE": 1000,
    # Tasks with a backend: seconds a handed-off run may wait for a worker before it counts as
    # lost (re-sent once, then recorded MISSED), unless the backend says it is still waiting.
    "HANDOFF_LEASE": 600,
    # Overlap "buffer_all": most fires of one task that wait for a free slot; a fire beyond it
    # is recorded MISSED (dropped by the buffer limit).
    "OVERLAP_BUFFER_LIMIT": 200,
    # Email ADMINS (django.core.mail.mail_admins) when a run fails, times out or is interrupted,
    # and when a task is deactivated after too many failures in a row.
    "MAIL_ADMINS_ON_FAILURE": False,
    # Alerts, sent once per change of state (docs/alerts.md); read by django_tasks_sched.alerts.
    "ALERTS": {
        # Defaults for the tasks whose own alert fields are empty.
        "ON_FAILURE": False,
        "ON_MISSED": False,
        "NO_SUCCESS_MINUTES": None,
        # Where alerts go: any of "mail", "webhook", "signal".
        "CHANNELS": ["mail", "signal"],
        # Mail recipients; None: settings.ADMINS (mail_admins).
        "MAIL_TO": None,
        # The webhook's http(s) URL (a JSON POST, Slack-compatible), and its timeout in seconds.
        "WEBHOOK_URL": None,
        "WEBHOOK_TIMEOUT": 5,
        # runscheduler: seconds between alert checks.
        "CHECK_INTERVAL": 30,
    },
}


#: Keys that were renamed: the old name still works (check W006 asks for the new one).
RENAMED: Mapping[str, str] = {
    # "sync" means declarations -> table; table -> scheduler is the reconcile.
    "FULL_SYNC_INTERVAL": "RECONCILE_INTERVAL",
    # "worker" means a process that calls task functions (the process executor's, a fleet's).
    "WORKERS": "THREADS",
}


@dataclass(frozen=True)
class Malformed:
    """A security setting that is set but unusable: it allows nothing until it is fixed."""

    #: The setting as written, e.g. ``TASKS_SCHED['ALLOWED_MODULES']``.
    setting: str
    #: The type it has instead of the one it needs; empty when only some entries are bad.
    wrong_type: str = ""
    #: The ``repr`` of each entry that is not a module name.
    bad_entries: tuple[str, ...] = ()

    def problem(self) -> str:
        """What is wrong, in words (translated when asked, as the cache outlives a request)."""
        if self.wrong_type:
            return _("%(setting)s must be %(expected)s, not %(type)s") % {
                "setting": self.setting,
                "expected": _("a dict") if self.setting == SETTING_NAME else _("a list"),
                "type": self.wrong_type,
            }
        return _("%(setting)s has entries that are not module names: %(entries)s") % {
            "setting": self.setting,
            "entries": ", ".join(self.bad_entries),
        }


@dataclass(frozen=True)
class AppSettings:
    """The effective ``TASKS_SCHED`` values, defaults filled in."""

    #: None: the project's own apps; Malformed: nothing (never the wider default).
    ALLOWED_MODULES: tuple[str, ...] | Malformed | None
    TASKS: tuple[Mapping[str, Any], ...]
    PYPROJECT: Path | None
    THREADS: int
    EXECUTOR: str
    POLL_INTERVAL: float
    RECONCILE_INTERVAL: float
    WINDOW_MINUTES: float
    HEARTBEAT_INTERVAL: float
    HEARTBEAT_TIMEOUT: float
    SHARE_WINDOW: bool
    SHUTDOWN_GRACE_PERIOD: float
    RUN_LOG_LIMIT: int
    RUN_RETENTION_DAYS: int | None
    RUN_RETENTION_COUNT: int | None
    PRUNE_INTERVAL: float | None
    PRUNE_BATCH_SIZE: int
    HANDOFF_LEASE: float
    OVERLAP_BUFFER_LIMIT: int
    MAIL_ADMINS_ON_FAILURE: bool
    #: As written (a dict); typed, with each key's default, by django_tasks_sched.alerts.config.
    ALERTS: Mapping[str, Any]


def user_settings() -> Mapping[str, Any]:
    """The raw ``TASKS_SCHED`` dict as the project wrote it (empty if absent or not a dict).

    The system checks report a malformed value; the rest of the app falls back to defaults.
    """
    value = getattr(settings, SETTING_NAME, {})
    return value if isinstance(value, Mapping) else {}


#: On/off keys: real booleans only (the string "false" would count as on).
FLAGS = ("SHARE_WINDOW", "MAIL_ADMINS_ON_FAILURE")

#: The values of ``EXECUTOR``.
EXECUTORS = ("thread", "process")

#: Numeric keys: (whole numbers only, smallest value, whether the smallest value is allowed).
NUMBER_RULES: Mapping[str, tuple[bool, float, bool]] = {
    "THREADS": (True, 1, True),
    "POLL_INTERVAL": (False, 0, False),
    "RECONCILE_INTERVAL": (False, 0, False),
    "WINDOW_MINUTES": (False, 0.1, True),
    "HEARTBEAT_INTERVAL": (False, 0, False),
    "HEARTBEAT_TIMEOUT": (False, 0, False),
    "SHUTDOWN_GRACE_PERIOD": (False, 0, True),
    "RUN_LOG_LIMIT": (True, 0, True),
    "RUN_RETENTION_DAYS": (True, 0, True),
    "RUN_RETENTION_COUNT": (True, 0, True),
    "PRUNE_INTERVAL": (False, 0, False),
    "PRUNE_BATCH_SIZE": (True, 1, True),
    "HANDOFF_LEASE": (False, 0, False),
    "OVERLAP_BUFFER_LIMIT": (True, 1, True),
}

#: Numeric keys with a largest value: a window over a year would hold every task anyway, and
#: a huge one overflows date arithmetic.
NUMBER_MAXIMA: Mapping[str, float] = {"WINDOW_MINUTES": 525_600}

#: Numeric keys that also accept None ("no limit", or for PRUNE_INTERVAL "never").
NULLABLE_NUMBERS = frozenset({"RUN_RETENTION_DAYS", "RUN_RETENTION_COUNT", "PRUNE_INTERVAL"})


def is_valid_number(key: str, value: object) -> bool:
    """Whether ``value`` is acceptable for the numeric setting ``key``."""
    whole, low, inclusive = NUMBER_RULES[key]
    if value is None:
        return key in NULLABLE_NUMBERS
    # bool is an int subclass, but "THREADS": True is a mistake, not 1.
    kinds: tuple[type, ...] = (int,) if whole else (int, float)
    if not isinstance(value, kinds) or isinstance(value, bool):
        return False
    assert isinstance(value, int | float)  # narrowed for the type checker
    if value > NUMBER_MAXIMA.get(key, float("inf")):
        return False
    return value >= low if inclusive else value > low


def is_module_prefix(value: object) -> bool:
    """Whether ``value`` is a dotted module name: an ALLOWED_MODULES entry."""
    return (
        isinstance(value, str)
        and bool(value)
        and all(part.isidentifier() and not keyword.iskeyword(part) for part in value.split("."))
    )


def is_valid(key: str, value: object) -> bool:
    """Whether ``value`` is usable for ``key``; the system checks say why when it is not."""
    if key in NUMBER_RULES:
        return is_valid_number(key, value)
    if key == "ALLOWED_MODULES":
        return value is None or (
            isinstance(value, list | tuple) and all(is_module_prefix(v) for v in value)
        )
    if key == "TASKS":
        return isinstance(value, (list, tuple))
    if key == "PYPROJECT":
        return value is None or isinstance(value, (str, PathLike))
    if key in FLAGS:
        return isinstance(value, bool)
    if key == "ALERTS":
        return isinstance(value, Mapping)
    if key == "EXECUTOR":
        return value in EXECUTORS
    return True


@cache
def get_settings() -> AppSettings:
    """Return the effective settings, cached until ``TASKS_SCHED`` changes.

    A malformed value falls back to its default (the system checks report it), so a typo in
    settings degrades one feature instead of crashing every task save and run. Except the
    security setting: a malformed ``ALLOWED_MODULES`` (or a ``TASKS_SCHED`` that is not a dict,
    whose intent cannot be read) becomes :class:`Malformed`, which allows nothing, since the
    default would allow more than the project may have meant.
    """
    raw = dict(DEFAULTS)
    given = dict(user_settings())
    for old_name, new_name in RENAMED.items():
        if old_name in given:
            given.setdefault(new_name, given[old_name])  # the new name wins when both are set
    for key, value in given.items():
        if key in DEFAULTS and is_valid(key, value):
            raw[key] = value
    pyproject = raw["PYPROJECT"]
    return AppSettings(
        ALLOWED_MODULES=_allowed_modules(),
        TASKS=tuple(raw["TASKS"]),
        PYPROJECT=None if pyproject is None else Path(pyproject),
        THREADS=int(raw["THREADS"]),
        EXECUTOR=str(raw["EXECUTOR"]),
        POLL_INTERVAL=float(raw["POLL_INTERVAL"]),
        RECONCILE_INTERVAL=float(raw["RECONCILE_INTERVAL"]),
        WINDOW_MINUTES=float(raw["WINDOW_MINUTES"]),
        HEARTBEAT_INTERVAL=float(raw["HEARTBEAT_INTERVAL"]),
        HEARTBEAT_TIMEOUT=float(raw["HEARTBEAT_TIMEOUT"]),
        SHARE_WINDOW=raw["SHARE_WINDOW"],
        SHUTDOWN_GRACE_PERIOD=float(raw["SHUTDOWN_GRACE_PERIOD"]),
        RUN_LOG_LIMIT=int(raw["RUN_LOG_LIMIT"]),
        RUN_RETENTION_DAYS=_limit(raw["RUN_RETENTION_DAYS"]),
        RUN_RETENTION_COUNT=_limit(raw["RUN_RETENTION_COUNT"]),
        PRUNE_INTERVAL=None if raw["PRUNE_INTERVAL"] is None else float(raw["PRUNE_INTERVAL"]),
        PRUNE_BATCH_SIZE=int(raw["PRUNE_BATCH_SIZE"]),
        HANDOFF_LEASE=float(raw["HANDOFF_LEASE"]),
        OVERLAP_BUFFER_LIMIT=int(raw["OVERLAP_BUFFER_LIMIT"]),
        MAIL_ADMINS_ON_FAILURE=raw["MAIL_ADMINS_ON_FAILURE"],
        ALERTS=raw["ALERTS"],
    )


def _allowed_modules() -> tuple[str, ...] | Malformed | None:
    # Web processes skip the system checks, so failing closed cannot be left to check E002.
    value = getattr(settings, SETTING_NAME, {})
    if not isinstance(value, Mapping):
        return Malformed(SETTING_NAME, wrong_type=type(value).__name__)
    allowed = value.get("ALLOWED_MODULES")
    if allowed is None or is_valid("ALLOWED_MODULES", allowed):
        return None if allowed is None else tuple(allowed)
    setting = f"{SETTING_NAME}['ALLOWED_MODULES']"
    if not isinstance(allowed, list | tuple):
        return Malformed(setting, wrong_type=type(allowed).__name__)
    return Malformed(
        setting, bad_entries=tuple(repr(item) for item in allowed if not is_module_prefix(item))
    )


def _limit(value: int | None) -> int | None:
    """A retention limit, with 0 (as Celery's ``result_expires``) meaning none, like None."""
    return int(value) if value else None


@receiver(setting_changed)
def _clear_cache(*, setting: str, **kwargs: Any) -> None:
    if setting in (SETTING_NAME, "INSTALLED_APPS", "BASE_DIR"):
        get_settings.cache_clear()
