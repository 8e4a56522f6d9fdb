"""Callables outside the project's apps: allowed only when registered (or by ALLOWED_MODULES)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from os import getcwd  # noqa: F401  (imported into this module: must never be runnable from here)
from typing import Any

from django_tasks_sched import register


@register
def registered_job(value: int = 1) -> int:
    return value


def unregistered_job() -> str:
    return "not registered"


@register
def needs_keyword(*, day: str) -> str:
    return day


def _logged(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    return wrapper


@_logged
@register
def wrapped_job() -> str:
    return "wrapped"


class Tools:
    @staticmethod
    @register
    def static_below() -> str:
        return "static below"

    @register
    @staticmethod
    def static_above() -> str:
        return "static above"

    @classmethod
    @register
    def class_below(cls) -> str:
        return cls.__name__

    @register
    @classmethod
    def class_above(cls) -> str:
        return cls.__name__

    @staticmethod
    def not_registered() -> str:
        return "no"
