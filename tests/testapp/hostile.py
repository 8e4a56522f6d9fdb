"""Callables whose outcome no database stores as it is: each run must still reach a final status."""

from __future__ import annotations

import logging
import sys
from typing import Any

logger = logging.getLogger(__name__)


def returns_nan() -> float:
    return float("nan")


def returns_infinity() -> list[float]:
    return [1.0, float("inf")]


def returns_nul() -> str:
    return "a\x00b"


def returns_nul_key() -> dict[str, int]:
    return {"a\x00": 1}


def returns_deep() -> list[Any]:
    value: list[Any] = []
    for _ in range(100_000):
        value = [value]
    return value


def returns_huge_int() -> int:
    return 10**100


def raises_nul() -> None:
    raise RuntimeError("bad\x00message")


def logs_nul() -> str:
    logger.warning("a log line with a NUL: \x00")
    return "logged"


def exits() -> None:
    sys.exit(3)


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no message for you")


def raises_unprintable() -> None:
    raise _Unprintable


class _BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr either")


def returns_bad_repr() -> object:
    return _BadRepr()
