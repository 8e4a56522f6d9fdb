"""How the scheduler hears of changes: it polls the change stamp, and on PostgreSQL LISTENs.

The poll runs four times a second in every scheduler process (less often while LISTEN, or on
SQLite the file watch of :mod:`.watch`, is in place: SchedulerService.poll_wait), so its SQL
is compiled once; on SQLite it first looks at the database's files. The listener runs on its
own connection in a daemon thread and wakes the main loop the moment a stamp is bumped. Any
failure of it (server restart, psycopg 2 in use) only costs latency: the scheduler polls at its
own pace again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, NamedTuple

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper

from django_tasks_sched.changes import NOTIFY_CHANNEL, STAMP_PK
from django_tasks_sched.models import ScheduleStamp
from django_tasks_sched.service.compiled import Compiled

logger = logging.getLogger(__name__)


class Stamp(NamedTuple):
    """What each poll reads: the change stamp's version and the firing switch."""

    version: int
    firing: bool


#: On SQLite, the longest time between two reads of the stamp while its files look unchanged.
FORCED_READ = 1.0

#: On SQLite, files written this recently (seconds) are not trusted to stand still: a commit
#: is in the write-ahead log before readers see it, and a file's time is only as fine as the
#: kernel's clock tick (a second on some filesystems).
SETTLING = 1.0

#: What identifies a state of a file: its inode, size and modification time (None: absent).
FileState = tuple[int, int, int] | None


class StampReader:
    """Reads the change stamp's version (0 before any change) and the firing switch.

    The ORM builds the query once, and one cursor serves every poll of a connection: each
    poll only executes it. Compiling the query, then opening a cursor, on every poll were in
    turn most of an idle scheduler's CPU time.

    On SQLite, a poll first looks at the database's files: every commit, by any process, writes
    the write-ahead log (or, without WAL, the database file), so while neither changed the
    stamp has not either, and the poll makes no query: four queries a second were most of an
    idle SQLite scheduler's CPU time. Files written within :data:`SETTLING` seconds are read
    through (a commit in the log may not be visible yet; two commits within one tick of the
    file time look like one), and a read at least every :data:`FORCED_READ` seconds bounds
    what anything else the look misses can delay.
    """

    def __init__(self, using: str = DEFAULT_DB_ALIAS) -> None:
        self.using = using
        query = ScheduleStamp.objects.using(using).filter(pk=STAMP_PK)
        self.query = Compiled.select(query.values_list("version", "firing"))
        #: The cursor, and the DB-API connection it belongs to (a reconnect makes a new one).
        self._cursor: CursorWrapper | None = None
        self._raw: object = None
        #: On SQLite, the files a commit writes (see :mod:`.watch`); () elsewhere.
        self.files = _database_files(connections[using])
        #: The files' states at the last read, what it read, and when the next read is due.
        self._seen: tuple[FileState, ...] | None = None
        self._last = Stamp(0, True)
        self._read_by = 0.0

    def __call__(self) -> Stamp:
        seen = self._look()
        if seen is not None and seen == self._seen and time.monotonic() < self._read_by:
            return self._last
        cursor = self._cursor_for(connections[self.using])
        cursor.execute(self.query.sql, self.query.params)
        row = cursor.fetchone()
        # Raw values: SQLite and MySQL give booleans as 0 and 1.
        self._last = Stamp(int(row[0]), bool(row[1])) if row else Stamp(0, True)
        # The files' states from before the read: a commit after that look changes them.
        self._seen, self._read_by = seen, time.monotonic() + FORCED_READ
        return self._last

    def _look(self) -> tuple[FileState, ...] | None:
        """The files' states, or None when they cannot be trusted to tell: no files to look
        at, the database file missing, or a file written within SETTLING seconds."""
        if not self.files:
            return None
        seen = tuple(file_state(path) for path in self.files)
        if seen[0] is None:
            return None
        settled = time.time_ns() - int(SETTLING * 1e9)
        if any(state is not None and state[2] > settled for state in seen):
            return None
        return seen

    def _cursor_for(self, conn: BaseDatabaseWrapper) -> CursorWrapper:
        if self._cursor is None or conn.connection is not self._raw:
            self._cursor = conn.cursor()  # connects first if needed
            self._raw = conn.connection
        return self._cursor


def _database_files(conn: BaseDatabaseWrapper) -> tuple[str, ...]:
    """The files a commit to this SQLite database writes; () for other databases, and for
    an in-memory one or a URI filename (no file to look at)."""
    if conn.vendor != "sqlite":
        return ()
    name = str(conn.settings_dict["NAME"])
    if not name or name == ":memory:" or name.startswith("file:"):
        return ()
    # SQLite keeps the log beside the real file, and a chdir must not move what is looked at.
    path = os.path.realpath(name)
    return (path, f"{path}-wal")


