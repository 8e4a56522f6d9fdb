"""A run's own log output: what the thread calling a task's function logs meanwhile."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class RunLog:
    """The log output of one run, bounded in size."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.size = 0
        self.truncated = False

    def add(self, line: str) -> None:
        if self.truncated:
            return
        if self.size + len(line) > self.limit:
            self.parts.append(line[: max(0, self.limit - self.size)])
            self.parts.append("... [log truncated]\n")
            self.truncated = True
        else:
            self.parts.append(line)
        self.size += len(line)

    def text(self) -> str:
        return "".join(self.parts)


class RunLogCapture(logging.Handler):
    """One handler on the root logger for all runs: each record goes to its thread's run.

    A handler per run would be added and removed thousands of times a second on a busy
    scheduler, and every record of every thread would pass through all of them.
    """

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.runs: dict[int, RunLog] = {}
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def handle(self, record: logging.LogRecord) -> bool:
        # No lock: each run's buffer is only written by its own thread. A record handed on
        # to be written by another thread (a scheduler's run lines) is not the run's output.
        run_log = self.runs.get(record.thread or 0)
        if run_log is not None and record.thread == threading.get_ident():
            run_log.add(self.format(record) + "\n")
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.handle(record)

    @contextmanager
    def capture(self, limit: int) -> Iterator[RunLog]:
        """Collect what the calling thread logs (at the levels logging lets through)."""
        root = logging.getLogger()
        if self not in root.handlers:
            # Also after a logging reconfiguration replaced the root logger's handlers.
            root.addHandler(self)
        thread = threading.get_ident()
        outer = self.runs.get(thread)  # a run started inline from inside another run
        self.runs[thread] = run_log = RunLog(limit)
        try:
            yield run_log
        finally:
            if outer is None:
                del self.runs[thread]
            else:
                self.runs[thread] = outer


#: The one handler, added to the root logger on first use.
capture = RunLogCapture()
