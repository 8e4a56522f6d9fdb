"""``[tool.scheduled.<id>]`` tables of ``pyproject.toml``, per the ``scheduled`` specification.

Each table has ``every`` (``minute``, ``hour``, ``day``, ``week`` or ``month``) and ``entrypoint``
(``module:function``). The specification leaves *when* within the cadence to the provider; here
the SHA-256 of the id picks a slot, so jobs spread evenly over the cadence, and each keeps its time
across syncs, machines and releases (the hash of a name never changes). Times are in UTC, which
has no daylight-saving gaps and does not depend on the machine's ``TIME_ZONE``.

The slot becomes an ordinary ``cron`` ``trigger_config`` (``{"hour": 10, "minute": 31, ...}``),
so the admin's schedule words and fire-time preview show the assigned time.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils.translation import gettext as _

from django_tasks_sched.conf import get_settings
from django_tasks_sched.declarations import PYPROJECT, Collected, Declaration
from django_tasks_sched.exceptions import DeclarationError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 reads TOML with the tomli backport
    import tomli as tomllib

#: Slots per cadence: seconds of a minute, minutes of an hour, day, week, and of a month's
#: first 28 days (every month has them, so no month is skipped).
SLOTS = {"minute": 60, "hour": 60, "day": 24 * 60, "week": 7 * 24 * 60, "month": 28 * 24 * 60}
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
KEYS = ("every", "entrypoint")
ENTRYPOINT = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def pyproject_path() -> Path:
    """``TASKS_SCHED["PYPROJECT"]``, else ``pyproject.toml`` in ``BASE_DIR``, else in the cwd."""
    configured = get_settings().PYPROJECT
    if configured is not None:
        return configured
    base_dir = getattr(settings, "BASE_DIR", None)
    return Path(base_dir or Path.cwd()) / "pyproject.toml"


def slot(job_id: str, size: int) -> int:
    """The job's slot among ``size``: the SHA-256 of its id, as a number, modulo ``size``."""
    digest = hashlib.sha256(job_id.encode("utf-8")).digest()
    # 256 bits modulo a few thousand: the bias is far below anything measurable.
    return int.from_bytes(digest, "big") % size


def assigned_config(job_id: str, every: str) -> dict[str, Any]:
    """The ``cron`` ``trigger_config`` that fires ``job_id`` once per ``every``, at its slot."""
    offset = slot(job_id, SLOTS[every])
    if every == "minute":
        return {"second": offset, "timezone": "UTC"}
    if every == "hour":
        return {"minute": offset, "timezone": "UTC"}
    days, minute_of_day = divmod(offset, 24 * 60)
    config: dict[str, Any] = {}
    if every == "week":
        config["day_of_week"] = WEEKDAYS[days]
    elif every == "month":
        config["day"] = days + 1
    hour, minute = divmod(minute_of_day, 60)
    return {**config, "hour": hour, "minute": minute, "timezone": "UTC"}


def assigned_time(every: str, config: dict[str, Any]) -> str:
    """The assigned time in a few words: "every day at 10:31 UTC"."""
    if every == "minute":
        return _("every minute at second %(second)02d") % {"second": config["second"]}
    if every == "hour":
        return _("every hour at minute %(minute)02d") % {"minute": config["minute"]}
    clock = f"{config['hour']:02d}:{config['minute']:02d} UTC"
    if every == "week":
        return _("every week on %(day)s at %(time)s") % {
            "day": config["day_of_week"].capitalize(),
            "time": clock,
        }
    if every == "month":
        return _("every month on day %(day)d at %(time)s") % {"day": config["day"], "time": clock}
    return _("every day at %(time)s") % {"time": clock}


def table_name(job_id: str) -> str:
    """``[tool.scheduled.<id>]`` as it is written in TOML (quoted where the id needs it)."""
    key = job_id if BARE_KEY.match(job_id) else json.dumps(job_id, ensure_ascii=False)
    return f"[tool.scheduled.{key}]"


def pyproject_declarations(path: Path | None = None) -> Collected:
    """Read the ``[tool.scheduled]`` tables; a missing file declares nothing."""
    path = path or pyproject_path()
    found = Collected(complete={PYPROJECT})
    if not path.is_file():
        return found
    where = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        found.complete.clear()
        found.fail(
            DeclarationError(
                _(
                    "cannot be read as TOML (%(error)s); its [tool.scheduled] tasks are left "
                    "as they are"
                )
                % {"error": exc},
                where=where,
            )
        )
        return found
    tool = data.get("tool")
    scheduled = tool.get("scheduled") if isinstance(tool, dict) else None
    if scheduled is None:
        return found
    if not isinstance(scheduled, dict):
        found.complete.clear()
        found.fail(
            DeclarationError(
                _("[tool.scheduled] must be a table of [tool.scheduled.<id>] tables"),
                where=where,
            )
        )
        return found
    for job_id, table in scheduled.items():
        try:
            found.declarations.append(_declaration(job_id, table, path))
        except DeclarationError as exc:
            found.fail(exc)
    return found


def _declaration(job_id: str, table: Any, path: Path) -> Declaration:
    where = f"{table_name(job_id)} in {path}"

    def fail(message: str) -> DeclarationError:
        return DeclarationError(message, where=where, name=job_id)

    if not isinstance(table, dict):
        raise fail(
            _('must be a table with "every" and "entrypoint", not a %(type)s')
            % {"type": type(table).__name__}
        )
    unknown = sorted(set(table) - set(KEYS))
    if unknown:
        raise fail(
            _('has unknown keys %(keys)s; a job has exactly "every" and "entrypoint"')
            % {"keys": ", ".join(repr(k) for k in unknown)}
        )
    every, entrypoint = table.get("every"), table.get("entrypoint")
    if every is None or entrypoint is None:
        missing = " and ".join(f'"{k}"' for k in KEYS if table.get(k) is None)
        raise fail(_("has no %(keys)s") % {"keys": missing})
    if not isinstance(every, str) or every not in SLOTS:
        raise fail(
            _("every = %(value)s is not a supported cadence; use one of: %(choices)s")
            % {"value": json.dumps(every, default=str), "choices": ", ".join(SLOTS)}
        )
    if not isinstance(entrypoint, str) or not ENTRYPOINT.match(entrypoint):
        raise fail(
            _('entrypoint = %(value)s is not "module:function", e.g. "app.jobs:clean_files"')
            % {"value": json.dumps(entrypoint, default=str)}
        )
    config = assigned_config(job_id, every)
    when = assigned_time(every, config)
    fields = {
        "func": entrypoint,
        "args": [],
        "kwargs": {},
        "trigger": "cron",
        "trigger_config": config,
        "description": _(
            'Declared in %(file)s as every = "%(every)s"; assigned %(when)s (from the SHA-256 '
            "of its id)."
        )
        % {"file": path.name, "every": every, "when": when},
    }
    ref = f"{_short(path)} {table_name(job_id)}: {when}"
    return Declaration(job_id, PYPROJECT, _fit(ref), fields)


def _short(path: Path) -> str:
    """The path relative to ``BASE_DIR`` when it lies inside, else as given."""
    base_dir = getattr(settings, "BASE_DIR", None)
    if base_dir:
        try:
            return str(path.resolve().relative_to(Path(base_dir).resolve()))
        except ValueError:
            pass
    return str(path)


def _fit(text: str, limit: int = 255) -> str:
    # source_ref is a CharField(255); keep the end, which names the table and the time.
    return text if len(text) <= limit else "..." + text[-(limit - 3) :]
