"""System checks for the ``TASKS_SCHED`` setting; every ID is listed in docs/checks.md.

They read the raw setting rather than :func:`~django_tasks_sched.conf.get_settings`, which
quietly falls back to defaults: the point here is to tell the user what they wrote wrong.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from django_tasks_sched.alerts.checks import check_alerts
from django_tasks_sched.conf import (
    DEFAULTS,
    EXECUTORS,
    FLAGS,
    NULLABLE_NUMBERS,
    NUMBER_MAXIMA,
    NUMBER_RULES,
    RENAMED,
    SETTING_NAME,
    is_module_prefix,
    is_valid_number,
)

#: The tag to run only these checks: ``manage.py check --tag django_tasks_sched``.
TAG = "django_tasks_sched"

#: Top-level packages whose code no task should be able to call by default configuration.
_DANGEROUS_TOPS = frozenset({*sys.stdlib_module_names, "django", "django_tasks_sched"})


@register(TAG, Tags.compatibility)
def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Validate the ``TASKS_SCHED`` dict and the Django settings the app relies on."""
    messages: list[CheckMessage] = []
    if not getattr(settings, "USE_TZ", False):
        messages.append(
            Error(
                "USE_TZ is False; django-tasks-sched needs aware datetimes.",
                hint="Set USE_TZ = True (the default since Django 5.0).",
                id="django_tasks_sched.E005",
            )
        )
    raw = getattr(settings, SETTING_NAME, {})
    if not isinstance(raw, Mapping):
        messages.append(
            Error(
                f"{SETTING_NAME} must be a dict, not {type(raw).__name__}; until it is fixed, "
                "no task callable is allowed to run.",
                hint=f"Write {SETTING_NAME} = {{...}} with the keys: {_valid_keys()}.",
                id="django_tasks_sched.E001",
            )
        )
        return messages
    messages += _check_keys(raw)
    # A renamed key's value is checked under its new name, as get_settings() reads it.
    raw = {**{new: raw[old] for old, new in RENAMED.items() if old in raw}, **raw}
    if raw.get("ALLOWED_MODULES") is None:
        messages += _check_default_policy()
    else:
        messages += _check_allowed_modules(raw["ALLOWED_MODULES"])
    if "TASKS" in raw:
        messages += _check_tasks(raw["TASKS"])
    if "PYPROJECT" in raw:
        messages += _check_pyproject(raw["PYPROJECT"])
    messages += _check_numbers(raw)
    messages += _check_flags(raw)
    messages += _check_executor(raw)
    messages += check_alerts()
    return messages


def _valid_keys() -> str:
    return ", ".join(sorted(DEFAULTS))


def _check_keys(raw: Mapping[Any, Any]) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for key in raw:
        if key in DEFAULTS:
            continue
        if key in RENAMED:
            messages.append(
                Warning(
                    f"{SETTING_NAME}[{key!r}] is deprecated; it is now called {RENAMED[key]!r}.",
                    hint=f"Rename the key to {RENAMED[key]!r}; the old name still works for now.",
                    id="django_tasks_sched.W006",
                )
            )
            continue
        close = difflib.get_close_matches(str(key), list(DEFAULTS), n=1)
        hint = f"Did you mean {close[0]!r}? " if close else ""
        messages.append(
            Warning(
                f"{SETTING_NAME} has an unknown key {key!r}; it is ignored.",
                hint=f"{hint}Valid keys: {_valid_keys()}.",
                id="django_tasks_sched.W001",
            )
        )
    return messages


def _check_allowed_modules(value: Any) -> list[CheckMessage]:
    if value is None:
        return []  # explicitly the default: the project's own apps
    if not isinstance(value, list | tuple):
        # A bare string is the usual slip; iterating it would allow single letters.
        return [
            Error(
                f"{SETTING_NAME}['ALLOWED_MODULES'] must be a list of module names, "
                f"not {type(value).__name__}; until it is fixed, no task callable is allowed "
                "to run.",
                hint='For example: "ALLOWED_MODULES": ["myapp.jobs", "reports"]. Leave it out '
                "to allow the project's own installed apps.",
                id="django_tasks_sched.E002",
            )
        ]
    bad = [item for item in value if not is_module_prefix(item)]
    if bad:
        return [
            Error(
                f"{SETTING_NAME}['ALLOWED_MODULES'] has entries that are not dotted module "
                f"names: {', '.join(repr(item) for item in bad)}; until it is fixed, no task "
                "callable is allowed to run.",
                hint='Use importable module paths such as "myapp" or "myapp.jobs", without '
                "':', wildcards or spaces.",
                id="django_tasks_sched.E002",
            )
        ]
    risky = [item for item in value if item.split(".")[0] in _DANGEROUS_TOPS]
    if risky:
        return [
            Warning(
                f"{SETTING_NAME}['ALLOWED_MODULES'] admits code outside your project: "
                f"{', '.join(repr(item) for item in risky)}.",
                hint="Anyone who can edit a task (e.g. in the admin) can then run that code "
                "with arguments of their choice. List only your own modules, and "
                "register single outside callables with @django_tasks_sched.register.",
                id="django_tasks_sched.W002",
            )
        ]
    return []


def _check_default_policy() -> list[CheckMessage]:
    from django_tasks_sched.callables import project_app_modules

    if project_app_modules():
        return []
    # Typical when the project itself is pip-installed into site-packages, or BASE_DIR points
    # somewhere else: then only @register-ed callables can run, which surprises people.
    return [
        Warning(
            f"{SETTING_NAME}['ALLOWED_MODULES'] is not set and no installed app counts as the "
            "project's own, so only callables registered with @django_tasks_sched.register "
            "can run.",
            hint="Project apps are those under BASE_DIR and outside site-packages. Set "
            f"{SETTING_NAME}['ALLOWED_MODULES'] to your modules (e.g. [\"myapp.jobs\"]), or "
            "silence this warning if you only use registered callables.",
            id="django_tasks_sched.W004",
        )
    ]


