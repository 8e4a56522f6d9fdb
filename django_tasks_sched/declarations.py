"""What code and config declare: ``@scheduler.task`` functions and ``TASKS_SCHED["TASKS"]``.

A :class:`Declaration` is one task as its source describes it, with the fields the source owns.
:func:`collect` gathers every source (this module's two and ``pyproject.toml``), for
``synctasks`` to apply. Reading a source never touches the database. A source that could not be
read completely (a module failed to import, the TOML does not parse) is left out of
``complete``, so its tasks are not retired for merely looking absent.

The decorator only records its declaration in :data:`_declared` (import time must not touch
the database); rows are written when the tasks are synced.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.core.exceptions import ValidationError
from django.utils.module_loading import module_has_submodule
from django.utils.translation import gettext as _

from django_tasks_sched.conf import SETTING_NAME, user_settings
from django_tasks_sched.exceptions import DeclarationError
from django_tasks_sched.jobspec import JobSpec, job_spec
from django_tasks_sched.options import INITIAL_ONLY

logger = logging.getLogger(__name__)

# The Task.Source values, spelled out: this module is imported before the models are ready.
DECORATOR, SETTINGS, PYPROJECT = "decorator", "settings", "pyproject"

#: Submodules of every installed app imported before the decorator's declarations are read, as
#: the admin imports ``admin.py``: a decorated function counts only once its module is imported.
AUTODISCOVER = ("jobs", "tasks")


@dataclass(frozen=True)
class Declaration:
    """One task as declared: its name, where, and the field values the declaration owns."""

    name: str
    source: str
    source_ref: str
    fields: Mapping[str, Any]
    #: Applied only when the row is created (``active=False`` for a task declared paused).
    initial: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Collected:
    """Every declaration found, the problems met, and which sources were read completely."""

    declarations: list[Declaration] = field(default_factory=list)
    errors: list[DeclarationError] = field(default_factory=list)
    complete: set[str] = field(default_factory=set)
    #: Names whose declaration is broken: their rows are left exactly as they are.
    blocked: set[str] = field(default_factory=set)

    def fail(self, error: DeclarationError) -> None:
        self.errors.append(error)
        if error.name:
            self.blocked.add(error.name)

    def merge(self, other: Collected) -> None:
        self.declarations += other.declarations
        self.errors += other.errors
        self.complete |= other.complete
        self.blocked |= other.blocked


def from_spec(name: str, source: str, source_ref: str, spec: JobSpec) -> Declaration:
    fields = dict(spec.fields)
    initial = {name: fields.pop(name) for name in INITIAL_ONLY if name in fields}
    if spec.active is not None:
        initial["active"] = spec.active
    return Declaration(name, source, source_ref, fields, initial)


# -- the decorator ---------------------------------------------------------------------------------

#: Declarations made by ``@scheduler.task`` in this process, by task name.
_declared: dict[str, Declaration] = {}


def declare(declaration: Declaration) -> None:
    """Record a decorator's declaration; a second function under the same name is an error."""
    existing = _declared.get(declaration.name)
    # The same function declared again is a module being re-imported (autoreload, tests).
    if existing is not None and existing.source_ref != declaration.source_ref:
        raise ValueError(
            f"task {declaration.name!r} is declared twice with @scheduler.task: by "
            f"{existing.source_ref} and by {declaration.source_ref}; give one of them another id"
        )
    _declared[declaration.name] = declaration


def decorator_declarations(known_refs: Iterable[str] = ()) -> Collected:
    """Import the modules that declare tasks, then return what ``@scheduler.task`` recorded.

    ``known_refs`` are the ``module:function`` references of rows the decorator created
    before: their modules are imported too (when they belong to an installed app), so a
    declaration outside the autodiscovered modules is still found, not retired.
    """
    found = Collected(complete={DECORATOR})
    for app_config in apps.get_app_configs():
        if app_config.name == "django" or app_config.name.startswith("django."):
            continue
        for submodule in AUTODISCOVER:
            if module_has_submodule(app_config.module, submodule):
                _import(f"{app_config.name}.{submodule}", found)
    for ref in known_refs:
        module = ref.partition(":")[0]
        if module in sys.modules or not _is_app_module(module):
            continue
        _import(module, found, missing_ok=True)
    found.declarations = list(_declared.values())
    return found


def _is_app_module(module: str) -> bool:
    # Only modules of installed apps are imported from a row's reference: the row is data, and
    # importing a module runs its code.
    if not all(part.isidentifier() for part in module.split(".")):
        return False
    return apps.get_containing_app_config(module) is not None


