"""On SQLite under Linux, how the scheduler hears of a commit without polling: inotify.

Every commit, by any process, writes the database's write-ahead log (or, without WAL, the
database file), and the kernel tells an inotify descriptor that watches their directory. The
watcher wakes the loop, which reads the change stamp, and goes on polling for the second after
(a commit written to the log may not be visible yet: StampReader.settling). In between, the
loop only waits for the next heartbeat, where it polled four times a second: those wake-ups
were most of an idle SQLite scheduler's CPU time.

The watch is trusted only once it has reported a write to the database (the scheduler's own
heartbeat writes one within ``HEARTBEAT_INTERVAL``): on a filesystem whose writes inotify does
not report (some network and FUSE ones) the loop keeps polling at ``POLL_INTERVAL``.
"""

from __future__ import annotations

import ctypes
import logging
import os
import selectors
import struct
import sys
import threading
import time

from django_tasks_sched.service.listen import WakeThread

logger = logging.getLogger(__name__)

# From <sys/inotify.h>: what is written, created, moved in or deleted in the directory.
IN_MODIFY = 0x002
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
#: The directory itself was deleted or moved: its path no longer leads to what is watched.
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
WATCHED = IN_MODIFY | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF
#: Events were dropped (the queue was full): any of them may have been a commit.
IN_Q_OVERFLOW = 0x4000
#: The watch is gone (its filesystem was unmounted, or the directory's inode freed).
IN_IGNORED = 0x8000
GONE = IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED
#: struct inotify_event: wd, mask, cookie, len, then ``len`` bytes of NUL-padded name.
_EVENT = struct.Struct("iIII")


class FileWatcher(WakeThread):
    """Sets ``wake`` when a database file is written, at most once every ``gap`` seconds."""

    def __init__(self, wake: threading.Event, files: tuple[str, ...], gap: float) -> None:
        super().__init__("dts-watch", wake)
        self.directory = os.path.dirname(files[0])
        self.names = frozenset(os.fsencode(os.path.basename(path)) for path in files)
        #: Under load every commit writes the files: the loop is woken at most once a poll
        #: interval, as often as it polled before (a write meanwhile wakes it after the gap).
        self.gap = gap

    @staticmethod
    def supported(files: tuple[str, ...]) -> bool:
        """Whether there are files to watch (SQLite on a file) and inotify to watch them."""
        return bool(files) and sys.platform.startswith("linux")

    def _listen(self) -> None:
        try:
            descriptor = _watch(self.directory)
        except (OSError, AttributeError) as error:
            logger.info("Not watching %s for changes (%s); polling", self.directory, error)
            return
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(descriptor, selectors.EVENT_READ)
                selector.register(self._stop_reader, selectors.EVENT_READ)
                woke = -self.gap
                while not self._stopping.is_set():
                    selector.select()
                    if self._stopping.is_set() or not self._written(descriptor):
                        continue
                    # Writes meanwhile queue events, which the next select() returns at once.
                    pause = woke + self.gap - time.monotonic()
                    if pause > 0 and self._stopping.wait(pause):
                        break
                    self.listening.set()
                    self.wake.set()
                    woke = time.monotonic()
        except OSError:
            if not self._stopping.is_set():
                logger.warning("Stopped watching %s; polling", self.directory, exc_info=True)
        finally:
            os.close(descriptor)

    def _written(self, descriptor: int) -> bool:
        """Read every queued event; whether one was a write to a database file."""
        written = False
        while True:
            try:
                data = os.read(descriptor, 64 * 1024)
            except BlockingIOError:
                return written
            for mask, name in _events(data):
                if mask & GONE:
                    raise OSError(f"{self.directory} was deleted, moved or unmounted")
                written = written or bool(mask & IN_Q_OVERFLOW) or name in self.names


def _events(data: bytes) -> list[tuple[int, bytes]]:
    """(mask, file name) of each event in what one read of the descriptor returned."""
    events, offset = [], 0
    while offset < len(data):
        _, mask, _, length = _EVENT.unpack_from(data, offset)
        offset += _EVENT.size
        events.append((mask, data[offset : offset + length].rstrip(b"\0")))
        offset += length
    return events


def _watch(directory: str) -> int:
    """A non-blocking inotify descriptor watching ``directory``'s files (OSError if not)."""
    # The C library the interpreter runs on; inotify is a Linux call (glibc and musl have it).
    libc = ctypes.CDLL(None, use_errno=True)
    descriptor = int(libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC))
    if descriptor < 0:
        number = ctypes.get_errno()
        raise OSError(number, os.strerror(number))
    if libc.inotify_add_watch(descriptor, os.fsencode(directory), WATCHED) < 0:
        number = ctypes.get_errno()
        os.close(descriptor)
        raise OSError(number, os.strerror(number), directory)
    return descriptor
