"""How the scheduler hears of changes: it polls the change stamp, and on PostgreSQL LISTENs.

The poll runs four times a second in every scheduler process (once a second while LISTEN is in
place), so its SQL is compiled once. The listener runs on its own connection in a daemon thread
and wakes the main loop the moment a stamp is bumped. Any failure of it (server restart,
psycopg 2 in use) only costs latency: the scheduler polls at its own pace again.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import NamedTuple

from django.db import DEFAULT_DB_ALIAS, connection, connections

from django_tasks_sched.changes import NOTIFY_CHANNEL, STAMP_PK
from django_tasks_sched.models import ScheduleStamp

logger = logging.getLogger(__name__)


class Stamp(NamedTuple):
    """What each poll reads: the change stamp's version and the firing switch."""

    version: int
    firing: bool


class StampReader:
    """Reads the change stamp's version (0 before any change) and the firing switch.

    The ORM builds the query once; each poll only executes it. Compiling it on every poll
    was most of an idle scheduler's CPU time.
    """

    def __init__(self, using: str = DEFAULT_DB_ALIAS) -> None:
        self.using = using
        query = ScheduleStamp.objects.using(using).filter(pk=STAMP_PK)
        self.sql, self.params = (
            query.values_list("version", "firing").query.get_compiler(using).as_sql()
        )

    def __call__(self) -> Stamp:
        with connections[self.using].cursor() as cursor:
            cursor.execute(self.sql, self.params)
            row = cursor.fetchone()
        # Raw values: SQLite and MySQL give booleans as 0 and 1.
        return Stamp(int(row[0]), bool(row[1])) if row else Stamp(0, True)


class Listener(threading.Thread):
    """Sets ``wake`` on every NOTIFY until ``stop`` is set."""

    def __init__(self, wake: threading.Event, stop: threading.Event) -> None:
        super().__init__(name="dts-listen", daemon=True)
        self.wake = wake
        self.stop = stop
        #: Set while LISTEN is in place: a change wakes the loop, which may poll less often.
        self.listening = threading.Event()

    @staticmethod
    def supported() -> bool:
        if connection.vendor != "postgresql":
            return False
        try:
            import psycopg  # noqa: F401
        except ImportError:
            return False
        return True

    def run(self) -> None:
        import psycopg

        params = connection.get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        params.pop("server_side_binding", None)
        params.pop("prepare_threshold", None)
        while not self.stop.is_set():
            try:
                with psycopg.connect(**params, autocommit=True) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    logger.debug("Listening on PostgreSQL channel %s", NOTIFY_CHANNEL)
                    self.listening.set()
                    self.wake.set()  # Changes may have happened while we were connecting.
                    while not self.stop.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            self.wake.set()
            except Exception:
                # Back to the poll's own pace (the loop reads this flag before each wait).
                self.listening.clear()
                if self.stop.is_set():
                    return
                logger.warning("LISTEN connection lost; polling until it is back", exc_info=True)
                time.sleep(2)
