"""PostgreSQL LISTEN: wake the scheduler the moment a change stamp is bumped.

Runs on its own connection in a daemon thread. Any failure (server restart, psycopg 2 in
use) only costs latency: the scheduler still polls the stamp.
"""

from __future__ import annotations

import logging
import threading
import time

from django.db import connection

from django_tasks_sched.changes import NOTIFY_CHANNEL

logger = logging.getLogger(__name__)


class Listener(threading.Thread):
    """Sets ``wake`` on every NOTIFY until ``stop`` is set."""

    def __init__(self, wake: threading.Event, stop: threading.Event) -> None:
        super().__init__(name="dts-listen", daemon=True)
        self.wake = wake
        self.stop = stop

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
                    self.wake.set()  # Changes may have happened while we were connecting.
                    while not self.stop.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            self.wake.set()
            except Exception:
                if self.stop.is_set():
                    return
                logger.warning("LISTEN connection lost; polling until it is back", exc_info=True)
                time.sleep(2)
