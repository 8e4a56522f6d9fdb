"""The callable policy: which dotted paths a task may run.

A Task's ``func`` is code that admin users can edit, so :func:`resolve_callable` is the single
gate every path goes through (``Task.clean()`` when the row is written, the run path again before
every run). A callable is allowed when it is registered with :func:`register`, or when its module
lies under a prefix in ``TASKS_SCHED["ALLOWED_MODULES"]``; when that key is not set, the modules of
the project's own installed apps are allowed instead (never the standard library, site-packages,
``django`` or this app). The policy is decided from the path alone, *before* anything is imported:
importing a module runs its top-level code, which is exactly what must not happen for a module
the policy refuses. A malformed ``ALLOWED_MODULES`` allows nothing at all (fail closed, never
the wider default). What calling would not really run is refused too: an instance method (the
task has no instance) and async generators (nothing would consume them); ``async def``
functions are awaited by the run path. Whether a task's
arguments fit the callable is :mod:`.signatures`' job.

This module is imported by the package ``__init__`` (for :func:`register`), so it reads no
settings and imports no models at import time.
"""

from __future__ import annotations

import importlib
import inspect
import keyword
import sys
import sysconfig
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from django.apps import apps
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.translation import gettext as _

from django_tasks_sched.conf import Malformed, get_settings
from django_tasks_sched.exceptions import TaskConfigError

F = TypeVar("F")

#: Registered callables by their ``module:qualname`` path. Filled at import time of the modules
#: that declare them, so a path is only found here once its module has been imported.
_registry: dict[str, Callable[..., Any]] = {}

#: Apps never allowed by the default policy: Django's own code and this app's internals.
_NEVER_DEFAULT = ("django", "django_tasks_sched")


# -- registering ---------------------------------------------------------------------------------


