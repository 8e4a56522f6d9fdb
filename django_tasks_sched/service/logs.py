"""Where the scheduler's log lines go when the project's ``LOGGING`` does not route them.

Shared by ``runscheduler`` and the process executor's worker processes, so a run's log lines
are captured at the same level wherever the function runs. Imports nothing of Django's: a
worker process calls it right after ``django.setup()``.
"""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_to_stderr(level: int | str) -> None:
    """Send records at ``level`` and above to stderr, unless the root logger has handlers."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(handler)
        root.setLevel(level)