def file_state(path: str) -> FileState:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


#: Longest wait for a notification. A stop does not wait for it (:meth:`Listener.stop` wakes the
#: thread at once): it only bounds how long a lost connection may go unnoticed.
LISTEN_WAIT = 30.0


class WakeThread(threading.Thread):
    """A daemon thread that sets ``wake`` when the database tells of a change, until stopped.

    While :attr:`listening` is set, every change wakes the loop, which may poll less often
    (SchedulerService.poll_wait). Subclasses wait in :meth:`_listen`, on their own descriptor
    and on :attr:`_stop_reader` together, so a stop ends the wait at once.
    """

    #: The thread's name (seen in py-spy and thread dumps).
    thread_name = "dts-wake"

    def __init__(self, wake: threading.Event) -> None:
        super().__init__(name=self.thread_name, daemon=True)
        self.wake = wake
        #: Set while a change is sure to wake the loop.
        self.listening = threading.Event()
        self._stopping = threading.Event()
        self._stop_reader, self._stop_writer = socket.socketpair()
        self._stop_writer.setblocking(False)

    def request_stop(self) -> None:
        """End the wait, without waiting for the thread."""
        self._stopping.set()
        # An error: the socket is closed (stopped before) or full (the thread is waking anyway).
        with contextlib.suppress(OSError):
            self._stop_writer.send(b"x")

    def stop(self, timeout: float = 5.0) -> None:
        """:meth:`request_stop`, then wait up to ``timeout`` s for the thread."""
        self.request_stop()
        if self.is_alive():
            self.join(timeout)
        if not self.is_alive():
            # Closed here, not by the thread: a send after a close by another thread could
            # reach whatever socket reused the descriptor.
            self._stop_reader.close()
            self._stop_writer.close()

    def settling(self) -> float:
        """Seconds the loop must still keep the poll's pace though :attr:`listening` is set
        (a change just told of may not be visible to a read yet); 0.0 when it need not."""
        return 0.0

    @contextlib.contextmanager
    def own_write(self) -> Iterator[None]:
        """Around a write of the loop's own (the heartbeat): what it tells of needs no
        settling (:class:`~.watch.FileWatcher`). Nothing to do here."""
        yield

    def run(self) -> None:
        try:
            self._listen()
        finally:
            self.listening.clear()
            self.wake.set()  # the loop goes back to the poll's pace now, not after its wait

    def _listen(self) -> None:
        raise NotImplementedError


class Listener(WakeThread):
    """Sets ``wake`` on every NOTIFY until :meth:`stop`, which also closes the LISTEN
    connection, so a test database can be dropped (PostgreSQL)."""

    thread_name = "dts-listen"

    @staticmethod
    def supported() -> bool:
        if connection.vendor != "postgresql":
            return False
        try:
            import psycopg  # noqa: F401
        except ImportError:
            return False
        return True

    def _listen(self) -> None:
        import psycopg

        params = connection.get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        params.pop("server_side_binding", None)
        params.pop("prepare_threshold", None)
        while not self._stopping.is_set():
            try:
                with psycopg.connect(**params, autocommit=True) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    logger.debug("Listening on PostgreSQL channel %s", NOTIFY_CHANNEL)
                    self.listening.set()
                    self.wake.set()  # Changes may have happened while we were connecting.
                    self._wait_for_notifications(conn)
            except Exception:
                # Back to the poll's own pace (the loop reads this flag before each wait).
                self.listening.clear()
                if self._stopping.is_set():
                    return
                logger.warning("LISTEN connection lost; polling until it is back", exc_info=True)
                self._stopping.wait(2)

    def _wait_for_notifications(self, conn: Any) -> None:
        # Waiting on the socket, not in notifies(timeout=...): psycopg's wait wakes ten times a
        # second, most of an idle scheduler's CPU time on PostgreSQL. A selector, not select():
        # select() refuses descriptors past 1024.
        with selectors.DefaultSelector() as selector:
            selector.register(conn.fileno(), selectors.EVENT_READ)
            selector.register(self._stop_reader, selectors.EVENT_READ)
            while not self._stopping.is_set():
                if not selector.select(LISTEN_WAIT):
                    # Quiet for a while: ask the server, so a connection lost without a word
                    # (a dropped network) is found and made again. A notification that came
                    # meanwhile is kept by psycopg, and handed out just below.
                    conn.execute("SELECT 1")
                if not self._stopping.is_set():
                    for _ in conn.notifies(timeout=0):
                        self.wake.set()