def _import(module: str, found: Collected, *, missing_ok: bool = False) -> None:
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if missing_ok and exc.name is not None and (module + ".").startswith(exc.name + "."):
            return  # the module is gone, and with it the declaration: retiring is right
        _import_failed(module, exc, found)
    except Exception as exc:  # a broken module must not stop the other declarations
        _import_failed(module, exc, found)


def _import_failed(module: str, exc: Exception, found: Collected) -> None:
    found.complete.discard(DECORATOR)
    found.errors.append(
        DeclarationError(
            _(
                "importing it failed (%(error)s), so the @scheduler.task declarations in it "
                "are unknown; no decorator-declared task is retired until it imports again"
            )
            % {"error": f"{type(exc).__name__}: {exc}"},
            where=_("module %(module)s") % {"module": module},
        )
    )


# -- TASKS_SCHED["TASKS"] --------------------------------------------------------------------------


def settings_declarations() -> Collected:
    """The tasks of ``TASKS_SCHED["TASKS"]``, each a dict of ``add_job()``'s arguments."""
    found = Collected(complete={SETTINGS})
    raw = user_settings().get("TASKS", [])
    if not isinstance(raw, list | tuple):
        # Check E003 reports the shape too; here it must only keep the tasks from retiring.
        found.complete.clear()
        found.fail(
            DeclarationError(
                _("must be a list of dicts, not %(type)s") % {"type": type(raw).__name__},
                where=f"{SETTING_NAME}['TASKS']",
            )
        )
        return found
    for index, entry in enumerate(raw):
        where = f"{SETTING_NAME}['TASKS'][{index}]"
        try:
            found.declarations.append(_settings_entry(entry, where))
        except DeclarationError as exc:
            if exc.name is None:
                # Without a usable id the entry may be any task: retire none of them.
                found.complete.clear()
            found.fail(exc)
    return found


def _settings_entry(entry: Any, where: str) -> Declaration:
    if not isinstance(entry, Mapping):
        raise DeclarationError(
            _("must be a dict of add_job()'s arguments, not %(type)s")
            % {"type": type(entry).__name__},
            where=where,
        )
    options = dict(entry)
    name = options.pop("id", None)
    if not isinstance(name, str) or not name:
        raise DeclarationError(_('needs an "id": the task\'s name'), where=where)
    where = f"{where} (id {name!r})"
    options.pop("replace_existing", None)  # a declaration always replaces what it owns
    if "trigger" not in options:
        raise DeclarationError(
            _(
                'needs a "trigger" ("date", "interval" or "cron"); without one the task would '
                "run once at every sync"
            ),
            where=where,
            name=name,
        )
    try:
        spec = job_spec(
            options.pop("func", None),
            options.pop("trigger"),
            options.pop("args", None),
            options.pop("kwargs", None),
            options,
        )
    except (TypeError, ValidationError) as exc:
        raise DeclarationError(describe_error(exc), where=where, name=name) from None
    return from_spec(name, SETTINGS, where, spec)


def describe_error(exc: Exception) -> str:
    """One line for a ``ValidationError`` (fields named) or any other exception."""
    if isinstance(exc, ValidationError) and hasattr(exc, "error_dict"):
        return "; ".join(
            f"{name}: {' '.join(str(m) for m in messages)}"
            for name, messages in exc.message_dict.items()
        )
    if isinstance(exc, ValidationError):
        return " ".join(str(m) for m in exc.messages)
    return str(exc)


# -- everything ------------------------------------------------------------------------------------


def collect(known_decorator_refs: Iterable[str] = ()) -> Collected:
    """Every declared task from every source; a name declared twice is an error, not a guess."""
    from django_tasks_sched.pyproject import pyproject_declarations

    collected = Collected()
    for part in (
        decorator_declarations(known_decorator_refs),
        settings_declarations(),
        pyproject_declarations(),
    ):
        collected.merge(part)
    by_name: dict[str, Declaration] = {}
    for declaration in collected.declarations:
        other = by_name.get(declaration.name)
        if other is not None:
            collected.fail(
                DeclarationError(
                    _("task %(name)r is also declared by %(other)s; names must be unique")
                    % {"name": declaration.name, "other": other.source_ref},
                    where=declaration.source_ref,
                    name=declaration.name,
                )
            )
        by_name[declaration.name] = declaration
    collected.declarations = [d for d in by_name.values() if d.name not in collected.blocked]
    return collected
