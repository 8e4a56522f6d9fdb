"""Callables the tests schedule."""

from __future__ import annotations

import time
from typing import Any


def noop() -> None:
    """Do nothing."""


def add(a: int, b: int) -> int:
    return a + b


def greet(name: str, *, greeting: str = "Hello") -> str:
    return f"{greeting}, {name}!"


def takes_anything(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return {"args": list(args), "kwargs": kwargs}


def fail(message: str = "boom") -> None:
    raise RuntimeError(message)


def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def returns_object() -> object:
    return object()


NOT_CALLABLE = 42


class Maintenance:
    @staticmethod
    def vacuum(table: str = "all") -> str:
        return f"vacuumed {table}"

    @classmethod
    def rebuild(cls) -> str:
        return cls.__name__


def log_lines(count: int) -> int:
    import logging

    log = logging.getLogger(__name__)
    for i in range(count):
        log.info("line %d", i)
    return count


def append_line(path: str, text: str) -> str:
    """Leave a trace outside the database: one line per call, to count real executions."""
    with open(path, "a") as handle:
        handle.write(text + "\n")
    return text


def process_id() -> int:
    """The process that called it (the process executor calls it in a worker process)."""
    import os

    return os.getpid()


def record_pid_and_sleep(path: str, seconds: float) -> None:
    """Write this process's id to ``path``, then hang: something to kill."""
    import os
    from pathlib import Path

    Path(path).write_text(str(os.getpid()))
    time.sleep(seconds)


def exit_process(code: int) -> None:
    """End the calling process at once, as a crash in C code would."""
    import os

    os._exit(code)


def raise_system_exit() -> None:
    raise SystemExit(3)


def count_tasks() -> int:
    """Use the ORM: in a worker process, Django must be set up."""
    from django_tasks_sched.models import Task

    return Task.objects.count()


async def async_job() -> str:
    """An ``async def`` function: refused until runs await them."""
    return "awaited"


class Mailer:
    """A class whose method needs an instance: tasks must not shift their args into ``self``."""

    def __init__(self, sender: str = "ops") -> None:
        self.sender = sender

    def send(self, to: str = "root") -> str:
        return f"{self.sender} -> {to}"

    @staticmethod
    def check(to: str = "root") -> str:
        return to