def callable_path(func: Any) -> str:
    """The ``module:qualname`` path of a function, class, or static/class method."""
    inner = _unwrap_descriptor(func)
    module = getattr(inner, "__module__", None)
    qualname = getattr(inner, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        raise TypeError(f"{func!r} has no module and qualified name, so no dotted path")
    owner = getattr(inner, "__self__", None)
    if inspect.ismethod(inner) and not isinstance(owner, type):
        # The path would name the function on the class, and the run would shift its
        # arguments into ``self``: the instance itself cannot be stored in a row.
        raise TypeError(
            f"func {module}:{qualname} is a method bound to a {type(owner).__name__} instance, "
            "which a task cannot store; schedule a module-level function, a staticmethod or "
            "a classmethod instead"
        )
    if "<" in qualname:
        # "<locals>" / "<lambda>": nothing a path could ever import back.
        raise ValueError(
            f"{module}:{qualname} cannot be reached by a dotted path; "
            "define it at module level (or as a method of a module-level class)"
        )
    return f"{module}:{qualname}"


def register(func: F) -> F:
    """Allow-list this exact callable by its ``module:qualname`` path; returns it unchanged.

    Works above or below ``@staticmethod`` / ``@classmethod``. Put it below any other decorator
    unless that decorator uses ``functools.wraps``.
    """
    inner = _unwrap_descriptor(func)
    if not callable(inner):
        raise TypeError(f"@register needs a callable, got {type(func).__name__}")
    _registry[callable_path(inner)] = inner
    return func


def is_registered(path: str) -> bool:
    """Whether ``path`` (``module:qualname``) was registered with :func:`register`."""
    return path in _registry


def _unwrap_descriptor(func: Any) -> Any:
    # On Python 3.10+ these descriptors carry __qualname__ too, but __func__ is the real
    # function that attribute lookup on the class hands back, so register that.
    if isinstance(func, staticmethod | classmethod):
        return func.__func__
    return func


# -- the policy ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Policy:
    """Module prefixes allowed without registration, and where they came from."""

    prefixes: tuple[str, ...]
    explicit: bool  # True: from ALLOWED_MODULES; False: the project's own apps
    malformed: Malformed | None = None  # set: the setting is unusable and nothing is allowed

    def allows(self, module: str) -> bool:
        return any(_under(module, prefix) for prefix in self.prefixes)

    def scope(self) -> str:
        listed = ", ".join(self.prefixes) or _("none")
        if self.explicit:
            return _("TASKS_SCHED['ALLOWED_MODULES'] (%(prefixes)s)") % {"prefixes": listed}
        return _("the project's own installed apps (%(prefixes)s)") % {"prefixes": listed}


def _under(module: str, prefix: str) -> bool:
    # Whole components only: "jobs.tasks" admits "jobs.tasks.sub", not "jobs.tasks_evil".
    return module == prefix or module.startswith(prefix + ".")


@cache
def _policy() -> _Policy:
    allowed = get_settings().ALLOWED_MODULES
    if isinstance(allowed, Malformed):
        # Fail closed: check E001/E002 says why, but web processes never run the checks.
        return _Policy(prefixes=(), explicit=True, malformed=allowed)
    if allowed is not None:
        return _Policy(prefixes=allowed, explicit=True)
    return _Policy(prefixes=project_app_modules(), explicit=False)


def project_app_modules() -> tuple[str, ...]:
    """Module names of the installed apps that count as the project's own code."""
    base_dir = getattr(settings, "BASE_DIR", None)
    base = Path(base_dir).resolve() if base_dir else None
    stdlib = {Path(p).resolve() for key in ("stdlib", "platstdlib") if (p := _sysconfig(key))}
    names = []
    for app_config in apps.get_app_configs():
        if any(_under(app_config.name, never) for never in _NEVER_DEFAULT):
            continue
        path = Path(app_config.path).resolve()
        # Checked even under BASE_DIR: a virtualenv often lives inside the project directory.
        if {"site-packages", "dist-packages"} & set(path.parts):
            continue
        if any(path.is_relative_to(root) for root in stdlib):
            continue
        if base is not None and not path.is_relative_to(base):
            continue
        names.append(app_config.name)
    return tuple(names)


def _sysconfig(key: str) -> str | None:
    try:
        return sysconfig.get_paths().get(key)
    except Exception:  # an odd interpreter layout must not take the policy down
        return None


@receiver(setting_changed)
def _clear_policy(*, setting: str, **kwargs: Any) -> None:
    # The same settings conf.get_settings() depends on, plus the app list for the default policy.
    if setting in ("TASKS_SCHED", "INSTALLED_APPS", "BASE_DIR"):
        _policy.cache_clear()


# -- resolving -------------------------------------------------------------------------------------


def resolve_callable(path: str) -> Callable[..., Any]:
    """Check ``path`` against the policy, import it and return the callable.

    Accepts ``"package.module:name"``, ``"package.module:Class.method"`` and
    ``"package.module.name"`` (the longest importable module prefix wins). Raises
    :class:`TaskConfigError` on field ``"func"`` for anything that cannot be run.
    """
    candidates = _candidates(path)
    policy = _policy()
    if policy.malformed is not None:
        raise TaskConfigError(
            _(
                "'%(path)s' is not allowed: %(problem)s, so no callable may run until it is "
                "fixed (manage.py check explains it)"
            )
            % {"path": path, "problem": policy.malformed.problem()},
            field="func",
        )

    # A registered callable: its module registered it while being imported, so look it up in
    # sys.modules only. Importing a module the policy refuses just to see whether it registers
    # something would run exactly the code the policy is there to keep out.
    for module_name, qualname in candidates:
        registered = _registry.get(f"{module_name}:{qualname}")
        module = sys.modules.get(module_name)
        if registered is not None and module is not None:
            try:
                found = _walk(path, module, module_name, qualname)
            except TaskConfigError:
                continue  # gone since it was registered: the policy below decides
            if _is_same_callable(found, registered):
                return _runnable(path, found, module, qualname)

    allowed = [(m, q) for m, q in candidates if policy.allows(m)]
    if not allowed:
        raise TaskConfigError(
            _(
                "'%(path)s' is not allowed: module '%(module)s' is outside %(scope)s and the "
                "callable is not registered with @register; add the module (or a package above "
                "it) to TASKS_SCHED['ALLOWED_MODULES'] or decorate the callable with "
                "@django_tasks_sched.register"
            )
            % {"path": path, "module": candidates[0][0], "scope": policy.scope()},
            field="func",
        )

    first_missing: TaskConfigError | None = None
    for index, (module_name, qualname) in enumerate(allowed):
        last = index == len(allowed) - 1
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            error = _import_error(module_name, exc)
            # Only "this candidate does not exist" moves on to a shorter prefix; a module that
            # exists but fails to import one of its own dependencies is reported as it is.
            if not _is_missing(module_name, exc):
                raise error from None
            first_missing = first_missing or error
            if last:
                raise first_missing from None
            continue
        except (Exception, SystemExit) as exc:
            # A broken module (syntax error, failing top-level code, even sys.exit()) must become
            # a clean validation error: the scheduler process must never die of it.
            raise _import_error(module_name, exc) from None
        try:
            found = _walk(path, module, module_name, qualname)
        except TaskConfigError:
            # "myapp.jobz.cleanup" where "myapp" imports but "myapp.jobz" does not exist: the
            # missing module is the useful message, not "myapp has no attribute jobz".
            if first_missing is not None and not _has_attribute(module, qualname):
                raise first_missing from None
            raise
        _check_defined_in_allowed_module(path, found, policy)
        return _runnable(path, found, module, qualname)
    raise AssertionError("unreachable")  # pragma: no cover


def _runnable(path: str, found: Any, module: Any, qualname: str) -> Callable[..., Any]:
    """Refuse what calling would not run: instance methods, async generators.

    ``async def`` functions are fine: the run path awaits what they return.
    """
    owner_name, _dot, name = qualname.rpartition(".")
    owner: Any = module
    for part in owner_name.split(".") if owner_name else ():
        owner = getattr(owner, part, None)  # walked once already, by _walk
    # Reached through its class, a plain method would take the task's first argument as
    # ``self``; staticmethods and classmethods are stored as such in the class.
    if isinstance(owner, type) and inspect.isfunction(inspect.getattr_static(owner, name, None)):
        raise TaskConfigError(
            _(
                "'%(path)s' is an instance method: a task has no instance to call it on, and "
                "its first argument would become self; make it a staticmethod or a "
                "classmethod, or schedule a module-level function"
            )
            % {"path": path},
            field="func",
        )
    if _is_async_generator(found):
        # Calling it only makes an async generator: nothing would run.
        raise TaskConfigError(
            _(
                "'%(path)s' is an async generator (async def with yield), which a run cannot "
                "consume; schedule an async def function without yield, or a plain function"
            )
            % {"path": path},
            field="func",
        )
    return found


def _is_async_generator(obj: Any) -> bool:
    if inspect.isasyncgenfunction(obj):
        return True
    # An instance whose __call__ is one (a class is called to construct it: never one).
    call = None if isinstance(obj, type) or inspect.isroutine(obj) else type(obj).__call__
    return call is not None and inspect.isasyncgenfunction(call)


def _candidates(path: str) -> list[tuple[str, str]]:
    """Validate the syntax of ``path`` and list its (module, qualname) readings, longest first."""
    if not isinstance(path, str):
        raise TaskConfigError(
            _("the callable path must be a string, not %(type)s") % {"type": type(path).__name__},
            field="func",
        )
    if not path:
        raise TaskConfigError(
            _('the callable path is empty; give it as "package.module:function"'), field="func"
        )
    if any(char.isspace() for char in path):
        raise TaskConfigError(
            _(
                "'%(path)s' contains whitespace; give the callable as "
                '"package.module:function", without spaces'
            )
            % {"path": path},
            field="func",
        )
    if path.count(":") > 1:
        _malformed(path, _("it has more than one ':'"))
    if ":" in path:
        module_name, _sep, qualname = path.partition(":")
        if not module_name:
            _malformed(path, _("the module before ':' is missing"))
        if not qualname:
            _malformed(path, _("the name after ':' is missing"))
        _check_segments(path, module_name.split("."))
        _check_segments(path, qualname.split("."), attributes=True)
        return [(module_name, qualname)]
    parts = path.split(".")
    if len(parts) < 2:
        _malformed(path, _("it needs a module and a name"))
    _check_segments(path, parts)
    _check_segments(path, parts[1:], attributes=True)
    return [(".".join(parts[:cut]), ".".join(parts[cut:])) for cut in range(len(parts) - 1, 0, -1)]


def _check_segments(path: str, segments: Iterable[str], *, attributes: bool = False) -> None:
    for segment in segments:
        if not segment.isidentifier() or keyword.iskeyword(segment):
            _malformed(path, _("'%(part)s' is not a Python identifier") % {"part": segment})
        # Special attributes (__globals__, __builtins__, __class__ ...) lead out of the module
        # to code the policy never looked at.
        if attributes and segment.startswith("__") and segment.endswith("__"):
            _malformed(path, _("special names such as '%(part)s' are refused") % {"part": segment})


def _malformed(path: str, reason: str) -> None:
    raise TaskConfigError(
        _(
            "'%(path)s' is not a valid callable path: %(reason)s; give it as "
            '"package.module:function" or "package.module:Class.method"'
        )
        % {"path": path, "reason": reason},
        field="func",
    )


def _has_attribute(module: Any, qualname: str) -> bool:
    try:
        getattr(module, qualname.split(".")[0])
    except Exception:
        return False
    return True


def _is_missing(module_name: str, exc: ModuleNotFoundError) -> bool:
    """Whether ``exc`` says ``module_name`` itself (or a package above it) does not exist."""
    return exc.name is not None and _under(module_name, exc.name)


def _import_error(module_name: str, exc: BaseException) -> TaskConfigError:
    if isinstance(exc, ImportError):
        message = _("cannot import module '%(module)s' (%(error)s)")
        error = str(exc)
    else:
        message = _("importing module '%(module)s' failed: %(error)s")
        error = f"{type(exc).__name__}: {exc}"
    return TaskConfigError(message % {"module": module_name, "error": error}, field="func")


def _walk(path: str, module: Any, module_name: str, qualname: str) -> Callable[..., Any]:
    """Follow ``qualname`` from ``module`` and require a callable at the end."""
    obj = module
    owner = module_name
    for name in qualname.split("."):
        try:
            obj = getattr(obj, name)
        except AttributeError:
            if owner == module_name:
                message = _("module '%(owner)s' has no attribute '%(name)s'")
            else:
                message = _("'%(owner)s' has no attribute '%(name)s'")
            raise TaskConfigError(message % {"owner": owner, "name": name}, field="func") from None
        except Exception as exc:  # a property or module __getattr__ that raises
            raise TaskConfigError(
                _("reading '%(name)s' of '%(owner)s' failed: %(error)s")
                % {"name": name, "owner": owner, "error": f"{type(exc).__name__}: {exc}"},
                field="func",
            ) from None
        owner = f"{module_name}:{name}" if owner == module_name else f"{owner}.{name}"
    if not callable(obj):
        raise TaskConfigError(
            _("'%(path)s' is not callable (it is of type %(type)s)")
            % {"path": path, "type": type(obj).__name__},
            field="func",
        )
    return obj


def _is_same_callable(found: Any, registered: Callable[..., Any]) -> bool:
    """Whether the object now at a registered path is (or wraps) what was registered."""
    # Guards against the name being rebound after registration (``job = os.system``).
    candidate = getattr(found, "__func__", found)  # a classmethod comes back as a bound method
    seen = 0
    while candidate is not None and seen < 100:
        if candidate is registered:
            return True
        candidate = getattr(candidate, "__wrapped__", None)
        seen += 1
    return False


def _check_defined_in_allowed_module(path: str, obj: Any, policy: _Policy) -> None:
    """Refuse a callable that an allowed module merely imported from elsewhere."""
    # Without this, "myapp.jobs:system" runs os.system whenever myapp/jobs.py happens to do
    # `from os import system` (or "myapp.jobs:call_command" Django's call_command).
    home = getattr(obj, "__module__", None)
    if not isinstance(home, str):
        raise TaskConfigError(
            _(
                "'%(path)s' is not allowed: cannot tell which module it is defined in; schedule "
                "a function defined in an allowed module or register it with "
                "@django_tasks_sched.register"
            )
            % {"path": path},
            field="func",
        )
    if not policy.allows(home):
        raise TaskConfigError(
            _(
                "'%(path)s' is not allowed: it is defined in module '%(module)s', which is "
                "outside %(scope)s (importing it into an allowed module does not make it "
                "allowed); schedule a function defined in an allowed module or register it "
                "with @django_tasks_sched.register"
            )
            % {"path": path, "module": home, "scope": policy.scope()},
            field="func",
        )
