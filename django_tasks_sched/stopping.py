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

The handler raises only for the stop of the call going on; any other SIGUSR2 (during a call or
between calls) goes to the handler that was there before, if that was a Python function, else
is ignored. Only the function's own frames are stopped (:func:`.execution.call_task` arms the
stop around the call alone), and an ``async def`` function's coroutine, which runs in an event
loop of its own thread, is not: its ``timeout`` cancels it. Calls in other threads (Celery's
``threads`` pool, a scheduler's thread executor) go on to their end; their late outcome is
dropped, the run's record stands.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from django_tasks_sched.liveness import liveness

logger = logging.getLogger(__name__)

#: The signal the liveness thread sends the main thread. Celery's and django-tasks-db's workers
#: leave it alone (unless ``CELERY_RDBSIG`` asks Celery for its remote debugger on it); a
#: SIGUSR2 that is not a stop is passed on to the handler that was there before.
STOP_SIGNAL = getattr(signal, "SIGUSR2", None)


class RunStopped(BaseException):
    """Raised in a run's function when the run was ended by another process."""


class _Stop:
    """The stop of one call: signals the main thread once, unless the call is over."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.armed = True
        self.sent = False

    def __call__(self) -> None:
        with self._lock:
            if not self.armed or self.sent:
                return
            if signal.getsignal(STOP_SIGNAL) is not _handle:  # type: ignore[arg-type]
                # Replaced by the function's own handler: the signal would not be ours.
                logger.warning("SIGUSR2 has another handler: the run's call cannot be stopped")
                return
            self.sent = True
            _signal_main_thread()

    def disarm(self) -> None:
        with self._lock:
            self.armed = False


_current: _Stop | None = None
_previous: Any = None


def _signal_main_thread() -> None:
    assert STOP_SIGNAL is not None
    signal.pthread_kill(threading.main_thread().ident or 0, STOP_SIGNAL)


def _handle(signum: int, frame: FrameType | None) -> None:
    stop = _current
    if stop is not None and stop.armed and stop.sent:
        raise RunStopped
    if callable(_previous):
        _previous(signum, frame)  # not a stop of this call: someone else's signal


def can_stop() -> bool:
    """Whether a call made here can be stopped: in the main thread, where signals exist."""
    return STOP_SIGNAL is not None and threading.current_thread() is threading.main_thread()


@contextmanager
def stoppable(run_id: int) -> Iterator[None]:
    """Raise :class:`RunStopped` in the block if run ``run_id`` is ended elsewhere meanwhile.

    Does nothing outside the main thread. The run must be kept alive (``liveness.alive``) by
    the caller: the liveness beat is what notices the end. Blocks may nest (a run that runs
    another inline): a stop of the outer run that arrives during the inner one is raised when
    the inner one is over.
    """
    global _current, _previous
    if not can_stop():
        yield
        return
    if signal.getsignal(STOP_SIGNAL) is not _handle:  # type: ignore[arg-type]
        # Installed on the first call, and again if something replaced it since; it then stays
        # (a signal sent just as a call ends must not meet the default action, which ends the
        # process).
        _previous = signal.signal(STOP_SIGNAL, _handle)  # type: ignore[arg-type]
    outer, stop = _current, _Stop()
    _current = stop
    beats = liveness()
    beats.on_end(run_id, stop)
    try:
        yield
    finally:
        # One signal at most per call, and none raised once disarmed: if it raises here,
        # before the disarm, the inner ``finally`` still forgets the call.
        try:
            stop.disarm()
        finally:
            beats.on_end(run_id, None)
            _current = outer
            if outer is not None and outer.sent and outer.armed:
                _signal_main_thread()  # the outer run was stopped meanwhile: now its turn
