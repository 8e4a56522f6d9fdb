"""Connection upkeep for the threads that live as long as a scheduler process.

Django calls ``close_old_connections()`` as each request starts and ends: that is where
``CONN_MAX_AGE`` is kept and where a connection that failed is dropped. A thread of a
long-running process has no requests, so it calls that itself, and how often matters: under
the default ``CONN_MAX_AGE = 0`` every call closes the connection and the next query opens a
new one, about 1.5 ms of CPU on PostgreSQL. Once per alert check, that was a tenth of an idle
scheduler's CPU.

So each thread keeps its connection for up to :data:`UPKEEP_INTERVAL` seconds (a connection
with ``CONN_MAX_AGE`` set lives at most that much longer than its age allows), and drops one
whose query failed at the next call, not a minute later.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.db import close_old_connections, connections

#: Seconds a thread keeps its connection between two upkeeps (the reconcile's default pace).
UPKEEP_INTERVAL = 60.0


class ConnectionUpkeep:
    """Call it before each unit of a thread's work; it closes old connections when due.

    Before, not after: a connection that died while the thread waited (a server restart, an
    idle timeout) is dropped by the check, not met by the work. One per thread: it looks after
    the calling thread's connections only.
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
