"""Stopping a call in a process's main thread when its run is ended by another process.

A thread cannot be stopped from outside, with one exception: the main thread, which Python
interrupts with a signal. A worker of a fleet calls its runs there (django-tasks-db's
``db_worker``; Celery's ``prefork`` and ``solo`` pools), so when a run it calls is ended
elsewhere (a later fire replaced it, ``overlap="cancel_other"``; a watchdog timed it out; it
was taken for dead), the process's liveness thread notices at its next beat
(:mod:`django_tasks_sched.liveness`) and sends the main thread :data:`STOP_SIGNAL`. The
handler raises :class:`RunStopped` in the function's frame: a ``BaseException``, so an
``except Exception`` in the function does not swallow it, while its ``finally`` blocks and
context managers run. A blocking ``time.sleep()`` or socket wait is cut short; C code that
holds the interpreter (a long query) is stopped when it returns to Python.

The handler is installed on the first stoppable call and stays (a signal sent just as a call
ends must not meet the default action, which ends the process): between calls it passes the
signal to the handler that was there before, if that was a Python function, else ignores it.
Calls in other threads (Celery's ``threads`` pool, a scheduler's thread executor) go on to
their end; their late outcome is dropped, the run's record stands.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from django_tasks_sched.liveness import liveness

#: The signal the liveness thread sends the main thread (not used by Celery's or django-tasks-db's
#: workers).
STOP_SIGNAL = getattr(signal, "SIGUSR2", None)


class RunStopped(BaseException):
    """Raised in a run's function when the run was ended by another process."""


class _Stop:
    """The stop of one call: signals the main thread, unless the call is over."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.armed = True
        self.sent = False

    def __call__(self) -> None:
        with self._lock:
            if self.armed and not self.sent:
                self.sent = True
                assert STOP_SIGNAL is not None
                signal.pthread_kill(threading.main_thread().ident or 0, STOP_SIGNAL)

    def disarm(self) -> None:
        with self._lock:
            self.armed = False


_current: _Stop | None = None
_previous: Any = None
_installed = False


def _handle(signum: int, frame: FrameType | None) -> None:
    stop = _current
    if stop is not None and stop.armed:
        raise RunStopped
    if callable(_previous):
        _previous(signum, frame)


def can_stop() -> bool:
    """Whether a call made here can be stopped: in the main thread, where signals exist."""
    return STOP_SIGNAL is not None and threading.current_thread() is threading.main_thread()


@contextmanager
def stoppable(run_id: int) -> Iterator[None]:
    """Raise :class:`RunStopped` in the block if run ``run_id`` is ended elsewhere meanwhile.

    Does nothing outside the main thread. The run must be kept alive (``liveness.alive``) by
    the caller: the liveness beat is what notices the end.
    """
    global _current, _previous, _installed
    if not can_stop():
        yield
        return
    if not _installed:
        _previous = signal.signal(STOP_SIGNAL, _handle)  # type: ignore[arg-type]
        _installed = True
    stop = _current = _Stop()
    beats = liveness()
    beats.on_end(run_id, stop)
    try:
        yield
    finally:
        # One signal at most per call, and none once disarmed: if it raises here, before the
        # disarm, the inner ``finally`` still forgets the call.
        try:
            stop.disarm()
        finally:
            beats.on_end(run_id, None)
            _current = None
