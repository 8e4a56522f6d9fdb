"""The ``TASKS_SCHED["ALERTS"]`` settings: typed access, and what is wrong with them.

One place for each rule: :func:`problems` says what is wrong with each key (the system checks
turn that into E010-E014), and :func:`alert_settings` uses the same rules to fall back to the
default for a bad value, so a typo switches one alert setting off instead of crashing a process.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from django.core.signals import setting_changed
from django.dispatch import receiver

from django_tasks_sched import bounds
from django_tasks_sched.conf import DEFAULTS, SETTING_NAME, get_settings, user_settings

#: The channels an alert can go through.
CHANNELS = ("mail", "webhook", "signal")

#: Bounds of the numeric keys: (whole numbers only, smallest, largest).
NUMBERS: Mapping[str, tuple[bool, float, float]] = {
    "NO_SUCCESS_MINUTES": (True, 1, bounds.MAX_DURATION // 60),
    "WEBHOOK_TIMEOUT": (False, 0.1, 60),
    "CHECK_INTERVAL": (False, 0.1, 3600),
}

#: Check IDs by key (docs/checks.md lists them).
CHECK_IDS: Mapping[str, str] = {
    "ALERTS": "django_tasks_sched.E010",
    "ON_FAILURE": "django_tasks_sched.E011",
    "ON_MISSED": "django_tasks_sched.E011",
    "NO_SUCCESS_MINUTES": "django_tasks_sched.E012",
    "WEBHOOK_TIMEOUT": "django_tasks_sched.E012",
    "CHECK_INTERVAL": "django_tasks_sched.E012",
    "CHANNELS": "django_tasks_sched.E013",
    "MAIL_TO": "django_tasks_sched.E014",
    "WEBHOOK_URL": "django_tasks_sched.E014",
}


@dataclass(frozen=True)
class AlertSettings:
    """The effective alert settings, defaults filled in."""

    ON_FAILURE: bool
    ON_MISSED: bool
    NO_SUCCESS_MINUTES: int | None
    CHANNELS: tuple[str, ...]
    MAIL_TO: tuple[str, ...] | None
    WEBHOOK_URL: str | None
    WEBHOOK_TIMEOUT: float
    CHECK_INTERVAL: float


def defaults() -> Mapping[str, Any]:
    value: Mapping[str, Any] = DEFAULTS["ALERTS"]
    return value


def raw_alerts() -> object:
    """``TASKS_SCHED["ALERTS"]`` as written (an empty dict when absent)."""
    return user_settings().get("ALERTS", {})


def problem(key: str, value: object) -> str | None:
    """What is wrong with ``value`` for the alert setting ``key``, or None when it is usable."""
    where = f"{SETTING_NAME}['ALERTS'][{key!r}]"
    if key in ("ON_FAILURE", "ON_MISSED"):
        return None if isinstance(value, bool) else f"{where} must be True or False, not {value!r}."
    if key in NUMBERS:
        whole, low, high = NUMBERS[key]
        if value is None and key == "NO_SUCCESS_MINUTES":
            return None
        kinds: tuple[type, ...] = (int,) if whole else (int, float)
        if isinstance(value, kinds) and not isinstance(value, bool) and low <= value <= high:  # type: ignore[operator]
            return None
        kind = "a whole number" if whole else "a number"
        extra = ", or None" if key == "NO_SUCCESS_MINUTES" else ""
        return f"{where} must be {kind} from {low:g} to {high:g}{extra}, not {value!r}."
    if key == "CHANNELS":
        if isinstance(value, list | tuple) and all(item in CHANNELS for item in value):
            return None
        return f"{where} must be a list of {', '.join(map(repr, CHANNELS))}, not {value!r}."
    if key == "MAIL_TO":
        if value is None or (
            isinstance(value, list | tuple) and all(isinstance(v, str) and "@" in v for v in value)
        ):
            return None
        return f"{where} must be a list of e-mail addresses, or None (ADMINS), not {value!r}."
    if key == "WEBHOOK_URL":
        if value is None or _is_http_url(value):
            return None
        return f"{where} must be an http:// or https:// URL, or None, not {value!r}."
    return f"{SETTING_NAME}['ALERTS'] has an unknown key {key!r}."


def problems() -> list[tuple[str, str]]:
    """Every ``(check id, message)`` the alert settings earn; empty when all is well."""
    raw = raw_alerts()
    if not isinstance(raw, Mapping):
        message = f"{SETTING_NAME}['ALERTS'] must be a dict, not {type(raw).__name__}."
        return [(CHECK_IDS["ALERTS"], message)]
    found = []
    for key, value in raw.items():
        wrong = problem(str(key), value)
        if wrong:
            found.append((CHECK_IDS.get(str(key), CHECK_IDS["ALERTS"]), wrong))
    channels = raw.get("CHANNELS", defaults()["CHANNELS"])
    url = raw.get("WEBHOOK_URL")
    if isinstance(channels, list | tuple) and "webhook" in channels and not url:
        message = f"{SETTING_NAME}['ALERTS']['CHANNELS'] has 'webhook' but WEBHOOK_URL is not set."
        found.append((CHECK_IDS["WEBHOOK_URL"], message))
    return found


@cache
def alert_settings() -> AlertSettings:
    """The effective alert settings, cached until ``TASKS_SCHED`` changes."""
    values = dict(defaults())
    raw = get_settings().ALERTS
    values.update({k: v for k, v in raw.items() if k in values and problem(k, v) is None})
    mail_to = values["MAIL_TO"]
    return AlertSettings(
        ON_FAILURE=values["ON_FAILURE"],
        ON_MISSED=values["ON_MISSED"],
        NO_SUCCESS_MINUTES=values["NO_SUCCESS_MINUTES"],
        CHANNELS=tuple(dict.fromkeys(values["CHANNELS"])),
        MAIL_TO=None if mail_to is None else tuple(mail_to),
        WEBHOOK_URL=values["WEBHOOK_URL"],
        WEBHOOK_TIMEOUT=float(values["WEBHOOK_TIMEOUT"]),
        CHECK_INTERVAL=float(values["CHECK_INTERVAL"]),
    )


def _is_http_url(value: object) -> bool:
    if not isinstance(value, str) or len(value) > 2000:
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


@receiver(setting_changed)
def _clear_cache(*, setting: str, **kwargs: Any) -> None:
    if setting == SETTING_NAME:
        alert_settings.cache_clear()