def _check_tasks(value: Any) -> list[CheckMessage]:
    if not isinstance(value, list | tuple):
        return [
            Error(
                f"{SETTING_NAME}['TASKS'] must be a list of dicts, not {type(value).__name__}.",
                hint='For example: "TASKS": [{"id": "cleanup", "func": "myapp.jobs:cleanup", '
                '"trigger": "cron", "hour": 3}].',
                id="django_tasks_sched.E003",
            )
        ]
    messages: list[CheckMessage] = []
    for index, item in enumerate(value):
        where = f"{SETTING_NAME}['TASKS'][{index}]"
        if not isinstance(item, Mapping):
            problem = f"{where} must be a dict, not {type(item).__name__}."
        elif missing := [key for key in ("id", "func") if not item.get(key)]:
            problem = f"{where} has no {' and no '.join(repr(key) for key in missing)}."
        else:
            continue
        messages.append(
            Error(
                problem,
                hint="Each task is a dict of scheduler.add_job()'s arguments and needs at "
                'least "id" (the task name) and "func" (e.g. "myapp.jobs:cleanup").',
                id="django_tasks_sched.E003",
            )
        )
    return messages


def _check_pyproject(value: Any) -> list[CheckMessage]:
    if value is None:
        return []
    if not isinstance(value, str | os.PathLike):
        return [
            Error(
                f"{SETTING_NAME}['PYPROJECT'] must be a path (str or pathlib.Path), "
                f"not {type(value).__name__}.",
                hint='For example: "PYPROJECT": BASE_DIR / "pyproject.toml". Leave it out to '
                "read pyproject.toml in BASE_DIR.",
                id="django_tasks_sched.E004",
            )
        ]
    path = Path(value)
    if not path.is_file():
        # Legal (a missing file declares no tasks), but a path set on purpose that points
        # nowhere is nearly always a typo or a file left out of the deployment.
        return [
            Warning(
                f"{SETTING_NAME}['PYPROJECT'] is {str(path)!r}, which is not a file; no "
                "[tool.scheduled] tasks will be read.",
                hint="Fix the path, ship the file with the deployment, or remove the key.",
                id="django_tasks_sched.W003",
            )
        ]
    return []


def _check_numbers(raw: Mapping[Any, Any]) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for key, (whole, low, inclusive) in NUMBER_RULES.items():
        if key not in raw:
            continue
        value = raw[key]
        if is_valid_number(key, value):
            continue
        kind = "a whole number" if whole else "a number"
        bound = f"of at least {low:g}" if inclusive else f"greater than {low:g}"
        if key in NUMBER_MAXIMA:
            bound += f" and at most {NUMBER_MAXIMA[key]:g}"
        if key in NULLABLE_NUMBERS:
            bound += ", or None"
        messages.append(
            Error(
                f"{SETTING_NAME}[{key!r}] must be {kind} {bound}, not {value!r}.",
                hint=f"The default is {DEFAULTS[key]!r}; remove the key to use it.",
                id="django_tasks_sched.E006",
            )
        )
    if not messages:
        messages += _check_heartbeat(raw)
    return messages


def _check_flags(raw: Mapping[Any, Any]) -> list[CheckMessage]:
    """On/off settings must be real booleans: the string "false" would count as on."""
    return [
        _not_one_of(key, raw[key], "True or False", "django_tasks_sched.E007")
        for key in FLAGS
        if key in raw and not isinstance(raw[key], bool)
    ]


def _check_executor(raw: Mapping[Any, Any]) -> list[CheckMessage]:
    key = "EXECUTOR"
    if key not in raw or raw[key] in EXECUTORS:
        return []
    choices = " or ".join(repr(name) for name in EXECUTORS)
    return [_not_one_of(key, raw[key], choices, "django_tasks_sched.E008")]


def _not_one_of(key: str, value: Any, choices: str, check_id: str) -> Error:
    """A setting holds none of the values it accepts; the default is used until it is fixed."""
    return Error(
        f"{SETTING_NAME}[{key!r}] must be {choices}, not {value!r}.",
        hint=f"The default is {DEFAULTS[key]!r}; remove the key to use it.",
        id=check_id,
    )


def _check_heartbeat(raw: Mapping[Any, Any]) -> list[CheckMessage]:
    if "HEARTBEAT_INTERVAL" not in DEFAULTS or "HEARTBEAT_TIMEOUT" not in DEFAULTS:
        return []
    interval = raw.get("HEARTBEAT_INTERVAL", DEFAULTS["HEARTBEAT_INTERVAL"])
    timeout = raw.get("HEARTBEAT_TIMEOUT", DEFAULTS["HEARTBEAT_TIMEOUT"])
    if timeout >= 2 * interval:
        return []
    # A live process that misses one beat would be declared dead, and its running runs
    # marked INTERRUPTED by the other scheduler processes.
    return [
        Warning(
            f"{SETTING_NAME}['HEARTBEAT_TIMEOUT'] ({timeout:g}s) is less than twice "
            f"HEARTBEAT_INTERVAL ({interval:g}s); live scheduler processes may be taken for dead.",
            hint="Keep HEARTBEAT_TIMEOUT at several heartbeats; the defaults are "
            f"{DEFAULTS['HEARTBEAT_INTERVAL']}s and {DEFAULTS['HEARTBEAT_TIMEOUT']}s.",
            id="django_tasks_sched.W005",
        )
    ]
