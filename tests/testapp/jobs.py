"""Callables the tests schedule."""

from __future__ import annotations

import os
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


def switch_interval() -> float:
    """The interpreter's switch interval in the process that called it."""
    import sys

    return sys.getswitchinterval()


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
    """An ``async def`` function: awaited by every executor."""
    import asyncio

    await asyncio.sleep(0)
    return "awaited"


async def async_sleep(seconds: float) -> float:
    """Awaits for ``seconds``; cancelled at its task's timeout."""
    import asyncio

    await asyncio.sleep(seconds)
    return seconds


async def async_gen() -> Any:
    """An async generator: nothing would consume it, so it is refused."""
    yield 1


def reports_back(steps: int = 2) -> dict[str, Any]:
    """Report progress and meta through current_run(); return what the run handle says."""
    from django_tasks_sched import current_run

    run = current_run()
    assert run is not None
    for step in range(1, steps + 1):
        run.update(progress=step / steps, meta={"step": step})
    return {
        "run": run.pk,
        "scheduled_for": run.scheduled_for.isoformat() if run.scheduled_for else None,
        "attempt": run.attempt,
        "task": run.task.name,
    }


async def async_reports_back() -> dict[str, Any]:
    """current_run() inside a coroutine."""
    from asgiref.sync import sync_to_async

    from django_tasks_sched import current_run

    run = current_run()
    assert run is not None
    await sync_to_async(run.update)(progress=1.0, meta={"async": True})
    return {"run": run.pk}


def beats_then_hangs(beats: int, interval: float, hang: float) -> None:
    """Send heartbeats for a while, then hang without any (a stuck function)."""
    from django_tasks_sched import current_run

    run = current_run()
    assert run is not None
    for _ in range(beats):
        run.heartbeat()
        time.sleep(interval)
    time.sleep(hang)


class Mailer:
    """A class whose method needs an instance: tasks must not shift their args into ``self``."""

    def __init__(self, sender: str = "ops") -> None:
        self.sender = sender

    def send(self, to: str = "root") -> str:
        return f"{self.sender} -> {to}"

    @staticmethod
    def check(to: str = "root") -> str:
        return to


def trace_run(path: str, seconds: float = 0.0) -> int:
    """Append the current run's id to ``path`` (one line per real execution); return it."""
    from django_tasks_sched import current_run

    run = current_run()
    assert run is not None
    with open(path, "a") as out:
        out.write(f"{run.pk}\n")
    time.sleep(seconds)
    return int(run.pk)


def hangs_until_retried(interval: float) -> str:
    """The first attempt reports its pid and never ends (its worker gets killed); a retry ends."""
    from django_tasks_sched import current_run

    run = current_run()
    assert run is not None
    while run.attempt == 1:
        run.update(meta={"pid": os.getpid()})
        time.sleep(interval)
    return "retried"


async def async_cancels() -> None:
    """A coroutine that raises CancelledError itself (a BaseException)."""
    import asyncio

    raise asyncio.CancelledError("gave up")


def trace_span(path: str, seconds: float) -> int:
    """Append "start <run id>", sleep, append "end <run id>": whether a call ran to its end."""
    from django_tasks_sched import current_run

    run = current_run()
    assert run is not None
    with open(path, "a") as out:
        out.write(f"start {run.pk}\n")
    time.sleep(seconds)
    with open(path, "a") as out:
        out.write(f"end {run.pk}\n")
    return int(run.pk)


def signals_itself() -> str:
    """Send this process a SIGUSR2 mid-call, as an operator or a debugger might: not a stop."""
    import signal

    os.kill(os.getpid(), signal.SIGUSR2)
    time.sleep(0.2)  # the handler runs now, in this frame
    return "not stopped"


def replaces_sigusr2() -> str:
    """Install a handler of its own for SIGUSR2 (ignore it), as some libraries do."""
    import signal

    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    return "replaced"
