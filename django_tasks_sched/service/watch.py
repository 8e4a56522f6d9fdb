"""On SQLite under Linux, how the scheduler hears of a commit without polling: inotify.

Every commit, by any process, writes the database's write-ahead log (or, without WAL, the
database file), and the kernel tells an inotify descriptor that watches their directory. The
watcher wakes the loop, which reads the change stamp, and goes on polling for the second after
(a commit written to the log is visible only after its fsync: :meth:`FileWatcher.settling`),
but for one poll interval only after the heartbeat's own write (:meth:`FileWatcher.own_write`).
In between, the loop only waits for the next heartbeat, where it polled four times a second:
those wake-ups were most of an idle SQLite scheduler's CPU time.

The watch is trusted only once it has reported a write to the database (the scheduler's own
heartbeat writes one within ``HEARTBEAT_INTERVAL``), and made only on a local filesystem: on a
network or FUSE one, inotify reports this machine's writes but not another's, and the loop
keeps polling at ``POLL_INTERVAL``.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import os
import selectors
import struct
import sys
import threading
import time
from collections.abc import Iterator

from django_tasks_sched.service import listen
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

    thread_name = "dts-watch"

    def __init__(self, wake: threading.Event, files: tuple[str, ...], gap: float) -> None:
        super().__init__(wake)
        self.files = files
        self.directory = os.path.dirname(files[0])
        self.names = frozenset(os.fsencode(os.path.basename(path)) for path in files)
        #: Under load every commit writes the files: the loop is woken at most once a poll
        #: interval, as often as it polled before (a write meanwhile wakes it after the gap).
        self.gap = gap
        #: When the last write to a database file was reported (time.monotonic()).
        self.written_at = -math.inf
        #: Set once the kernel watches the directory: every write from then on is told of.
        self.watching = threading.Event()
        #: When the loop's last own write began, and the files' states it left (own_write()).
        self._own_write_began = math.inf
        self._own_write_left: tuple[listen.FileState, ...] = ()

    def settling(self) -> float:
        """Seconds within which the loop should read again (0.0 once settled): a commit is in
        the log before readers can see it (after its fsync), so for SETTLING seconds after
        each reported write the loop keeps the poll's pace, and reads at least once more as
        they end.

        For one poll interval only if the write was the loop's own heartbeat's (see
        :meth:`own_write`): reported after the heartbeat began, with the files as the
        heartbeat left them. SQLite writes the log only under its write lock, so any other
        commit reported by then had ended before the heartbeat took the lock, and is visible;
        a commit after it changes the log's size or time. (Not one that restarts the log from
        its start within the same tick of the file clock: that commit is read a poll interval
        later, or at the heartbeat, as before the watch.)
        """
        written, now = self.written_at, time.monotonic()
        if now >= written + listen.SETTLING:
            return 0.0
        if written >= self._own_write_began and self._own_write_left == self._states():
            return max(0.0, written + self.gap - now)
        return written + listen.SETTLING - now

    @contextlib.contextmanager
    def own_write(self) -> Iterator[None]:
        """Around the heartbeat's write: its report needs no second of polling, which cost
        each heartbeat four wake-ups. Only a write that succeeded counts (one that gave up on
        a lock another process held proves nothing of that process's commit)."""
        began = time.monotonic()
        yield
        self._own_write_began, self._own_write_left = began, self._states()

    def _states(self) -> tuple[listen.FileState, ...]:
        return tuple(listen.file_state(path) for path in self.files)

    @staticmethod
    def supported(files: tuple[str, ...]) -> bool:
        """Whether there are files to watch (SQLite on a file), inotify to watch them, and a
        local filesystem: on a network or FUSE one inotify sees this machine's writes only."""
        if not files or not sys.platform.startswith("linux"):
            return False
        return filesystem_type(os.path.dirname(files[0])) in LOCAL_FILESYSTEMS

    def _listen(self) -> None:
        try:
            descriptor = _watch(self.directory)
        except (OSError, AttributeError) as error:
            logger.info("Not watching %s for changes (%s); polling", self.directory, error)
            return
        self.watching.set()
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(descriptor, selectors.EVENT_READ)
                selector.register(self._stop_reader, selectors.EVENT_READ)
                woke = -self.gap
                while not self._stopping.is_set():
                    selector.select()
                    if self._stopping.is_set() or not self._written(descriptor):
                        continue
                    self.written_at = time.monotonic()
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


#: Filesystems whose every write, by any process of this machine, inotify reports (the
#: database cannot be shared with another machine on them anyway).
LOCAL_FILESYSTEMS = frozenset(
    {"ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "overlay", "zfs", "f2fs", "bcachefs"}
)


def filesystem_type(directory: str) -> str:
    """The type of the filesystem ``directory`` is on, from /proc/self/mountinfo ('' if
    unknown): the mount whose point is the longest prefix of the directory's real path."""
    path = os.path.realpath(directory)
    best, kind = -1, ""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as mounts:
            for line in mounts:
                fields, _, rest = line.partition(" - ")
                parts = fields.split()
                if len(parts) < 5 or not rest:
                    continue
                # Spaces in a mount point are written as \040.
                point = parts[4].replace("\\040", " ")
                inside = path == point or path.startswith(point.rstrip("/") + "/")
                if inside and len(point) >= best:
                    best, kind = len(point), rest.split()[0]
    except OSError:
        return ""
    return kind


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
