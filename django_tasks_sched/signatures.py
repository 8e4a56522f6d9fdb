"""Whether a task's JSON arguments fit its callable's signature, and which field is at fault.

Checked when a Task is written (``Task.clean()``), so a call that could never work is refused
with a message naming ``args`` or ``kwargs``, not found out at the first fire.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from django.utils.translation import gettext as _

from django_tasks_sched.exceptions import TaskConfigError


def check_arguments(func: Callable[..., Any], args: Any, kwargs: Any) -> None:
    """Raise :class:`TaskConfigError` unless ``func(*args, **kwargs)`` fits its signature."""
    if not isinstance(args, Sequence) or isinstance(args, str | bytes):
        raise TaskConfigError(
            _('positional arguments must be a JSON list, e.g. [1, "a"]'), field="args"
        )
    if not isinstance(kwargs, Mapping) or not all(isinstance(key, str) for key in kwargs):
        raise TaskConfigError(
            _('keyword arguments must be a JSON object, e.g. {"days": 30}'), field="kwargs"
        )
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return  # some builtins have no inspectable signature: let the call itself decide
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise TaskConfigError(
            _("the arguments do not fit %(callable)s: %(problem)s")
            % {"callable": _describe(func, signature), "problem": exc},
            field=_field_at_fault(signature, str(exc)),
        ) from None


def _field_at_fault(signature: inspect.Signature, problem: str) -> str:
    """Which of ``args`` / ``kwargs`` the user has to change, judged from inspect's message."""
    if "keyword" in problem or "multiple values" in problem:
        return "kwargs"
    # "missing a required argument: 'x'" says the same for positional and keyword-only x.
    for name, parameter in signature.parameters.items():
        if problem.endswith(f"argument: {name!r}"):
            return "kwargs" if parameter.kind is parameter.KEYWORD_ONLY else "args"
    return "args"


def _describe(func: Callable[..., Any], signature: inspect.Signature) -> str:
    """``module:qualname(params)`` without annotations, for messages."""
    module = getattr(func, "__module__", None) or "?"
    qualname = getattr(func, "__qualname__", None) or type(func).__qualname__
    bare = signature.replace(
        parameters=[p.replace(annotation=p.empty) for p in signature.parameters.values()],
        return_annotation=signature.empty,
    )
    return f"{module}:{qualname}{bare}"
