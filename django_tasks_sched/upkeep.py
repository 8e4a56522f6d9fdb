"""Connection upkeep for the threads that live as long as a scheduler process.

Django calls ``close_old_connections()`` as each request starts and ends: that is where
``CONN_MAX_AGE`` is kept and where a connection that failed is dropped. A thread of a
long-running process has no requests, so it calls that itself, and how often matters: under
the default ``CONN_MAX_AGE = 0`` every call closes the connection and the next query opens a
new one, about 1.5 ms of CPU on PostgreSQL. Once per alert check, that was a tenth of an idle
scheduler's CPU.

So each thread closes its old connections at most every :data:`UPKEEP_INTERVAL` seconds, at
its own pace when that is slower (a connection with ``CONN_MAX_AGE`` set can outlive it by as
much), and at its next call after a query of it failed, not a minute later. A connection that
died while the thread waited (a server restart) is met by the thread's next query, which
fails like any other: its loop logs it and tries again.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.db import close_old_connections, connections

#: Seconds a thread keeps its connection between two upkeeps (the reconcile's default pace).
UPKEEP_INTERVAL = 60.0


class ConnectionUpkeep:
    """Call it once per pass of a thread's work; it closes old connections when due.

    One per thread, called from that thread only: it looks after the calling thread's
    connections.
    """

    def __init__(
        self, interval: float = UPKEEP_INTERVAL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = interval
        self.clock = clock
        self.next_due = clock() + interval

    def __call__(self) -> None:
        if self.clock() >= self.next_due or _failed():
            close_old_connections()
            self.next_due = self.clock() + self.interval


def _failed() -> bool:
    """Whether a query of this thread failed since the last upkeep (Django marks the
    connection, and ``close_old_connections`` closes it if it is no longer usable)."""
    return any(conn.errors_occurred for conn in connections.all(initialized_only=True))
