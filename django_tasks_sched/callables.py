"""STUB — to be implemented: callable policy (registry, ALLOWED_MODULES, import, signature)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def register(func: F) -> F:
    return func


def resolve_callable(path: str) -> Callable[..., Any]:
    raise NotImplementedError


def check_arguments(func: Callable[..., Any], args: Any, kwargs: Any) -> None:
    raise NotImplementedError
